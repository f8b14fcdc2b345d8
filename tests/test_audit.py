"""The tamper-evident log: verify, detect an altered or deleted row, export with hashes."""

import hashlib
import json
import logging
import sqlite3
import time
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
from typer.testing import CliRunner

from bench.bulk import fill
from services.claims.bootstrap import create_app as create_claims_app
from shared.cli import app as cli
from shared.routes import EXPORT_PAGE
from shared.settings import ClaimsSettings
from tests.conftest import KnownClaims, in_process, sources_service
from tests.servers import free_port, serving
from tests.test_sources_api import evidence_body, register, submit
from tests.test_sources_rejections import assert_problem


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


def drop_offsets(database_url: str, position: int) -> int:
    """Strip every UTC offset from the stored event at `position`, its own time's included."""
    return run_sql(
        database_url,
        "UPDATE stored_events SET state = CAST(replace(CAST(state AS TEXT), '+00:00', '')"
        " AS BLOB) WHERE rowid = ?",
        "UPDATE {schema}.sources_events SET state = convert_to(replace(convert_from(state,"
        " 'UTF8'), '+00:00', ''), 'UTF8') WHERE notification_id = %s",
        position,
    )


async def two_sources_recorded(database_url: str, known_claims: KnownClaims) -> dict[str, Any]:
    """Register two sources on a service that then stops, its read models holding both; return
    the newest."""
    with sources_service(database_url, known_claims) as app:
        async with in_process(app) as sources:
            await register(sources)
            newest = await register(sources)
            assert len((await sources.get("/sources")).json()) == 2, "the read models hold both"
    return newest


async def assert_broken_at(sources: httpx.AsyncClient, position: int, reason: str) -> None:
    """The log's verification breaks at `position`, for a reason that says `reason`."""
    result = (await sources.get("/audit/verify")).json()
    assert result["ok"] is False
    assert result["broken_position"] == position
    assert reason in result["reason"]


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


async def test_a_created_event_naming_another_aggregate_class_is_named(
    sources: httpx.AsyncClient, known_claims: KnownClaims, database_url: str
) -> None:
    """The aggregate class a created event names is stored outside the hashed feed item, so
    it is checked when the event is read: altered, it breaks the log there."""
    items = await populate(sources, known_claims)
    target = items[0]
    assert target["type"] == "SourceRegistered"
    touched = run_sql(
        database_url,
        "UPDATE stored_events SET state = CAST(replace(CAST(state AS TEXT),"
        " 'domain:Source\"', 'domain:Evidence\"') AS BLOB) WHERE rowid = ?",
        "UPDATE {schema}.sources_events SET state = convert_to(replace(convert_from(state, 'UTF8'),"
        " 'domain:Source\"', 'domain:Evidence\"'), 'UTF8') WHERE notification_id = %s",
        target["position"],
    )
    assert touched == 1
    await assert_broken_at(sources, target["position"], "cannot be read")
    head = (await sources.get("/feed")).status_code
    assert head == 500
    rating = await sources.post(
        f"/sources/{target['stream_id']}/ratings", json={"reliability": "B", "rationale": "x"}
    )
    assert_problem(rating, 500)
    assert "GET /audit/verify" in rating.json()["detail"]


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
    await assert_broken_at(sources, after["position"], "missing")


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


async def test_an_export_window_that_ends_before_it_starts_is_refused(
    sources: httpx.AsyncClient,
) -> None:
    refused = await sources.get("/audit/export", params={"after": 5, "until": 3})
    assert_problem(refused, 422, "until")
    empty = await sources.get("/audit/export", params={"after": 3, "until": 3})
    assert empty.status_code == 200 and empty.text == ""


async def test_the_chain_continues_across_a_restart(
    sources_app, database_url: str, known_claims: KnownClaims
) -> None:
    sources_app.state.sources.register_source("before restart", "test")
    sources_app.state.sources.close()
    with sources_service(database_url, known_claims) as again:
        again.state.sources.register_source("after restart", "test")
        async with in_process(again) as client:
            result = (await client.get("/audit/verify")).json()
        assert result["ok"] is True
        assert result["count"] == 2


