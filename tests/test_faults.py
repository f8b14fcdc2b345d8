"""Faults: the database refusing connections, and the sources service going away."""

import os
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import Connection, Engine, text
from sqlalchemy.exc import NoSuchTableError
from sqlmodel import Session, select

from bench.bulk import fill
from services.claims.application import ClaimsApplication
from services.claims.bootstrap import create_app as create_claims_app
from services.claims.projections import APPLYING_INDEXES, ClaimsProjection, ClaimView
from services.sources.bootstrap import create_app as create_sources_app
from shared.chain import verify
from shared.eventstore import FactcheckApplication
from shared.holds import HOLDER
from shared.routes import every_item
from shared.settings import ClaimsSettings, SourcesSettings
from shared.storage import CONNECT_SECONDS, StorageConfigError, parse_storage_url
from shared.timeaxes import RecordingClock
from tests.conftest import POSTGRES_URL, coming_and_going
from tests.newsroom import KHARKIV_CLAIM
from tests.servers import free_port, serving
from tests.tcpproxy import Proxy
from tests.test_projection_replay import DECLARED_INDEXES, verdict_indexes
from tests.test_sources_rejections import assert_problem


@pytest.fixture
def proxy() -> Iterator[Proxy]:
    with Proxy(urlsplit(POSTGRES_URL).port or 5432) as running:
        yield running


def _through(proxy: Proxy, url: str) -> str:
    return url.replace(f":{urlsplit(POSTGRES_URL).port or 5432}/", f":{proxy.port}/", 1)


def _claims_through(proxy: Proxy, claims_database_url: str, sources_port: int) -> FastAPI:
    """A claims service whose database connections pass through `proxy`."""
    return create_claims_app(
        ClaimsSettings(
            database_url=_through(proxy, claims_database_url),
            sources_url=f"http://127.0.0.1:{sources_port}",
            follower_wait=0.5,
            read_wait=1.0,
        )
    )


def _eventually(call: "callable", expected: int, timeout: float = 30.0) -> httpx.Response:  # type: ignore[valid-type]
    deadline = time.monotonic() + timeout
    while True:
        response = call()
        if response.status_code == expected or time.monotonic() > deadline:
            return response
        time.sleep(0.25)


@pytest.mark.parametrize("storage_kind", ["postgres"])
def test_database_down_answers_503_then_serves_again(
    proxy: Proxy, database_url: str, claims_database_url: str
) -> None:
    sources_port, claims_port = free_port(), free_port()
    claims_app = _claims_through(proxy, claims_database_url, sources_port)
    sources_app = create_sources_app(
        SourcesSettings(
            database_url=_through(proxy, database_url),
            claims_url=f"http://127.0.0.1:{claims_port}",
        )
    )
    with (
        serving(sources_app, sources_port) as sources_url,
        serving(claims_app, claims_port) as claims_url,
        httpx.Client(base_url=sources_url, timeout=60) as sources,
        httpx.Client(base_url=claims_url, timeout=60) as claims,
    ):
        claim = claims.post("/claims", json={"text": KHARKIV_CLAIM}).json()["id"]
        source = sources.post("/sources", json={"name": "before", "kind": "k"}).json()["id"]

        proxy.cut()
        for response in (
            sources.post("/sources", json={"name": "during", "kind": "k"}),
            sources.get(f"/sources/{source}"),
            claims.post("/claims", json={"text": "during the outage"}),
            claims.get(f"/claims/{claim}"),
        ):
            assert response.status_code == 503, response.text
            assert response.headers["content-type"] == "application/problem+json"
            assert int(response.headers["Retry-After"]) >= 1

        proxy.restore()
        after = _eventually(
            lambda: sources.post("/sources", json={"name": "after", "kind": "k"}), 201
        )
        assert after.status_code == 201, after.text
        assert _eventually(lambda: claims.get(f"/claims/{claim}"), 200).status_code == 200
        names = [item["data"].get("name") for item in sources.get("/feed").json()["items"]]
        assert names == ["before", "after"], "nothing recorded during the outage, nothing lost"
        evidence = sources.post(
            "/evidence",
            json={
                "source_id": source,
                "claim_id": claim,
                "stance": "supports",
                "strength": "weak",
                "published_at": "2024-01-05T00:00:00Z",
                "summary": "after the outage",
            },
        )
        assert evidence.status_code == 201, evidence.text
        answer = _eventually(
            lambda: claims.get(
                f"/claims/{claim}/verdict", params={"min_position": evidence.json()["position"]}
            ),
            200,
        )
        assert answer.json()["supporting_origins"] == 1


