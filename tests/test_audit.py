"""The tamper-evident log: verify, detect an altered or deleted row, export with hashes."""

import hashlib
import json
import sqlite3

import httpx
import psycopg

from tests.conftest import KnownClaims
from tests.test_sources_api import evidence_body, register, submit


async def populate(sources: httpx.AsyncClient, known_claims: KnownClaims) -> list[dict]:
    source = await register(sources)
    await sources.post(
        f"/sources/{source['id']}/ratings", json={"reliability": "C", "rationale": "x"}
    )
    claim = known_claims.add()
    for day in (4, 5, 6):
        await submit(
            sources, evidence_body(source["id"], claim, published_at=f"2024-01-0{day}T10:00:00Z")
        )
    return (await sources.get("/feed")).json()["items"]


def run_sql(database_url: str, sqlite_sql: str, postgres_sql: str, *params: object) -> int:
    """Change the service's stored events directly, behind the API; return the rows touched."""
    if database_url.startswith("sqlite"):
        with sqlite3.connect(database_url.removeprefix("sqlite:///")) as connection:
            return connection.execute(sqlite_sql, params).rowcount
    base, _, schema = database_url.partition("?schema=")
    with psycopg.connect(base) as connection:
        return connection.execute(postgres_sql.replace("{schema}", schema), params).rowcount


async def test_an_untouched_log_verifies(
    sources: httpx.AsyncClient, known_claims: KnownClaims
) -> None:
    items = await populate(sources, known_claims)
    result = (await sources.get("/audit/verify")).json()
    assert result == {
        "ok": True,
        "count": len(items),
        "head_hash": items[-1]["metadata"]["hash"],
        "head_position": items[-1]["position"],
    }


async def test_an_event_altered_in_the_database_is_named(
    sources: httpx.AsyncClient, known_claims: KnownClaims, database_url: str
) -> None:
    items = await populate(sources, known_claims)
    target = items[3]
    assert target["data"]["published_at"] == "2024-01-05T10:00:00Z"
    touched = run_sql(
        database_url,
        "UPDATE stored_events SET state = CAST(replace(CAST(state AS TEXT),"
        " '2024-01-05T10:00', '2024-01-03T10:00') AS BLOB) WHERE rowid = ?",
        "UPDATE {schema}.sources_events SET state = convert_to(replace(convert_from(state, 'UTF8'),"
        " '2024-01-05T10:00', '2024-01-03T10:00'), 'UTF8') WHERE notification_id = %s",
        target["position"],
    )
    assert touched == 1
    altered = (await sources.get("/feed")).json()["items"][3]
    assert altered["data"]["published_at"] == "2024-01-03T10:00:00Z", "the change is live"

    result = (await sources.get("/audit/verify")).json()
    assert result["ok"] is False
    assert result["broken_position"] == target["position"]
    assert "altered" in result["reason"]
    assert result["count"] == 3


async def test_an_event_that_cannot_be_read_is_named(
    sources: httpx.AsyncClient, known_claims: KnownClaims, database_url: str
) -> None:
    items = await populate(sources, known_claims)
    target = items[2]
    run_sql(
        database_url,
        "UPDATE stored_events SET state = CAST('{not json' AS BLOB) WHERE rowid = ?",
        "UPDATE {schema}.sources_events SET state = convert_to('{not json', 'UTF8')"
        " WHERE notification_id = %s",
        target["position"],
    )
    result = (await sources.get("/audit/verify")).json()
    assert result["ok"] is False
    assert result["broken_position"] == target["position"]
    assert "cannot be read" in result["reason"]
    assert result["count"] == 2
    feed = await sources.get("/feed")
    assert feed.status_code == 500
    assert f"position {target['position']} cannot be read" in feed.json()["detail"]


async def test_a_deleted_event_is_detected(
    sources: httpx.AsyncClient, known_claims: KnownClaims, database_url: str
) -> None:
    items = await populate(sources, known_claims)
    deleted, after = items[2], items[3]
    touched = run_sql(
        database_url,
        "DELETE FROM stored_events WHERE rowid = ?",
        "DELETE FROM {schema}.sources_events WHERE notification_id = %s",
        deleted["position"],
    )
    assert touched == 1
    result = (await sources.get("/audit/verify")).json()
    assert result["ok"] is False
    assert result["broken_position"] == after["position"]
    assert "missing" in result["reason"]


async def test_the_export_carries_a_chain_anyone_can_recompute(
    sources: httpx.AsyncClient, known_claims: KnownClaims
) -> None:
    items = await populate(sources, known_claims)
    response = await sources.get("/audit/export")
    assert response.headers["content-type"].startswith("application/x-ndjson")
    lines = [json.loads(line) for line in response.text.splitlines()]
    assert [line["position"] for line in lines] == [item["position"] for item in items]
    previous = "0" * 64
    for line in lines:
        body = {key: value for key, value in line.items() if key != "position"}
        body["metadata"] = {k: v for k, v in line["metadata"].items() if k != "hash"}
        assert body["metadata"]["prev_hash"] == previous
        canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        previous = hashlib.sha256(canonical.encode()).hexdigest()
        assert line["metadata"]["hash"] == previous

    window = await sources.get(
        "/audit/export", params={"after": items[1]["position"], "until": items[3]["position"]}
    )
    assert [json.loads(line)["position"] for line in window.text.splitlines()] == [
        items[2]["position"],
        items[3]["position"],
    ]


async def test_the_chain_continues_across_a_restart(
    sources_app, database_url: str, known_claims: KnownClaims
) -> None:
    from services.sources.bootstrap import create_app
    from shared.settings import SourcesSettings

    sources_app.state.sources.register_source("before restart", "test")
    sources_app.state.sources.close()
    again = create_app(SourcesSettings(database_url=database_url), claims=known_claims)
    try:
        again.state.sources.register_source("after restart", "test")
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=again), base_url="http://sources"
        ) as client:
            result = (await client.get("/audit/verify")).json()
        assert result["ok"] is True
        assert result["count"] == 2
    finally:
        again.state.sources.close()
        again.state.engine.dispose()