async def test_an_event_that_can_no_longer_be_rendered_is_named(
    sources: httpx.AsyncClient, known_claims: KnownClaims, database_url: str
) -> None:
    items = await populate(sources, known_claims)
    target = items[2]
    assert drop_offsets(database_url, target["position"]) == 1
    await assert_broken_at(sources, target["position"], "cannot be read")
    assert (await sources.post("/admin/rebuild")).status_code == 409
    feed = await sources.get("/feed")
    assert feed.status_code == 500
    assert feed.headers["content-type"] == "application/problem+json"
    assert f"the event at position {target['position']} cannot be read" in feed.json()["detail"]
    documented = (await sources.get("/openapi.json")).json()["paths"]["/feed"]["get"]
    assert "500" in documented["responses"]


@pytest.mark.parametrize(
    ("altered", "verified"), [("its time's offset", "cannot be read"), ("its hash", "altered")]
)
async def test_a_service_whose_newest_event_cannot_be_read_starts_and_refuses_writes(
    known_claims: KnownClaims, database_url: str, altered: str, verified: str
) -> None:
    """Reads and the audit still answer; writes cannot chain to an unreadable event, and a
    rebuild, which refuses the broken log, does not let them in."""
    newest = await two_sources_recorded(database_url, known_claims)
    if altered == "its hash":
        touched = run_sql(
            database_url,
            "UPDATE stored_events SET state = CAST(replace(CAST(state AS TEXT), '\"hash\"',"
            " '\"hush\"') AS BLOB) WHERE rowid = ?",
            "UPDATE {schema}.sources_events SET state = convert_to(replace(convert_from(state,"
            " 'UTF8'), '\"hash\"', '\"hush\"'), 'UTF8') WHERE notification_id = %s",
            newest["position"],
        )
    else:
        touched = drop_offsets(database_url, newest["position"])
    assert touched == 1
    with sources_service(database_url, known_claims) as app:
        async with in_process(app) as sources:
            named = f"the event at position {newest['position']} cannot be read"
            health = (await sources.get("/health")).json()
            assert named in health["writes_refused"]
            await assert_broken_at(sources, newest["position"], verified)
            refused = await sources.post("/sources", json={"name": "n", "kind": "k"})
            assert_problem(refused, 503)
            assert named in refused.json()["detail"]
            assert "retry-after" not in refused.headers, "no retry helps until an operator acts"
            assert len((await sources.get("/sources")).json()) == 2
            assert (await sources.post("/admin/rebuild")).status_code == 409
            assert named in (await sources.get("/health")).json()["writes_refused"]


async def test_a_rebuild_restores_sources_read_models_edited_behind_the_service(
    sources: httpx.AsyncClient, known_claims: KnownClaims, database_url: str
) -> None:
    items = await populate(sources, known_claims)
    evidence_id = items[-1]["stream_id"]
    source_id = items[0]["stream_id"]
    honest = {
        "evidence": (await sources.get("/evidence")).json(),
        "source": (await sources.get(f"/sources/{source_id}")).json(),
    }
    edited = run_sql(
        database_url,
        "UPDATE evidence_view SET strength = 'strong', summary = 'edited' WHERE id = ?",
        "UPDATE {schema}.evidence_view SET strength = 'strong', summary = 'edited' WHERE id = %s",
        evidence_id.replace("-", "") if database_url.startswith("sqlite") else evidence_id,
    )
    assert edited == 1
    run_sql(database_url, "DELETE FROM rating_view", "DELETE FROM {schema}.rating_view")
    assert (await sources.get(f"/evidence/{evidence_id}")).json()["summary"] == "edited"
    asked = time.monotonic()
    rebuilt = await sources.post("/admin/rebuild")
    took = time.monotonic() - asked
    assert rebuilt.status_code == 200, rebuilt.text
    answer = rebuilt.json()
    times = answer.pop("verify_seconds"), answer.pop("rebuild_seconds")
    assert answer == {"position": items[-1]["position"], "evidence": 3}
    assert min(times) > 0 and sum(times) <= took
    assert (await sources.get("/evidence")).json() == honest["evidence"]
    assert (await sources.get(f"/sources/{source_id}")).json() == honest["source"]
    assert (await sources.get("/feed")).json()["items"] == items


