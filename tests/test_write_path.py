"""The write path under retries and contention: idempotency keys, If-Match, 16 writers."""

import bisect
import itertools
import threading
import time
import uuid
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from eventsourcing.persistence import OperationalError as StoreOperationalError
from eventsourcing.persistence import RecordConflictError
from fastapi import FastAPI

from services.claims.replay import replay_verdict
from services.sources.application import SourcesApplication
from services.sources.bootstrap import create_app
from services.sources.domain import Source
from shared.chain import verify
from shared.eventstore import Write
from shared.feed import feed_item
from shared.settings import SourcesSettings
from shared.timeaxes import parse_instant
from tests.conftest import KnownClaims, Services
from tests.newsroom import new_claim, new_source, verdict
from tests.servers import serving
from tests.test_faults import lose_the_next_answer
from tests.test_sources_api import evidence_body
from tests.test_sources_rejections import assert_problem


class SlowClaims(KnownClaims):
    """A claim check that takes longer than the client is willing to wait."""

    def exists(self, claim_id: uuid.UUID) -> bool:
        time.sleep(0.6)
        return super().exists(claim_id)


@pytest.mark.parametrize("retried_at_once", [True, False])
def test_a_write_stored_but_not_answered_is_found_by_its_key_and_keeps_the_chain_whole(
    database_url: str, monkeypatch: pytest.MonkeyPatch, retried_at_once: bool
) -> None:
    """The commit reaches the database and the connection drops before its answer: the client
    gets 503 and retries with its key, at once or after a write without one."""
    app = create_app(SourcesSettings(database_url=database_url), claims=KnownClaims())
    with serving(app) as base_url, httpx.Client(base_url=base_url, timeout=10) as client:
        dropped = StoreOperationalError("the connection dropped after COMMIT was sent")
        lose_the_next_answer(monkeypatch, app.state.sources, dropped)
        body = {"name": "agency", "kind": "k"}
        headers = {"Idempotency-Key": "newsroom-1c9e"}
        lost = client.post("/sources", json=body, headers=headers)
        assert_problem(lost, 503, None)
        if not retried_at_once:
            other = client.post("/sources", json={"name": "other", "kind": "k"})
            assert other.status_code == 201, other.text
        retried = client.post("/sources", json=body, headers=headers)
        assert retried.status_code == 201, retried.text
        assert retried.json()["position"] == 1, "the write that was not answered"
        expected = ["agency"] if retried_at_once else ["agency", "other"]
        names = sorted(source["name"] for source in client.get("/sources").json())
        assert names == expected
        checked = client.get("/audit/verify").json()
        assert (checked["ok"], checked["count"]) == (True, len(expected))


def test_a_client_that_retries_after_a_timeout_records_once(database_url: str) -> None:
    claims = SlowClaims()
    app = create_app(SourcesSettings(database_url=database_url), claims=claims)
    with serving(app) as base_url, httpx.Client(base_url=base_url) as client:
        source = client.post("/sources", json={"name": "agency", "kind": "k"}).json()
        body = evidence_body(source["id"], claims.add())
        headers = {"Idempotency-Key": "newsroom-7f3a"}
        with pytest.raises(httpx.ReadTimeout):
            client.post("/evidence", json=body, headers=headers, timeout=0.2)
        time.sleep(1.0)
        retried = client.post("/evidence", json=body, headers=headers, timeout=10)
        assert retried.status_code == 201, retried.text
        again = client.post("/evidence", json=body, headers=headers, timeout=10)
        assert again.json() == retried.json()
        submitted = [
            item
            for item in client.get("/feed").json()["items"]
            if item["type"] == "EvidenceSubmitted"
        ]
        assert len(submitted) == 1
        assert submitted[0]["position"] == retried.json()["position"]
        assert submitted[0]["metadata"]["idempotency_key"] == "newsroom-7f3a"

        changed = client.post(
            "/evidence", json={**body, "summary": "another text"}, headers=headers, timeout=10
        )
        assert_problem(changed, 422, "Idempotency-Key")
        assert client.get("/feed").json()["head"] == submitted[0]["position"]

    restarted = create_app(SourcesSettings(database_url=database_url), claims=claims)
    with serving(restarted) as base_url, httpx.Client(base_url=base_url, timeout=10) as client:
        after_restart = client.post("/evidence", json=body, headers=headers)
        assert after_restart.json() == retried.json(), "the key outlives the process"


