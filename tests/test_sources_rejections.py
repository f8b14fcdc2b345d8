"""Every rejected write answers problem+json naming the field, and records nothing."""

import json
import uuid
from datetime import UTC, datetime
from http import HTTPStatus
from typing import Any

import httpx
import pytest

from services.sources.application import SourcesApplication
from services.sources.domain import Evidence
from shared.errors import Rejected
from shared.settings import SourcesSettings
from tests.conftest import KnownClaims
from tests.test_sources_api import evidence_body, head, register, submit

UNKNOWN = "00000000-0000-4000-8000-000000000000"
STATUS_PHRASES = {413: "Content Too Large", 422: "Unprocessable Content"}
"""RFC 9110's phrases, which RFC 9457 asks for as the title of an about:blank problem."""


def assert_problem(response: httpx.Response, status: int, field: str | None = None) -> None:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert response.headers.get("x-request-id"), "every answer carries its request id"
    problem = response.json()
    assert problem["status"] == status
    assert problem["type"] == "about:blank"
    assert problem["title"] == STATUS_PHRASES.get(status, HTTPStatus(status).phrase)
    assert problem["detail"]
    if field is not None:
        assert field in [error["field"] for error in problem["errors"]], problem
        assert field in problem["detail"]


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"source_id": UNKNOWN}, "source_id"),
        ({"claim_id": UNKNOWN}, "claim_id"),
        ({"derived_from": [UNKNOWN]}, "derived_from.0"),
        ({"published_at": "2024-01-06T12:00:00"}, "published_at"),
        ({"published_at": "2024-01-06"}, "published_at"),
        ({"published_at": "yesterday"}, "published_at"),
        ({"published_at": 1704535200}, "published_at"),
        ({"published_at": "2999-01-01T00:00:00Z"}, "published_at"),
        ({"stance": "agrees"}, "stance"),
        ({"strength": "very"}, "strength"),
        ({"summary": "   "}, "summary"),
        ({"summary": "x" * 4001}, "summary"),
        ({"url": "ftp://example.org"}, "url"),
        ({"source_id": "not-a-uuid"}, "source_id"),
        ({"publishedAt": "2024-01-06T12:00:00Z"}, "publishedAt"),
        ({"derived_from": [str(uuid.uuid4()) for _ in range(51)]}, "derived_from"),
    ],
)
async def test_bad_evidence_is_rejected_and_not_recorded(
    sources: httpx.AsyncClient, known_claims: KnownClaims, change: dict[str, Any], field: str
) -> None:
    source = await register(sources)
    body = evidence_body(source["id"], known_claims.add())
    body.update(change)
    before = await head(sources)
    assert_problem(await sources.post("/evidence", json=body), 422, field)
    assert await head(sources) == before


async def test_missing_fields_are_named(sources: httpx.AsyncClient) -> None:
    before = await head(sources)
    response = await sources.post("/evidence", json={"summary": "no source"})
    assert_problem(response, 422, "source_id")
    fields = {error["field"] for error in response.json()["errors"]}
    assert {"source_id", "claim_id", "stance", "strength", "published_at"} <= fields
    assert_problem(await sources.post("/evidence", content=b"{not json"), 422)
    assert await head(sources) == before


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"name": "", "kind": "newspaper"}, "name"),
        ({"name": "Reuters"}, "kind"),
        ({"name": "Reuters", "kind": "wire agency", "country": "United Kingdom"}, "country"),
        ({"name": "Reuters", "kind": "wire agency", "rating": "A"}, "rating"),
    ],
)
async def test_bad_sources_are_rejected(
    sources: httpx.AsyncClient, body: dict[str, Any], field: str
) -> None:
    assert_problem(await sources.post("/sources", json=body), 422, field)
    assert await head(sources) == 0


async def test_bad_ratings_are_rejected(sources: httpx.AsyncClient) -> None:
    source = await register(sources)
    before = await head(sources)
    rate = f"/sources/{source['id']}/ratings"
    assert_problem(
        await sources.post(rate, json={"reliability": "G", "rationale": "x"}), 422, "reliability"
    )
    assert_problem(await sources.post(rate, json={"reliability": "A"}), 422, "rationale")
    unknown = await sources.post(
        f"/sources/{UNKNOWN}/ratings", json={"reliability": "A", "rationale": "x"}
    )
    assert_problem(unknown, 404)
    assert await head(sources) == before


async def test_unknown_ids_in_the_path_are_404(sources: httpx.AsyncClient) -> None:
    source = await register(sources)
    assert_problem(await sources.get(f"/sources/{UNKNOWN}"), 404)
    assert_problem(await sources.get(f"/evidence/{UNKNOWN}"), 404)
    assert_problem(await sources.get(f"/evidence/{source['id']}"), 404)
    retraction = {"published_at": "2024-02-01T00:00:00Z", "reason": "x"}
    assert_problem(await sources.post(f"/evidence/{source['id']}/retraction", json=retraction), 404)
    assert_problem(await sources.get("/sources/not-a-uuid"), 422, "source_id")