async def test_a_sources_rebuild_refuses_an_altered_log_and_keeps_serving(
    sources: httpx.AsyncClient, known_claims: KnownClaims, database_url: str
) -> None:
    await populate(sources, known_claims)
    before = (await sources.get("/evidence")).json()
    run_sql(
        database_url,
        "UPDATE stored_events SET state = CAST(replace(CAST(state AS TEXT), 'moderate',"
        " 'strong') AS BLOB)",
        "UPDATE {schema}.sources_events SET state = convert_to(replace(convert_from(state,"
        " 'UTF8'), 'moderate', 'strong'), 'UTF8')",
    )
    refused = await sources.post("/admin/rebuild")
    assert refused.status_code == 409, refused.text
    assert "the sources log fails verification" in refused.json()["detail"]
    assert (await sources.get("/evidence")).json() == before


async def test_a_sources_log_missing_its_newest_events_takes_writes_once_rebuilt(
    known_claims: KnownClaims, database_url: str
) -> None:
    newest = await two_sources_recorded(database_url, known_claims)
    run_sql(
        database_url,
        "DELETE FROM stored_events WHERE rowid = ?",
        "DELETE FROM {schema}.sources_events WHERE notification_id = %s",
        newest["position"],
    )
    with sources_service(database_url, known_claims) as app:
        async with in_process(app) as sources:
            health = (await sources.get("/health")).json()
            assert "newest events are missing" in health["writes_refused"]
            assert_problem(await sources.post("/sources", json={"name": "n", "kind": "k"}), 503)
            rebuilt = await sources.post("/admin/rebuild")
            assert rebuilt.status_code == 200, rebuilt.text
            assert rebuilt.json()["position"] == newest["position"] - 1
            assert (await sources.get("/health")).json()["writes_refused"] is None
            taken = await register(sources)
            assert taken["position"] >= newest["position"]


def test_an_export_that_meets_an_unreadable_event_never_passes_for_the_whole_log(
    database_url: str,
    claims_database_url: str,
    known_claims: KnownClaims,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Before the answer starts, the event is answered 500; after, the stream breaks off
    unfinished, and the command line keeps no partial file."""
    fill(database_url, claims_database_url, [EXPORT_PAGE + 200])
    claims = create_claims_app(ClaimsSettings(database_url=claims_database_url, follow=False))
    with (
        sources_service(database_url, known_claims) as app,
        serving(app) as url,
        serving(claims) as claims_url,
    ):
        with httpx.Client(base_url=url) as client:
            first = client.get("/feed", params={"after": 0, "limit": EXPORT_PAGE}).json()
            then = {"after": first["next_after"], "limit": 100}
            broken = client.get("/feed", params=then).json()["items"][-1]["position"]
            assert drop_offsets(database_url, broken) == 1
            refused = client.get("/audit/export", params={"after": broken - 1})
            assert_problem(refused, 500)
            assert f"the event at position {broken} cannot be read" in refused.json()["detail"]
            caplog.clear()
            server_log = logging.getLogger("uvicorn")
            server_log.addHandler(caplog.handler)
            try:
                with pytest.raises(httpx.RemoteProtocolError):
                    client.get("/audit/export")
            finally:
                server_log.removeHandler(caplog.handler)
            logged = [record for record in caplog.records if record.levelno >= logging.ERROR]
            assert "the export broke off" in logged[0].getMessage()
            assert not any(record.exc_info for record in logged), "a line, not a traceback"
        urls = ["--sources-url", url, "--claims-url", claims_url]
        exported = CliRunner().invoke(cli, ["export", "--out", str(tmp_path), *urls])
    assert exported.exit_code == 1, exported.output
    told = " ".join(exported.output.split())
    assert f"broke off after {EXPORT_PAGE + 99} events" in told
    assert "factcheck verify" in told
    assert not (tmp_path / "sources.ndjson").exists()


def test_an_export_that_cannot_start_keeps_the_earlier_one(tmp_path: Path) -> None:
    earlier = tmp_path / "sources.ndjson"
    earlier.write_text("yesterday's export\n")
    nowhere = f"http://127.0.0.1:{free_port()}"
    urls = ["--sources-url", nowhere, "--claims-url", nowhere]
    exported = CliRunner().invoke(cli, ["export", "--out", str(tmp_path), *urls])
    assert exported.exit_code == 1, exported.output
    assert earlier.read_text() == "yesterday's export\n"
    assert sorted(path.name for path in tmp_path.iterdir()) == ["sources.ndjson"]