@pytest.mark.parametrize("storage_kind", ["postgres"])
def test_a_database_slow_to_let_connections_in_delays_a_start_without_failing_it(
    proxy: Proxy, database_url: str
) -> None:
    proxy.connect_delay = CONNECT_SECONDS / 2
    sources_app = create_sources_app(
        SourcesSettings(database_url=_through(proxy, database_url), claims_url="http://127.0.0.1:9")
    )
    with serving(sources_app, free_port()) as url, httpx.Client(base_url=url, timeout=30) as client:
        created = client.post("/sources", json={"name": "slow start", "kind": "k"})
        assert created.status_code == 201, created.text
        assert client.get(f"/sources/{created.json()['id']}").json()["name"] == "slow start"


def test_the_follower_backs_off_while_sources_is_down_and_catches_up(
    database_url: str, claims_database_url: str
) -> None:
    services = coming_and_going(database_url, claims_database_url)
    with (
        serving(services.claims_app, services.claims_port) as claims_url,
        httpx.Client(base_url=claims_url) as claims,
    ):
        claim = claims.post("/claims", json={"text": KHARKIV_CLAIM}).json()["id"]
        with services.serve_sources() as sources_url:
            source = httpx.post(f"{sources_url}/sources", json={"name": "s", "kind": "k"}).json()
        down = _eventually(lambda: claims.get("/health"), 200)
        deadline = time.monotonic() + 10
        while claims.get("/health").json()["follower"]["connected"] and time.monotonic() < deadline:
            time.sleep(0.1)
        health = claims.get("/health").json()
        assert health["status"] == "degraded", (down.text, health)
        assert "ConnectError" in health["follower"]["last_error"]

        with services.serve_sources() as sources_url:
            written = httpx.post(
                f"{sources_url}/evidence",
                json={
                    "source_id": source["id"],
                    "claim_id": claim,
                    "stance": "supports",
                    "strength": "moderate",
                    "published_at": "2024-01-05T00:00:00Z",
                    "summary": "recorded while the follower was away",
                },
            ).json()
            answer = claims.get(
                f"/claims/{claim}/verdict", params={"min_position": written["position"]}
            )
            assert answer.status_code == 200, answer.text
            assert answer.json()["supporting_origins"] == 1
            health = claims.get("/health").json()
            assert health["status"] == "ok"
            assert health["follower"]["lag"] == 0
    assert uuid.UUID(claim)


def _indexes_between_drops(engine: Engine) -> set[str]:
    """The verdict read models' indexes, or none while a rebuild has dropped the tables."""
    try:
        return verdict_indexes(engine)
    except NoSuchTableError:
        return set()


