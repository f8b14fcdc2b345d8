"""Schemathesis against both services' OpenAPI schemas: no 5xx, every answer as documented."""

from collections import Counter
from collections.abc import Mapping
from pathlib import Path

import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from services.claims.bootstrap import create_app as create_claims_app
from services.sources.bootstrap import create_app as create_sources_app
from shared.settings import ClaimsSettings, SourcesSettings
from tests.conftest import KnownClaims, Services
from tests.newsroom import new_claim, new_source, post_evidence, rule, verdict
from tests.servers import free_port

EXAMPLES_PER_OPERATION = 12
LONG_POLL_SECONDS = 0.05


@schemathesis.check
def no_server_error(ctx: object, response: schemathesis.Response, case: schemathesis.Case) -> None:
    """No 5xx, except the contract's own 503 + Retry-After for "not yet" or a service away."""
    retry_after = any(name.lower() == "retry-after" for name in response.headers)
    unavailable = response.status_code == 503 and retry_after
    if response.status_code >= 500 and not unavailable:
        raise AssertionError(f"{response.status_code} from {case.method} {case.path}")


CHECKS = [
    no_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]


def fuzz(
    schema: schemathesis.BaseSchema, recorded: Mapping[str, object] | None = None
) -> Counter[tuple[str, int]]:
    """Run every operation of the schema; count the answers by operation and status class
    (2 for 2xx, and so on).

    With `recorded` (ids by field name, such as `claim_id`), every path and about half the
    bodies name those recorded things wherever they have a field of that name, so that the
    cases reach what lies past the lookup of an id; the runs without it cover unknown ids.
    """
    answered: Counter[tuple[str, int]] = Counter()
    for result in schema.get_all_operations():
        operation = result.ok()

        @given(case=operation.as_strategy(), named=st.booleans())
        @settings(
            max_examples=EXAMPLES_PER_OPERATION,
            deadline=None,
            suppress_health_check=list(HealthCheck),
            database=None,
        )
        def run(case: schemathesis.Case, named: bool) -> None:
            if isinstance(case.query, dict) and isinstance(case.query.get("wait"), int | float):
                case.query["wait"] = min(case.query["wait"], LONG_POLL_SECONDS)
            if recorded:
                _name_recorded(case.path_parameters, recorded)
                if named:
                    _name_recorded(case.body, recorded)
            response = case.call_and_validate(checks=CHECKS)
            answered[(case.operation.label, response.status_code // 100)] += 1

        run()
    return answered


def _name_recorded(fields: object, recorded: Mapping[str, object]) -> None:
    """Point the ids among a case's path parameters or body fields at recorded things."""
    if isinstance(fields, dict):
        for field in fields.keys() & recorded.keys():
            fields[field] = recorded[field]


def test_sources_api_answers_as_documented(tmp_path: Path) -> None:
    settings_ = SourcesSettings(database_url=f"sqlite:///{tmp_path / 'sources.db'}")
    app = create_sources_app(settings_, claims=KnownClaims())
    try:
        assert fuzz(schemathesis.openapi.from_asgi("/openapi.json", app)).total() > 50
    finally:
        app.state.sources.close()
        app.state.engine.dispose()


def test_claims_api_answers_as_documented(tmp_path: Path) -> None:
    """With no sources service at its `SOURCES_URL`, whatever else runs on this machine."""
    app = create_claims_app(
        ClaimsSettings(
            database_url=f"sqlite:///{tmp_path / 'claims.db'}",
            sources_url=f"http://127.0.0.1:{free_port()}",
            follow=False,
            read_wait=0.05,
        )
    )
    try:
        assert fuzz(schemathesis.openapi.from_asgi("/openapi.json", app)).total() > 50
    finally:
        app.state.claims.close()
        app.state.engine.dispose()


def test_both_services_answer_as_documented_about_recorded_things(services: Services) -> None:
    """Following each other on real servers, with a claim, sources, evidence (one item
    retracted, one retelling) and a ruling recorded, the ids of which the cases name."""
    claim = new_claim(services)
    source = new_source(services, "prosecutor", "C")
    first = post_evidence(services, source, claim, "2024-01-05T12:00:00+02:00")
    retelling = post_evidence(
        services, source, claim, "2024-01-06T00:00:00Z", derived_from=[first["id"]]
    )
    retracted = services.sources.post(
        f"/evidence/{first['id']}/retraction",
        json={"published_at": "2024-01-08T00:00:00Z", "reason": "withdrawn"},
    )
    assert retracted.status_code == 201, retracted.text
    rule(services, claim, "suspected", "2024-01-06T00:00:00Z")
    verdict(services, claim)
    recorded = {
        "claim_id": claim,
        "source_id": source,
        "evidence_id": retelling["id"],
        "derived_from": [first["id"]],
    }
    answered: Counter[tuple[str, int]] = Counter()
    for url in (services.sources_url, services.claims_url):
        answered += fuzz(schemathesis.openapi.from_url(f"{url}/openapi.json"), recorded)
    succeeded = {label for (label, status), _ in answered.items() if status == 2}
    assert {
        "GET /sources/{source_id}",
        "GET /evidence/{evidence_id}",
        "GET /claims/{claim_id}/verdict",
        "GET /claims/{claim_id}/timeline",
        "GET /claims/{claim_id}/evidence",
        "GET /claims/{claim_id}/claimreview",
        "GET /claims/{claim_id}/history",
    } <= succeeded, "the reads reach past the lookup of an id"
