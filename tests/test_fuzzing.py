"""Schemathesis against both services' OpenAPI schemas: no 5xx, every answer as documented."""

from pathlib import Path

import schemathesis
from fastapi import FastAPI
from hypothesis import HealthCheck, given, settings
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from services.claims.bootstrap import create_app as create_claims_app
from services.sources.bootstrap import create_app as create_sources_app
from shared.settings import ClaimsSettings, SourcesSettings
from tests.conftest import KnownClaims
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


def fuzz(app: FastAPI) -> int:
    """Run every operation of the app's schema; return how many cases ran."""
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    ran = 0
    for result in schema.get_all_operations():
        operation = result.ok()

        @given(case=operation.as_strategy())
        @settings(
            max_examples=EXAMPLES_PER_OPERATION,
            deadline=None,
            suppress_health_check=list(HealthCheck),
            database=None,
        )
        def run(case: schemathesis.Case) -> None:
            nonlocal ran
            ran += 1
            if isinstance(case.query, dict) and isinstance(case.query.get("wait"), int | float):
                case.query["wait"] = min(case.query["wait"], LONG_POLL_SECONDS)
            case.call_and_validate(checks=CHECKS)

        run()
    return ran


def test_sources_api_answers_as_documented(tmp_path: Path) -> None:
    settings_ = SourcesSettings(database_url=f"sqlite:///{tmp_path / 'sources.db'}")
    app = create_sources_app(settings_, claims=KnownClaims())
    try:
        assert fuzz(app) > 50
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
        assert fuzz(app) > 50
    finally:
        app.state.claims.close()
        app.state.engine.dispose()
