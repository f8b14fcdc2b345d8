"""A rebuild while the service serves: reads never see it half done, keyed writes never repeat."""

import threading
import time
from typing import Any

import httpx
import pytest
from sqlalchemy import Connection
from sqlalchemy.exc import OperationalError
from sqlmodel import Session, SQLModel, select

from services.claims.application import ClaimsApplication
from services.claims.projections import ClaimsProjection, ClaimView
from shared.errors import Conflict, Unavailable
from shared.idempotency import IdempotencyRecord
from shared.projection import ReadGate
from shared.settings import ClaimsSettings
from tests.conftest import Services
from tests.newsroom import new_claim, new_source, post_evidence, verdict


def test_a_closed_gate_waits_for_reads_in_progress_and_refuses_new_ones() -> None:
    gate = ReadGate()
    events: list[str] = []
    reading = threading.Event()

    def read() -> None:
        with gate.reading():
            reading.set()
            time.sleep(0.3)
            events.append("read ended")

    reader = threading.Thread(target=read)
    reader.start()
    reading.wait()
    with gate.closed(drain=5):
        events.append("rebuild ran")
        with pytest.raises(Unavailable, match="being rebuilt"), gate.reading():
            pass
        with pytest.raises(Conflict, match="already running"), gate.closed(drain=5):
            pass
    reader.join()
    assert events == ["read ended", "rebuild ran"]
    with gate.reading():
        events.append("read after")
    assert events[-1] == "read after"


def test_a_rebuild_gives_up_when_reads_do_not_end() -> None:
    gate = ReadGate()
    with gate.reading():
        with pytest.raises(Unavailable, match="did not end"), gate.closed(drain=0.1):
            pytest.fail("the rebuild must not run while a read is in progress")
        with gate.reading():
            pass


def test_claims_stay_readable_while_the_verdicts_are_rebuilt(services: Services) -> None:
    """The verdicts take long to refollow; the claims themselves are rebuilt first, apart."""
    claim = new_claim(services)
    source = new_source(services, "agency", "B")
    post_evidence(services, source, claim, "2024-01-05T12:00:00Z")
    verdict(services, claim)
    state = services.claims_app.state
    verdict_paths = [
        f"/claims/{claim}/{what}"
        for what in ("verdict", "evidence", "timeline", "history", "claimreview")
    ] + ["/follower/rejected"]
    with state.verdict_gate.closed(drain=5):
        assert services.claims.get(f"/claims/{claim}").status_code == 200
        assert services.claims.get("/claims").status_code == 200
        for path in verdict_paths:
            answer = services.claims.get(path)
            assert answer.status_code == 503, (path, answer.text)
            assert answer.headers["Retry-After"]
    with state.projection.gate.closed(drain=5):
        assert services.claims.get(f"/claims/{claim}").status_code == 503
    for path in [f"/claims/{claim}", *verdict_paths]:
        assert services.claims.get(path).status_code == 200, path


def test_reads_and_keyed_writes_during_rebuilds(services: Services) -> None:
    """Every read answers as before the rebuilds or 503; a replayed key records once."""
    claim = new_claim(services)
    source = new_source(services, "agency", "B")
    for day in range(3, 8):
        post_evidence(services, source, claim, f"2024-01-0{day}T12:00:00Z")
    expected = verdict(services, claim, at="2024-01-07")
    basis = expected["basis"]
    question = {"at": basis["at"], "known_at": basis["known_at"]}
    body = {"text": "A claim registered once, whatever the retries."}
    keyed = {"Idempotency-Key": "register-once"}
    first = services.claims.post("/claims", json=body, headers=keyed)
    assert first.status_code == 201, first.text
    stop = threading.Event()
    seen: list[tuple[str, int, Any]] = []

    def ask() -> None:
        with httpx.Client(base_url=services.claims_url, timeout=60) as client:
            while not stop.is_set():
                answer = client.get(f"/claims/{claim}/verdict", params=question)
                seen.append(("verdict", answer.status_code, answer.json()))
                answer = client.get(f"/claims/{claim}")
                seen.append(("claim", answer.status_code, answer.json()))

    def replay() -> None:
        with httpx.Client(base_url=services.claims_url, timeout=60) as client:
            while not stop.is_set():
                answer = client.post("/claims", json=body, headers=keyed)
                seen.append(("replay", answer.status_code, answer.json()))

    threads = [threading.Thread(target=ask) for _ in range(3)]
    threads += [threading.Thread(target=replay) for _ in range(2)]
    for thread in threads:
        thread.start()
    try:
        for _ in range(3):
            rebuilt = services.claims.post("/admin/rebuild")
            assert rebuilt.status_code == 200, rebuilt.text
    finally:
        stop.set()
        for thread in threads:
            thread.join()

    statuses = {(what, status) for what, status, _ in seen}
    assert statuses <= {
        (what, code) for what in ("verdict", "claim", "replay") for code in (200, 201, 503)
    }
    for what, status, answer in seen:
        if status == 503:
            assert answer["status"] == 503
        elif what == "verdict":
            assert (answer["probability"], answer["status"], answer["basis"]) == (
                expected["probability"],
                expected["status"],
                basis,
            )
        elif what == "claim":
            assert answer["id"] == claim
        else:
            assert answer["id"] == first.json()["id"]
    assert ("verdict", 200) in statuses and ("replay", 201) in statuses
    feed = services.claims.get("/feed", params={"limit": 1000}).json()["items"]
    registered = [item for item in feed if item["data"].get("text") == body["text"]]
    assert len(registered) == 1


def test_a_key_recorded_twice_keeps_the_first_write(claims_database_url: str) -> None:
    """A log may hold a key twice from before keyed writes waited out rebuilds."""
    storage = ClaimsSettings(database_url=claims_database_url).storage
    storage.prepare()
    application = ClaimsApplication(storage)
    engine = storage.create_engine()
    try:
        metadata = {"actor": "newsroom", "idempotency_key": "k", "request_hash": "h"}
        once = application.register_claim("first", metadata=metadata)
        application.register_claim("second", metadata=metadata)
        projection = ClaimsProjection(engine, application)
        projection.create_tables()
        assert projection.catch_up() == application.head()
        with Session(engine) as session:
            record = session.get_one(IdempotencyRecord, ("newsroom", "k"))
        assert (record.stream_id, record.position) == (once.id, once.position)
    finally:
        engine.dispose()
        application.close()


def test_a_rebuild_that_fails_leaves_the_read_models_serving(claims_database_url: str) -> None:
    storage = ClaimsSettings(database_url=claims_database_url).storage
    storage.prepare()
    application = ClaimsApplication(storage)
    engine = storage.create_engine()

    class Locked(ClaimsProjection):
        """Its drop fails part-way: the first table is gone when the database refuses more."""

        def drop_tables(self, connection: Connection) -> None:
            SQLModel.metadata.drop_all(connection, tables=self.tables[:1])
            raise OperationalError("DROP TABLE", {}, Exception("database is locked"))

    try:
        application.register_claim("a claim")
        projection = Locked(engine, application)
        projection.create_tables()
        head = projection.catch_up()
        with pytest.raises(OperationalError):
            projection.rebuild()
        assert projection.wait_for_writes(timeout=0.5), "what was applied still counts"
        with Session(engine) as session:
            assert [claim.text for claim in session.exec(select(ClaimView))] == ["a claim"]
        application.register_claim("another claim")
        assert projection.catch_up() == head + 1
    finally:
        engine.dispose()
        application.close()