@pytest.mark.parametrize("storage_kind", ["postgres"])
def test_a_rebuild_cut_off_by_the_database_gets_the_readers_indexes_back_once_it_returns(
    proxy: Proxy, database_url: str, claims_database_url: str
) -> None:
    """The refollow breaks off with the readers' indexes left out; following builds them."""
    loaded = fill(database_url, claims_database_url, [4000])
    claim = loaded.claims[4000]
    watcher = parse_storage_url("CLAIMS_DATABASE_URL", claims_database_url).create_engine()
    sources_port, claims_port = free_port(), free_port()
    claims_app = _claims_through(proxy, claims_database_url, sources_port)
    sources_app = create_sources_app(
        SourcesSettings(database_url=database_url, claims_url=f"http://127.0.0.1:{claims_port}")
    )
    question = {
        "at": "2024-12-31T00:00:00Z",
        "known_at": datetime.now(UTC).isoformat(),
        "min_position": loaded.events,
    }
    answers: list[httpx.Response] = []
    try:
        with (
            serving(sources_app, sources_port),
            serving(claims_app, claims_port) as claims_url,
            httpx.Client(base_url=claims_url, timeout=60) as claims,
        ):
            before = _eventually(
                lambda: claims.get(f"/claims/{claim}/verdict", params=question), 200
            )
            assert before.status_code == 200, before.text
            rebuild = threading.Thread(target=lambda: answers.append(claims.post("/admin/rebuild")))
            rebuild.start()
            deadline = time.monotonic() + 60
            while _indexes_between_drops(watcher) != APPLYING_INDEXES:
                assert time.monotonic() < deadline, "the rebuild never dropped the read models"
                time.sleep(0.005)
            proxy.cut()
            rebuild.join()
            assert answers[0].status_code == 503, answers[0].text
            assert answers[0].headers["content-type"] == "application/problem+json"
            assert verdict_indexes(watcher) < DECLARED_INDEXES, "cut off before all were built"

            proxy.restore()
            after = _eventually(
                lambda: claims.get(f"/claims/{claim}/verdict", params=question), 200
            )
            assert after.json() == before.json()
            deadline = time.monotonic() + 30
            while verdict_indexes(watcher) != DECLARED_INDEXES and time.monotonic() < deadline:
                time.sleep(0.1)
            assert verdict_indexes(watcher) == DECLARED_INDEXES
    finally:
        watcher.dispose()


def claims_application(database_url: str) -> ClaimsApplication:
    """The claims service's application on the test's store."""
    storage = parse_storage_url("CLAIMS_DATABASE_URL", database_url)
    storage.prepare()
    return ClaimsApplication(storage)