class HeldClaims(KnownClaims):
    """A claim check that waits until the test lets it answer, as a slow claims service."""

    def __init__(self) -> None:
        super().__init__()
        self.asked = threading.Semaphore(0)
        self.answer = threading.Event()

    def exists(self, claim_id: uuid.UUID) -> bool:
        self.asked.release()
        self.answer.wait(timeout=30)
        return super().exists(claim_id)


def test_a_keyed_write_waiting_on_the_claims_service_holds_up_no_other_write(
    database_url: str,
) -> None:
    claims = HeldClaims()
    app = create_app(SourcesSettings(database_url=database_url), claims=claims)
    with serving(app) as base_url, httpx.Client(base_url=base_url, timeout=10) as client:
        source = client.post("/sources", json={"name": "agency", "kind": "k"}).json()
        body = evidence_body(source["id"], claims.add())
        headers = {"Idempotency-Key": "newsroom-7f3a"}
        answers: list[httpx.Response] = []

        def submit() -> None:
            with httpx.Client(base_url=base_url, timeout=30) as own:
                answers.append(own.post("/evidence", json=body, headers=headers))

        writers = [threading.Thread(target=submit) for _ in range(2)]
        for writer in writers:
            writer.start()
        assert claims.asked.acquire(timeout=10), "the claim check was never asked"
        try:
            other = client.post("/sources", json={"name": "other", "kind": "k"}, timeout=3)
            assert other.status_code == 201, other.text
            for n in range(100):
                keyed = client.post(
                    "/sources",
                    json={"name": f"keyed {n}", "kind": "k"},
                    headers={"Idempotency-Key": f"another-{n}"},
                    timeout=3,
                )
                assert keyed.status_code == 201, keyed.text
            head = client.get("/feed", timeout=3).json()["head"]
            assert head == keyed.json()["position"]
            assert not claims.asked.acquire(timeout=0.5), "the same key was checked twice"
        finally:
            claims.answer.set()
            for writer in writers:
                writer.join(timeout=30)
        assert [answer.status_code for answer in answers] == [201, 201]
        assert answers[0].json() == answers[1].json()
        submitted = [
            item
            for item in client.get("/feed", params={"limit": 1000}).json()["items"]
            if item["type"] == "EvidenceSubmitted"
        ]
        assert [item["position"] for item in submitted] == [answers[0].json()["position"]]


def test_if_match_refuses_a_stale_version(services: Services) -> None:
    source = new_source(services, "agency")
    rating = {"reliability": "B", "rationale": "x"}
    path = f"/sources/{source}/ratings"
    first = services.sources.post(path, json=rating, headers={"If-Match": '"1"'})
    assert first.status_code == 201, first.text
    assert first.json()["version"] == 2
    before = services.sources.get("/feed").json()["head"]
    stale = services.sources.post(path, json=rating, headers={"If-Match": "1"})
    assert_problem(stale, 409, "If-Match")
    assert stale.json()["current_version"] == 2
    assert_problem(
        services.sources.post(path, json=rating, headers={"If-Match": "v2"}), 422, "If-Match"
    )
    assert services.sources.get("/feed").json()["head"] == before
    claim = new_claim(services)
    ruling = {"status": "suspected", "rationale": "x", "effective_at": "2024-01-06T00:00:00Z"}
    stale_claim = services.claims.post(
        f"/claims/{claim}/rulings", json=ruling, headers={"If-Match": "5"}
    )
    assert_problem(stale_claim, 409, "If-Match")
    assert stale_claim.json()["current_version"] == 1