async def test_retraction_before_publication_is_rejected(
    sources: httpx.AsyncClient, known_claims: KnownClaims
) -> None:
    source = await register(sources)
    evidence = await submit(sources, evidence_body(source["id"], known_claims.add()))
    before = await head(sources)
    early = {"published_at": "2024-01-06T09:59:59Z", "reason": "withdrawn"}
    response = await sources.post(f"/evidence/{evidence['id']}/retraction", json=early)
    assert_problem(response, 422, "published_at")
    naive = {"published_at": "2024-02-01T00:00:00", "reason": "withdrawn"}
    response = await sources.post(f"/evidence/{evidence['id']}/retraction", json=naive)
    assert_problem(response, 422, "published_at")
    assert await head(sources) == before
    assert (await sources.get(f"/evidence/{evidence['id']}")).json()["retraction"] is None


async def test_bad_corrections_are_rejected(
    sources: httpx.AsyncClient, known_claims: KnownClaims
) -> None:
    source = await register(sources)
    claim = known_claims.add()
    origin = await submit(sources, evidence_body(source["id"], claim))
    retelling = await submit(
        sources, evidence_body(source["id"], claim, derived_from=[origin["id"]])
    )
    before = await head(sources)
    correct = f"/evidence/{origin['id']}/correction"
    cases = [
        ({"changes": {}, "reason": "x"}, "changes"),
        ({"changes": {"strength": "moderate"}, "reason": "x"}, "changes.strength"),
        (
            {"changes": {"strength": "moderate", "stance": "refutes"}, "reason": "x"},
            "changes.strength",
        ),
        ({"changes": {"summary": None}, "reason": "x"}, "changes.summary"),
        ({"changes": {"colour": "red"}, "reason": "x"}, "changes.colour"),
        ({"changes": {"derived_from": [retelling["id"]]}, "reason": "x"}, "changes.derived_from.0"),
        ({"changes": {"derived_from": [origin["id"]]}, "reason": "x"}, "changes.derived_from.0"),
        ({"changes": {"claim_id": UNKNOWN}, "reason": "x"}, "changes.claim_id"),
        ({"changes": {"source_id": UNKNOWN}, "reason": "x"}, "changes.source_id"),
        ({"changes": {"published_at": "2024-01-05"}, "reason": "x"}, "changes.published_at"),
        ({"changes": {"strength": "strong"}}, "reason"),
    ]
    for body, field in cases:
        assert_problem(await sources.post(correct, json=body), 422, field)
    parents = {"derived_from": [origin["id"], origin["id"]]}
    same = await sources.post(
        f"/evidence/{retelling['id']}/correction", json={"changes": parents, "reason": "x"}
    )
    assert_problem(same, 422, "changes.derived_from")
    assert await head(sources) == before


async def a_retelling(
    sources: httpx.AsyncClient, known_claims: KnownClaims
) -> tuple[dict[str, Any], str, dict[str, Any], dict[str, Any]]:
    """A source, another claim, and two items about a first claim, the second retelling the
    first."""
    source = await register(sources)
    claim, other = known_claims.add(), known_claims.add()
    origin = await submit(sources, evidence_body(source["id"], claim))
    retelling = await submit(
        sources, evidence_body(source["id"], claim, derived_from=[origin["id"]])
    )
    return source, other, origin, retelling


async def test_evidence_derives_only_from_evidence_about_its_own_claim(
    sources: httpx.AsyncClient, known_claims: KnownClaims
) -> None:
    source, other, origin, retelling = await a_retelling(sources, known_claims)
    elsewhere = await submit(sources, evidence_body(source["id"], other))
    before = await head(sources)
    across = evidence_body(source["id"], other, derived_from=[elsewhere["id"], origin["id"]])
    refused = await sources.post("/evidence", json=across)
    assert_problem(refused, 422, "derived_from.1")
    assert "another claim" in refused.json()["detail"]
    correct = f"/evidence/{retelling['id']}/correction"
    for changes, field in (
        ({"claim_id": other}, "changes.claim_id"),
        ({"derived_from": [elsewhere["id"]]}, "changes.derived_from.0"),
    ):
        response = await sources.post(correct, json={"changes": changes, "reason": "x"})
        assert_problem(response, 422, field)
    assert await head(sources) == before
    moved = {"claim_id": other, "derived_from": [elsewhere["id"]]}
    response = await sources.post(correct, json={"changes": moved, "reason": "x"})
    assert response.status_code == 201, response.text


