"""Feed positions past 32 bits, as PostgreSQL's 64-bit event sequences give them: every read
model keeps them, and every read answers on them. (SQLite numbers events by its 64-bit rowid,
and a rowid cannot be moved on without writing a row.)"""

import logging

import pytest
from fastapi import FastAPI
from sqlalchemy import text

from tests.conftest import Services, serve_both
from tests.newsroom import new_claim, new_source, post_evidence, rule, verdict
from tests.test_read_model_shape import alter

WIDE = 2**32 + 1_000
"""A position no 32-bit column holds, signed or not."""


@pytest.fixture(params=["postgres"])
def storage_kind(request: pytest.FixtureRequest) -> str:
    return request.param


def number_events_from(app: FastAPI, position: int) -> None:
    """Move the store's event sequence on, so that its next event takes `position`."""
    application = app.state.application
    engine = application.storage.create_engine()
    try:
        with engine.begin() as connection:
            sequence = connection.execute(
                text("SELECT pg_get_serial_sequence(:table, 'notification_id')"),
                {"table": application.events_table},
            ).scalar_one()
            connection.execute(
                text("SELECT setval(:sequence, :last)"),
                {"sequence": sequence, "last": position - 1},
            )
    finally:
        engine.dispose()


def test_positions_past_32_bits_are_kept_and_read(services: Services) -> None:
    claim = new_claim(services)
    source = new_source(services, "Kharkiv regional prosecutor", "B")
    post_evidence(services, source, claim, "2024-01-04T12:00:00Z")
    number_events_from(services.sources_app, WIDE)
    number_events_from(services.claims_app, WIDE)

    wide_claim = new_claim(services, "A second claim, registered past 32 bits.")
    listed = services.claims.get("/claims", params={"limit": 100}).json()
    assert wide_claim in [item["id"] for item in listed["items"]]
    ruling = rule(services, wide_claim, "suspected", "2024-01-05T00:00:00Z")
    keyed = services.sources.post(
        "/sources",
        json={"name": "White House", "kind": "government"},
        headers={"Idempotency-Key": "wide-source"},
    )
    assert keyed.status_code == 201, keyed.text
    again = services.sources.post(
        "/sources",
        json={"name": "White House", "kind": "government"},
        headers={"Idempotency-Key": "wide-source"},
    )
    assert again.json() == keyed.json()
    rated = services.sources.post(
        f"/sources/{keyed.json()['id']}/ratings", json={"reliability": "A", "rationale": "test"}
    )
    assert rated.status_code == 201, rated.text
    evidence = post_evidence(services, keyed.json()["id"], claim, "2024-01-05T10:00:00Z")
    assert evidence["position"] >= WIDE

    corrected = services.sources.post(
        f"/evidence/{evidence['id']}/correction",
        json={"changes": {"strength": "strong"}, "reason": "misread"},
    )
    assert corrected.status_code == 201, corrected.text
    first = services.sources.get("/evidence", params={"claim_id": claim}).json()["items"][0]
    retracted = services.sources.post(
        f"/evidence/{first['id']}/retraction",
        json={"published_at": "2024-01-06T00:00:00Z", "reason": "withdrawn"},
    )
    assert retracted.status_code == 201, retracted.text

    read = services.sources.get(f"/evidence/{evidence['id']}")
    assert read.status_code == 200, read.text
    assert read.json()["strength"] == "strong"
    listing = services.sources.get("/evidence", params={"claim_id": claim, "after": WIDE - 1})
    assert [item["id"] for item in listing.json()["items"]] == [evidence["id"]]
    answered = verdict(services, claim)
    assert answered["basis"]["position"] >= evidence["position"]
    assert answered["independent_origins"] == 1, "the prosecutor's item retracted"
    for service in (services.sources, services.claims):
        rebuilt = service.post("/admin/rebuild")
        assert rebuilt.status_code == 200, rebuilt.text
    pinned = {key: answered["basis"][key] for key in ("at", "known_at")}
    assert verdict(services, claim, **pinned) == answered, "the same after both rebuilds"
    assert services.sources.get(f"/evidence/{evidence['id']}").json() == read.json()
    items = services.claims.get(
        f"/claims/{claim}/evidence", params={"min_position": evidence["position"]}
    )
    assert items.status_code == 200, items.text
    assert evidence["id"] in [item["evidence_id"] for item in items.json()["items"]]
    history = services.claims.get(f"/claims/{wide_claim}/history").json()
    assert ruling["id"] in str(history)
    for service in (services.sources, services.claims):
        assert service.get("/audit/verify").json()["ok"] is True


def test_read_models_an_earlier_release_kept_in_32_bits_are_refilled_at_start(
    database_url: str, claims_database_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    with serve_both(database_url, claims_database_url) as services:
        claim = new_claim(services)
        source = new_source(services, "Kharkiv regional prosecutor", "B")
        post_evidence(services, source, claim, "2024-01-04T12:00:00Z")
        before = verdict(services, claim)

    narrow = "ALTER TABLE {} ALTER COLUMN {} TYPE INTEGER"
    alter(database_url, narrow.format("evidence_view", "position"))
    alter(
        claims_database_url,
        narrow.format("claim_view", "position"),
        narrow.format("tally_point", "row"),
    )
    with (
        caplog.at_level(logging.WARNING, "factcheck"),
        serve_both(database_url, claims_database_url) as services,
    ):
        pinned = {key: before["basis"][key] for key in ("at", "known_at")}
        again = services.claims.get(f"/claims/{claim}/verdict", params=pinned)
        assert again.json() == before
        number_events_from(services.sources_app, WIDE)
        number_events_from(services.claims_app, WIDE)
        wide_claim = new_claim(services, "A second claim, registered past 32 bits.")
        evidence = post_evidence(services, source, wide_claim, "2024-01-05T10:00:00Z")
        assert services.sources.get(f"/evidence/{evidence['id']}").status_code == 200
        assert verdict(services, wide_claim)["independent_origins"] == 1
    assert "evidence_view.position is INTEGER, not BIGINT" in caplog.text
    assert "claim_view.position is INTEGER, not BIGINT" in caplog.text
    assert "tally_point.row is INTEGER, not BIGINT" in caplog.text