def test_without_if_match_a_conflicting_append_is_retried(
    database_url: str, sources_app: Any
) -> None:
    """Another process rates the source between this one's read and its write."""
    storage = SourcesSettings(database_url=database_url).storage
    other = SourcesApplication(storage, KnownClaims())
    source_id = sources_app.state.sources.register_source("agency", "k").id

    class Racing(SourcesApplication):
        name = SourcesApplication.name
        raced = False

        def get_aggregate(self, kind: Any, aggregate_id: uuid.UUID, what: str) -> Any:
            found = super().get_aggregate(kind, aggregate_id, what)
            if not self.raced:
                self.raced = True
                other.rate_source(source_id, "E", "the other writer", "other")
            return found

    racing = Racing(storage, KnownClaims())
    try:
        recorded = racing.rate_source(source_id, "A", "this writer", "me")
        assert recorded.version == 3, "registered, the other's rating, then this one"
        assert racing.repository.get(source_id).reliabilities == ["E", "A"]
        with pytest.raises(Exception, match="version 3, not 2"):
            racing.raced = False
            racing.rate_source(source_id, "B", "stale", "me", expected_version=2)
    finally:
        racing.close()
        other.close()


def test_sixteen_writers_updating_one_record_all_land(services: Services) -> None:
    """Updates without If-Match decided while an earlier one waits to be stored see it."""
    source = new_source(services, "much rated")
    claim = new_claim(services)
    statuses: list[int] = []

    def writer(index: int) -> None:
        with (
            httpx.Client(base_url=services.sources_url, timeout=60) as sources,
            httpx.Client(base_url=services.claims_url, timeout=60) as claims,
        ):
            for n in range(4):
                rating = {"reliability": "ABCDEF"[(index + n) % 6], "rationale": f"{index}/{n}"}
                statuses.append(sources.post(f"/sources/{source}/ratings", json=rating).status_code)
                ruling = {
                    "status": "suspected",
                    "rationale": f"{index}/{n}",
                    "effective_at": "2024-01-06T00:00:00Z",
                }
                statuses.append(claims.post(f"/claims/{claim}/rulings", json=ruling).status_code)

    threads = [threading.Thread(target=writer, args=(index,)) for index in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert statuses == [201] * 128
    assert len(services.sources.get(f"/sources/{source}").json()["ratings"]) == 64
    assert len(services.claims.get(f"/claims/{claim}").json()["rulings"]) == 64


def test_corrections_decided_together_cannot_make_a_cycle(services: Services) -> None:
    """Each correction's cycle check sees the other, even while it waits to be stored."""
    claim = new_claim(services)
    source = new_source(services, "agency")

    def correct(evidence: str, parent: str, barrier: threading.Barrier, out: list[int]) -> None:
        body = {"changes": {"derived_from": [parent]}, "reason": "it repeats the other"}
        with httpx.Client(base_url=services.sources_url, timeout=60) as client:
            barrier.wait()
            out.append(client.post(f"/evidence/{evidence}/correction", json=body).status_code)

    for _ in range(10):
        first, second = (
            services.sources.post("/evidence", json=evidence_body(source, claim)).json()["id"]
            for _ in range(2)
        )
        barrier = threading.Barrier(2)
        statuses: list[int] = []
        threads = [
            threading.Thread(target=correct, args=(*pair, barrier, statuses))
            for pair in ((first, second), (second, first))
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert sorted(statuses) == [201, 422]


def test_sixteen_writers_fifty_items_each_land_exactly_once(services: Services) -> None:
    claim = new_claim(services)
    sources = [new_source(services, f"source {n}", "ABCDEF"[n % 6]) for n in range(8)]
    errors: list[str] = []

    def writer(index: int) -> None:
        with httpx.Client(base_url=services.sources_url, timeout=60) as client:
            for n in range(50):
                body = evidence_body(
                    sources[(index + n) % 8],
                    claim,
                    stance="refutes" if n % 7 == 0 else "supports",
                    strength=("weak", "moderate", "strong")[n % 3],
                    published_at=f"2024-01-{1 + n % 28:02d}T{index:02d}:00:00Z",
                    summary=f"writer {index} item {n}",
                )
                response = client.post("/evidence", json=body)
                if response.status_code != 201:
                    errors.append(response.text)

    threads = [threading.Thread(target=writer, args=(index,)) for index in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []

    items: list[dict[str, Any]] = []
    after = 0
    while page := services.sources.get("/feed", params={"after": after, "limit": 1000}).json()[
        "items"
    ]:
        items.extend(page)
        after = page[-1]["position"]
    summaries = [item["data"]["summary"] for item in items if item["type"] == "EvidenceSubmitted"]
    assert len(summaries) == 800
    times = [parse_instant(item["recorded_at"]) for item in items]
    assert times == sorted(times), "recording times follow positions, even under contention"
    assert len(set(summaries)) == 800
    live = verdict(services, claim, at="2024-02-01")
    replayed = replay_verdict(
        items, claim, datetime(2024, 2, 1, 23, 59, 59, 999999, tzinfo=UTC), datetime.now(UTC)
    )
    assert live["evidence"]["items_total"] == 800
    assert live["probability"] == replayed.assessment.probability
    assert live["status"] == replayed.assessment.status
    assert (live["supporting_origins"], live["refuting_origins"]) == (
        replayed.tally.supporting,
        replayed.tally.refuting,
    )


def test_writes_stored_together_fail_one_by_one_on_a_conflict(sources_app: Any) -> None:
    """Group commit: one conflicting write among several fails alone; the others are stored."""
    sources = sources_app.state.sources
    source_id = sources.register_source("agency", "k").id
    first, second = sources.repository.get(source_id), sources.repository.get(source_id)
    first.rate(reliability="A", rationale="one", rater="me")
    second.rate(reliability="B", rationale="two", rater="me")
    other = Source(name="other", kind="k", url=None, country=None, notes=None)
    writes = []
    for aggregate in (first, second, other):
        write = Write()
        write.add(aggregate)
        writes.append(write)
    with sources.writing():
        sources._queued.extend(writes)
    sources._store_through()
    assert writes[0].recorded.version == 2
    with pytest.raises(RecordConflictError):
        writes[1].recorded  # noqa: B018
    assert writes[2].recorded.position > writes[0].recorded.position
    assert sources.repository.get(source_id).reliabilities == ["A"]
    assert [p for p, _ in sources.events_after(0, 100)][1:] == [
        writes[0].recorded.position,
        writes[2].recorded.position,
    ]
    assert verify(feed_item(p, e) for p, e in sources.events_after(0, 100)).ok


def test_every_feed_head_covers_each_event_recorded_by_its_time(sources_app: FastAPI) -> None:
    """While four writers record as fast as they can, each (head, head_known_at) the feed
    would answer covers every event recorded at or before head_known_at: none of them is
    stored past that head later."""
    application: SourcesApplication = sources_app.state.sources
    stop = threading.Event()
    heads: list[tuple[int, datetime]] = []

    def write() -> None:
        while not stop.is_set():
            application.register_source(name="wire", kind="agency")

    def read() -> None:
        while not stop.is_set():
            heads.append(application.head_and_time())

    threads = [threading.Thread(target=write) for _ in range(4)]
    threads.append(threading.Thread(target=read))
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + 30
    while (len(heads) < 300 or application.last_position < 300) and time.monotonic() < deadline:
        time.sleep(0.05)
    stop.set()
    for thread in threads:
        thread.join()
    recorded = sorted(
        (event.timestamp, position) for position, event in application.events_after(0, 100_000)
    )
    times = [at for at, _ in recorded]
    furthest = list(itertools.accumulate((position for _, position in recorded), max))
    assert len(heads) >= 300 and len(recorded) >= 300
    for head, known_at in heads:
        covered = bisect.bisect_right(times, known_at)
        assert covered == 0 or furthest[covered - 1] <= head, (head, known_at)