async def test_evidence_another_item_derives_from_stays_on_its_claim(
    sources: httpx.AsyncClient, known_claims: KnownClaims, database_url: str
) -> None:
    _, other, origin, retelling = await a_retelling(sources, known_claims)
    before = await head(sources)
    move = {"changes": {"claim_id": other}, "reason": "filed under the wrong claim"}
    refused = await sources.post(f"/evidence/{origin['id']}/correction", json=move)
    assert_problem(refused, 422, "changes.claim_id")
    assert retelling["id"] in refused.json()["detail"]
    assert await head(sources) == before
    restarted = SourcesApplication(SourcesSettings(database_url=database_url).storage, known_claims)
    try:
        with pytest.raises(Rejected) as rejection:
            restarted.correct_evidence(uuid.UUID(origin["id"]), {"claim_id": uuid.UUID(other)}, "x")
        assert [field for field, _ in rejection.value.faults] == ["changes.claim_id"]
    finally:
        restarted.close()
    unlinked = {"changes": {"derived_from": []}, "reason": "told apart"}
    response = await sources.post(f"/evidence/{retelling['id']}/correction", json=unlinked)
    assert response.status_code == 201, response.text
    moved = await sources.post(f"/evidence/{origin['id']}/correction", json=move)
    assert moved.status_code == 201, moved.text
    relink = {"changes": {"derived_from": [origin["id"]]}, "reason": "x"}
    response = await sources.post(f"/evidence/{retelling['id']}/correction", json=relink)
    assert_problem(response, 422, "changes.derived_from.0")


def test_an_item_moved_from_its_retellings_before_this_rule_may_move_back(
    database_url: str, known_claims: KnownClaims
) -> None:
    storage = SourcesSettings(database_url=database_url).storage
    storage.prepare()
    application = SourcesApplication(storage, known_claims)
    try:
        source = application.register_source("wire", "wire").id
        claim, other = uuid.UUID(known_claims.add()), uuid.UUID(known_claims.add())
        published = datetime(2024, 1, 5, tzinfo=UTC)
        origin = application.submit_evidence(
            source, claim, "supports", "moderate", published, "first-hand"
        ).id
        application.submit_evidence(
            source, claim, "supports", "moderate", published, "retold", derived_from=[origin]
        )
        with application.recording() as write:
            evidence = application.get_aggregate(Evidence, origin, "evidence")
            evidence.correct(
                changes={"claim_id": other}, reason="as logs from before the rule hold"
            )
            write.add(evidence)
        back = application.correct_evidence(origin, {"claim_id": claim}, "back with its retelling")
        assert back.version == 3
    finally:
        application.close()


async def test_correction_cannot_move_publication_after_retraction(
    sources: httpx.AsyncClient, known_claims: KnownClaims
) -> None:
    source = await register(sources)
    evidence = await submit(sources, evidence_body(source["id"], known_claims.add()))
    retraction = {"published_at": "2024-01-10T00:00:00Z", "reason": "withdrawn"}
    await sources.post(f"/evidence/{evidence['id']}/retraction", json=retraction)
    before = await head(sources)
    late = {"changes": {"published_at": "2024-01-11T00:00:00Z"}, "reason": "typo"}
    response = await sources.post(f"/evidence/{evidence['id']}/correction", json=late)
    assert_problem(response, 422, "changes.published_at")
    assert await head(sources) == before


async def test_bad_feed_queries_are_rejected(sources: httpx.AsyncClient) -> None:
    assert_problem(await sources.get("/feed", params={"after": -1}), 422, "after")
    assert_problem(await sources.get("/feed", params={"limit": 0}), 422, "limit")
    assert_problem(await sources.get("/feed", params={"limit": 100000}), 422, "limit")
    assert_problem(await sources.get("/feed", params={"after": "x"}), 422, "after")
    assert_problem(await sources.get("/evidence", params={"claim_id": "x"}), 422, "claim_id")


async def test_ids_are_checked_on_the_real_id_kind(
    sources: httpx.AsyncClient, known_claims: KnownClaims
) -> None:
    source = await register(sources)
    evidence = await submit(sources, evidence_body(source["id"], known_claims.add()))
    body = evidence_body(evidence["id"], known_claims.add())
    assert_problem(await sources.post("/evidence", json=body), 422, "source_id")
    body = evidence_body(source["id"], known_claims.add(), derived_from=[source["id"]])
    assert_problem(await sources.post("/evidence", json=body), 422, "derived_from.0")
    assert uuid.UUID(evidence["id"])


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"summary": "a\u0000b"}, "summary"),
        ({"quote": "bell\u0007"}, "quote"),
        ({"summary": "delete\u007f"}, "summary"),
        ({"quote": "next line\u0085"}, "quote"),
        ({"url": "https://example.org/\u009b"}, "url"),
        ({"published_at": "0001-01-01T00:00:00+14:00"}, "published_at"),
        ({"url": "https://example.org/\u0000"}, "url"),
    ],
)
async def test_control_characters_and_unrepresentable_times_are_rejected(
    sources: httpx.AsyncClient, known_claims: KnownClaims, change: dict[str, Any], field: str
) -> None:
    source = await register(sources)
    body = evidence_body(source["id"], known_claims.add())
    body.update(change)
    before = await head(sources)
    assert_problem(await sources.post("/evidence", json=body), 422, field)
    assert_problem(
        await sources.post("/sources", json={"name": "a\u0000b", "kind": "x"}), 422, "name"
    )
    assert await head(sources) == before
    health = (await sources.get("/health")).json()
    assert health["status"] == "ok"
    assert health["projection_position"] == health["head"]


