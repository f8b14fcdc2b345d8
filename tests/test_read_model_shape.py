"""Read models stored by another release: refilled from the log at start, not failed on."""

import logging
from typing import Any

import pytest
from sqlalchemy import inspect, text

from shared.storage import parse_storage_url
from tests.conftest import KnownClaims, in_process, serve_both, sources_service
from tests.newsroom import new_claim, new_source, post_evidence
from tests.test_sources_api import evidence_body, register, submit

REFILLED = "are not this release's"


def alter(database_url: str, *statements: str) -> None:
    """Change the store's read-model tables behind the service, as an older release left them."""
    engine = parse_storage_url("DATABASE_URL", database_url).create_engine()
    try:
        with engine.begin() as connection:
            for statement in statements:
                connection.execute(text(statement))
    finally:
        engine.dispose()


def stored_shape(database_url: str, table: str) -> tuple[set[str], set[str]]:
    """The stored table's column names and index names."""
    engine = parse_storage_url("DATABASE_URL", database_url).create_engine()
    try:
        inspector = inspect(engine)
        columns = {column["name"] for column in inspector.get_columns(table)}
        indexes = {str(index["name"]) for index in inspector.get_indexes(table)}
        return columns, indexes
    finally:
        engine.dispose()


async def test_sources_read_models_of_another_shape_are_refilled_at_start(
    database_url: str, known_claims: KnownClaims, caplog: pytest.LogCaptureFixture
) -> None:
    claim = known_claims.add()
    with sources_service(database_url, known_claims) as app:
        async with in_process(app) as sources:
            source = await register(sources)
            rating = {"reliability": "B", "rationale": "wire service"}
            rated = await sources.post(f"/sources/{source['id']}/ratings", json=rating)
            assert rated.status_code == 201, rated.text
            evidence = await submit(sources, evidence_body(source["id"], claim))
            before = (await sources.get(f"/evidence/{evidence['id']}")).json()
            listed = (await sources.get("/sources")).json()

    alter(database_url, "DROP INDEX ix_evidence_view_claim_id")
    with caplog.at_level(logging.WARNING, "factcheck"), sources_service(database_url, known_claims):
        pass
    assert "ix_evidence_view_claim_id" in stored_shape(database_url, "evidence_view")[1]
    assert REFILLED not in caplog.text, "a missing index is created, nothing refilled"

    alter(
        database_url,
        "ALTER TABLE evidence_view DROP COLUMN summary",
        "ALTER TABLE source_view ADD COLUMN legacy VARCHAR(10) NOT NULL DEFAULT 'x'",
        "DROP TABLE rating_view",
    )
    with (
        caplog.at_level(logging.WARNING, "factcheck"),
        sources_service(database_url, known_claims) as app,
    ):
        async with in_process(app) as sources:
            assert (await sources.get(f"/evidence/{evidence['id']}")).json() == before
            assert (await sources.get("/sources")).json() == listed
            taken = await submit(sources, evidence_body(source["id"], claim))
            assert taken["position"] > evidence["position"]
    assert "evidence_view.summary is missing" in caplog.text
    assert "source_view.legacy is unknown" in caplog.text
    assert "rating_view is missing" in caplog.text
    assert listed[0]["ratings"], "the ratings came back with their table"
    columns, _ = stored_shape(database_url, "source_view")
    assert "legacy" not in columns

    read_models = (
        "source_view",
        "rating_view",
        "evidence_view",
        "correction_view",
        "retraction_view",
        "idempotency_record",
    )
    alter(database_url, *(f"DROP TABLE {table}" for table in read_models))
    with sources_service(database_url, known_claims) as app:
        async with in_process(app) as sources:
            assert (await sources.get("/sources")).json() == listed, "not empty at the old position"


def test_verdict_read_models_of_another_shape_are_refilled_at_start(
    database_url: str, claims_database_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    asked: dict[str, Any] = {}
    with serve_both(database_url, claims_database_url) as services:
        claim = new_claim(services)
        source = new_source(services, "agency", "B")
        written = post_evidence(services, source, claim, "2024-01-05T00:00:00Z")
        asked = {"at": "2024-01-06", "min_position": written["position"]}
        before = services.claims.get(f"/claims/{claim}/verdict", params=asked).json()
        listed = services.claims.get("/claims").json()

    alter(claims_database_url, "ALTER TABLE evidence_current DROP COLUMN strength")
    with (
        caplog.at_level(logging.WARNING, "factcheck"),
        serve_both(database_url, claims_database_url) as services,
    ):
        pinned = {**asked, "known_at": before["basis"]["known_at"]}
        again = services.claims.get(f"/claims/{claim}/verdict", params=pinned)
        assert again.status_code == 200, again.text
        assert again.json() == before
        assert services.claims.get("/claims").json() == listed
    assert "verdicts: the read models are not this release's" in caplog.text
    assert "evidence_current.strength is missing" in caplog.text
    assert "strength" in stored_shape(claims_database_url, "evidence_current")[0]