def test_a_projection_recovers_from_a_commit_that_landed_but_did_not_answer(
    database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    application = claims_application(database_url)
    engine = application.storage.create_engine()
    try:
        projection = ClaimsProjection(engine, application)
        projection.create_tables()
        projection.catch_up()
        application.register_claim("first")
        commit = Session.commit
        drops = [ConnectionError("the connection dropped after COMMIT was sent")]

        def commit_then_drop(session: Session) -> None:
            commit(session)
            if drops:
                raise drops.pop()

        monkeypatch.setattr(Session, "commit", commit_then_drop)
        with pytest.raises(ConnectionError):
            projection.catch_up()
        assert projection.catch_up() == application.head()
        application.register_claim("second")
        assert projection.catch_up() == application.head()
        with Session(engine) as session:
            texts = sorted(claim.text for claim in session.exec(select(ClaimView)))
        assert texts == ["first", "second"]
    finally:
        application.close()
        engine.dispose()


def lose_the_next_answer(
    monkeypatch: pytest.MonkeyPatch, application: FactcheckApplication, error: Exception
) -> None:
    """Make the application's next store reach the database, then raise `error`, as when the
    connection drops after `COMMIT` was sent; the stores after it answer as usual."""
    insert = application.recorder.insert_events
    drops = [error]

    def insert_then_drop(*args: Any, **kwargs: Any) -> Any:
        inserted = insert(*args, **kwargs)
        if drops:
            raise drops.pop()
        return inserted

    monkeypatch.setattr(application.recorder, "insert_events", insert_then_drop)


def test_a_write_that_landed_but_did_not_answer_leaves_the_chain_whole(
    database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    application = claims_application(database_url)
    try:
        application.register_claim("first")
        lose_the_next_answer(
            monkeypatch,
            application,
            ConnectionError("the connection dropped after COMMIT was sent"),
        )
        with pytest.raises(ConnectionError):
            application.register_claim("second")
        third = application.register_claim("third")
        assert third.position == 3
        assert application.last_position == 3
        checked = verify(every_item(application))
        assert (checked.ok, checked.reason, checked.count) == (True, None, 3)
    finally:
        application.close()


def test_the_recording_clock_stays_past_a_time_already_recorded() -> None:
    clock = RecordingClock()
    recorded = datetime.now(UTC) + timedelta(hours=1)
    clock.not_before(recorded)
    first, second = clock.now(), clock.now()
    assert recorded < first < second


SKEWED_SOURCES = """
import sys
from datetime import UTC, datetime, timedelta
from shared.cli import app
from shared.timeaxes import recording_clock
recording_clock.not_before(datetime.now(UTC) + timedelta(seconds=float(sys.argv[1])))
app(["serve", "--service", "sources", "--port", sys.argv[2]])
"""
"""The sources service alone, in a process of its own whose recording clock runs ahead."""


@contextmanager
def sources_clock_ahead(
    tmp_path: Path, ahead: timedelta, port: int, claims_url: str
) -> Iterator[httpx.Client]:
    """A sources service on `port` whose clock is `ahead` of this process's, asking
    `claims_url` about claims."""
    env = {
        **os.environ,
        "SOURCES_DATABASE_URL": f"sqlite:///{tmp_path / 'sources.db'}",
        "CLAIMS_URL": claims_url,
    }
    process = subprocess.Popen(
        [sys.executable, "-c", SKEWED_SOURCES, str(ahead.total_seconds()), str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10) as client:
            deadline = time.monotonic() + 60
            while not _answers(client):
                assert process.poll() is None, "the sources service exited"
                assert time.monotonic() < deadline, "the sources service did not come up"
                time.sleep(0.2)
            yield client
    finally:
        process.terminate()
        process.wait(timeout=30)


def _answers(client: httpx.Client) -> bool:
    try:
        return client.get("/health").status_code == 200
    except httpx.HTTPError:
        return False


def test_a_sources_clock_ahead_of_the_claims_clock_gives_bases_that_hold(
    tmp_path: Path,
) -> None:
    """Every basis can be asked again, however far ahead the sources service's clock runs:
    an item it has recorded in this service's future is left out until that time comes, and
    each service's `/health` gives its clock, so that the difference shows."""
    ahead = timedelta(minutes=10)
    claims_port, sources_port = free_port(), free_port()
    claims_app = create_claims_app(
        ClaimsSettings(
            database_url=f"sqlite:///{tmp_path / 'claims.db'}",
            sources_url=f"http://127.0.0.1:{sources_port}",
            follower_wait=0.5,
            read_wait=1.0,
        )
    )
    claims_url = f"http://127.0.0.1:{claims_port}"
    with (
        serving(claims_app, claims_port),
        httpx.Client(base_url=claims_url, timeout=10) as claims,
        sources_clock_ahead(tmp_path, ahead, sources_port, claims_url) as sources,
    ):
        claim = claims.post("/claims", json={"text": KHARKIV_CLAIM}).json()["id"]
        source = sources.post("/sources", json={"name": "agency", "kind": "k"}).json()["id"]
        item = sources.post(
            "/evidence",
            json={
                "source_id": source,
                "claim_id": claim,
                "stance": "supports",
                "strength": "strong",
                "published_at": "2024-01-05T00:00:00Z",
                "summary": "recorded in the claims service's future",
            },
        ).json()
        assert datetime.fromisoformat(item["recorded_at"]) > datetime.now(UTC) + ahead / 2
        deadline = time.monotonic() + 30
        while claims.get("/health").json()["follower"]["position"] < item["position"]:
            assert time.monotonic() < deadline, "the follower did not apply the item"
            time.sleep(0.1)
        path = f"/claims/{claim}/verdict"
        first = claims.get(path)
        assert first.status_code == 200, first.text
        basis = first.json()["basis"]
        assert datetime.fromisoformat(basis["known_at"]) <= datetime.now(UTC)
        assert basis["position"] < item["position"]
        assert first.json()["status"] == "unverified"
        again = claims.get(path, params={"at": basis["at"], "known_at": basis["known_at"]})
        assert again.status_code == 200, again.text
        assert again.json() == first.json()
        own_write = claims.get(path, params={"min_position": item["position"]})
        assert_problem(own_write, 503)
        assert "clocks differ" in own_write.json()["detail"]
        retry = timedelta(seconds=int(own_write.headers["Retry-After"]))
        assert ahead - timedelta(seconds=30) < retry <= ahead + timedelta(seconds=1)
        clocks = [
            datetime.fromisoformat(client.get("/health").json()["clock"])
            for client in (claims, sources)
        ]
        assert ahead - timedelta(seconds=30) < clocks[1] - clocks[0] <= ahead, "health shows it"


def _lock_holder(connection: Connection, key: str) -> int | None:
    """The process id of the session holding the store's lock, if one does."""
    return connection.execute(HOLDER, {"key": key}).scalar()


@pytest.mark.parametrize("storage_kind", ["postgres"])
def test_a_store_lock_lost_with_its_connection_is_taken_again(database_url: str) -> None:
    """The database ends the session holding the store's lock, as a restart would: the
    service takes the lock again, so a second process is still refused, and writes go on."""
    storage = parse_storage_url("SOURCES_DATABASE_URL", database_url)
    key = f"factcheck:{storage.schema}"
    app = create_sources_app(SourcesSettings(database_url=database_url))
    admin = storage.create_engine().execution_options(isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as connection:
            first = _lock_holder(connection, key)
            assert first is not None
            connection.execute(text("SELECT pg_terminate_backend(:pid, 5000)"), {"pid": first})
            deadline = time.monotonic() + 10
            while _lock_holder(connection, key) in (None, first) and time.monotonic() < deadline:
                time.sleep(0.1)
            assert _lock_holder(connection, key) not in (None, first)
        with pytest.raises(StorageConfigError, match="another process already serves"):
            create_sources_app(SourcesSettings(database_url=database_url))
        with serving(app) as url, httpx.Client(base_url=url) as client:
            written = client.post("/sources", json={"name": "after", "kind": "k"})
            assert written.status_code == 201, written.text
    finally:
        app.state.application.close()
        admin.dispose()


@pytest.mark.parametrize("storage_kind", ["postgres"])
def test_a_store_taken_over_while_its_lock_was_lost_refuses_writes(database_url: str) -> None:
    """Another session takes the store's lock the moment the service's lock session ends: the
    service refuses every write from then on, since the other may have written, and says why."""
    storage = parse_storage_url("SOURCES_DATABASE_URL", database_url)
    key = f"factcheck:{storage.schema}"
    app = create_sources_app(SourcesSettings(database_url=database_url))
    other = storage.create_engine().execution_options(isolation_level="AUTOCOMMIT")
    try:
        with (
            serving(app) as url,
            httpx.Client(base_url=url) as client,
            other.connect() as connection,
        ):
            assert client.post("/sources", json={"name": "before", "kind": "k"}).status_code == 201
            connection.execute(
                text(
                    "SELECT pg_terminate_backend(:pid, 5000), "
                    "pg_advisory_lock(hashtextextended(:key, 0))"
                ),
                {"pid": _lock_holder(connection, key), "key": key},
            )
            deadline = time.monotonic() + 10
            while (
                client.get("/health").json()["writes_refused"] is None
                and time.monotonic() < deadline
            ):
                time.sleep(0.1)
            assert "another process took" in client.get("/health").json()["writes_refused"]
            refused = client.post("/sources", json={"name": "after", "kind": "k"})
            assert_problem(refused, 503)
            assert "another process took this store over" in refused.json()["detail"]
            assert client.post("/admin/rebuild").status_code == 200
            assert_problem(client.post("/sources", json={"name": "after", "kind": "k"}), 503)
            names = [item["data"]["name"] for item in client.get("/feed").json()["items"]]
            assert names == ["before"]
    finally:
        app.state.application.close()
        other.dispose()