async def test_a_rejection_names_every_field_at_fault(
    sources: httpx.AsyncClient, known_claims: KnownClaims
) -> None:
    source = await register(sources)
    evidence = await submit(sources, evidence_body(source["id"], known_claims.add()))
    before = await head(sources)
    body = evidence_body(
        UNKNOWN,
        str(uuid.uuid4()),
        published_at="2999-01-01T00:00:00Z",
        derived_from=[evidence["id"], str(uuid.uuid4()), str(uuid.uuid4())],
    )
    response = await sources.post("/evidence", json=body)
    assert_problem(response, 422)
    assert [error["field"] for error in response.json()["errors"]] == [
        "claim_id",
        "published_at",
        "source_id",
        "derived_from.1",
        "derived_from.2",
    ]
    changes = {
        "claim_id": str(uuid.uuid4()),
        "published_at": "2999-01-01T00:00:00Z",
        "source_id": UNKNOWN,
        "derived_from": [str(uuid.uuid4())],
    }
    correction = {"changes": changes, "reason": "typo"}
    response = await sources.post(f"/evidence/{evidence['id']}/correction", json=correction)
    assert_problem(response, 422)
    assert [error["field"] for error in response.json()["errors"]] == [
        "changes.claim_id",
        "changes.published_at",
        "changes.source_id",
        "changes.derived_from.0",
    ]
    assert await head(sources) == before


async def test_malformed_requests_name_what_is_wrong(sources: httpx.AsyncClient) -> None:
    huge = "9" * 30
    assert_problem(await sources.get("/feed", params={"after": huge}), 422, "after")
    assert_problem(await sources.get("/evidence", params={"after": huge}), 422, "after")
    assert_problem(await sources.get("/audit/export", params={"until": huge}), 422, "until")
    assert_problem(await sources.get("/feed", params={"aftr": 3}), 422, "aftr")
    assert_problem(await sources.get("/sources", params={"limit": 3}), 422, "limit")
    broken = await sources.post(
        "/sources", content=b'{"name": "x", "kind":', headers={"content-type": "application/json"}
    )
    assert_problem(broken, 422, "body")
    assert "not valid JSON" in broken.json()["errors"][0]["reason"]
    not_utf8 = await sources.post(
        "/sources", content=b'{"name": "\xff"}', headers={"content-type": "application/json"}
    )
    assert_problem(not_utf8, 422, "body")
    missing = await sources.get(f"/sources/{UNKNOWN}")
    assert_problem(missing, 404, "source_id")
    assert missing.json()["title"] == "Not Found"
    assert (await sources.get("/no/such/path")).json()["errors"] == []
    assert await head(sources) == 0


async def test_a_body_over_64_kib_is_refused_with_413(
    sources: httpx.AsyncClient, known_claims: KnownClaims
) -> None:
    source = await register(sources)
    body = evidence_body(source["id"], known_claims.add(), summary="x" * 3000)
    body["derived_from"] = []
    padded = json.dumps(body) + " " * (64 * 1024)
    before = await head(sources)
    response = await sources.post(
        "/evidence", content=padded, headers={"content-type": "application/json"}
    )
    assert_problem(response, 413)
    assert await head(sources) == before


async def test_unicode_is_kept_byte_for_byte(
    sources: httpx.AsyncClient, known_claims: KnownClaims
) -> None:
    text = "Прокуратура: «ракета» — 北朝鮮 🚀 e\u0301 \u202eRTL\u202c tab\tnew\nline"
    source = await register(sources, name=text[:40])
    written = await submit(
        sources, evidence_body(source["id"], known_claims.add(), summary=text, quote=text)
    )
    one = (await sources.get(f"/evidence/{written['id']}")).json()
    assert one["summary"] == text
    assert one["quote"].encode() == text.encode()
    item = (await sources.get("/feed")).json()["items"][-1]
    assert item["data"]["summary"].encode() == text.encode()
    assert (await sources.get(f"/sources/{source['id']}")).json()["name"] == text[:40]
