"""Many reads at once, more than the service has worker threads and database connections."""

import asyncio
import time
from pathlib import Path
from uuid import UUID

import httpx
import pytest
from sqlalchemy import event

from shared.storage import READ_MODEL_CONNECTIONS
from tests.conftest import (
    KnownClaims,
    in_process,
    read_connections_held,
    serve_both,
    sources_service,
)
from tests.newsroom import new_claim, new_source, post_evidence
from tests.test_sources_rejections import assert_problem

READS = 160
"""Well over the 40 worker threads and the 15 pooled connections a service has."""
WAITING_READS = 60
"""More reads than worker threads, each waiting for a pooled connection."""


async def test_more_reads_at_once_than_threads_and_connections_are_all_answered(
    database_url: str, claims_database_url: str
) -> None:
    with serve_both(database_url, claims_database_url, read_wait=30.0) as services:
        claim = new_claim(services)
        source = new_source(services, "many readers")
        coming = services.sources.get("/feed", params={"limit": 1}).json()["head"] + 1
        async with httpx.AsyncClient(
            base_url=services.claims_url,
            timeout=90,
            limits=httpx.Limits(max_connections=READS),
        ) as claims:
            reads = [
                asyncio.create_task(
                    claims.get(f"/claims/{claim}/verdict", params={"min_position": coming})
                )
                for _ in range(READS)
            ]
            written = await asyncio.to_thread(
                post_evidence, services, source, claim, "2024-01-05T00:00:00Z"
            )
            answers = await asyncio.gather(*reads)
    assert written["position"] == coming
    failed = [(answer.status_code, answer.text) for answer in answers if answer.status_code != 200]
    assert not failed, f"{len(failed)} of {READS} reads failed, first: {failed[0]}"
    assert {answer.json()["supporting_origins"] for answer in answers} == {1}


async def test_bursts_of_reads_open_no_more_connections_than_the_pool_keeps(
    database_url: str, claims_database_url: str
) -> None:
    with serve_both(database_url, claims_database_url) as services:
        claim = new_claim(services)
        opened = 0

        def count(*_: object) -> None:
            nonlocal opened
            opened += 1

        event.listen(services.claims_app.state.engine, "connect", count)

        async def burst() -> None:
            async with httpx.AsyncClient(
                base_url=services.claims_url,
                timeout=90,
                limits=httpx.Limits(max_connections=READS),
            ) as claims:
                answers = await asyncio.gather(
                    *(claims.get(f"/claims/{claim}/verdict") for _ in range(READS))
                )
            assert [answer.status_code for answer in answers] == [200] * READS

        await burst()
        await burst()
    assert opened <= READ_MODEL_CONNECTIONS, f"two bursts opened {opened} connections"


async def test_a_claim_is_loaded_while_readers_hold_every_pooled_connection(
    database_url: str, claims_database_url: str
) -> None:
    """Readers hold a connection when they ask the verdict index; the first to ask loads the
    claim under the index's lock, which the others wait for."""
    with serve_both(database_url, claims_database_url) as services:
        claim = new_claim(services)
        source = new_source(services, "agency", "B")
        written = post_evidence(services, source, claim, "2024-01-05T00:00:00Z")
        state = services.claims_app.state
        assert state.follower.wait_for(written["position"], timeout=10)
        with read_connections_held(state.engine):
            loading = asyncio.to_thread(state.index.tally, UUID(claim), 2**62, 2**62)
            tally = await asyncio.wait_for(loading, timeout=10)
        assert tally[5] == 1, "the claim's one item, read while every pooled connection was held"


def test_a_reader_waiting_for_the_follower_holds_no_pooled_connection(
    database_url: str, claims_database_url: str
) -> None:
    """A verdict as known at a time, asked to include a position not yet applied, waits for the
    follower holding none of the readers' pooled connections, which other readers need: every
    connection it takes goes back before the wait, so the last is back a whole wait before the
    answer."""
    read_wait = 2.0
    with serve_both(database_url, claims_database_url, read_wait=read_wait) as services:
        claim = new_claim(services)
        head = services.sources.get("/feed", params={"limit": 1}).json()["head"]
        known_at = services.claims.get("/health").json()["clock"]
        uses: list[tuple[str, float]] = []
        pool = services.claims_app.state.engine.pool
        event.listen(pool, "checkout", lambda *_: uses.append(("out", time.monotonic())))
        event.listen(pool, "checkin", lambda *_: uses.append(("in", time.monotonic())))
        answer = services.claims.get(
            f"/claims/{claim}/verdict", params={"known_at": known_at, "min_position": head + 1}
        )
        answered = time.monotonic()
    assert answer.status_code == 503, answer.text
    assert "has not been applied up to position" in answer.json()["detail"]
    kinds = [kind for kind, _ in uses]
    assert kinds and kinds.count("out") == kinds.count("in"), uses
    assert answered - uses[-1][1] >= read_wait / 2, "a connection held while the reader waited"


async def test_a_read_that_finds_every_connection_in_use_says_the_service_is_busy(
    tmp_path: Path,
) -> None:
    """Not that the database cannot be reached: it can, and every pooled connection is in use
    for the pool's whole wait (30 s)."""
    with sources_service(f"sqlite:///{tmp_path / 'sources.db'}", KnownClaims()) as app:
        async with in_process(app) as sources:
            assert (await sources.get("/sources")).status_code == 200
            with read_connections_held(app.state.engine):
                busy = await sources.get("/sources")
            assert (await sources.get("/sources")).status_code == 200
    assert_problem(busy, 503)
    assert busy.headers["retry-after"] == "2"
    assert "every connection to its database is in use" in busy.json()["detail"]


async def test_the_follower_applies_while_readers_hold_every_pooled_connection(
    database_url: str, claims_database_url: str
) -> None:
    """The claim is known to the sources service first, which then does not ask about it."""
    with serve_both(database_url, claims_database_url) as services:
        claim = new_claim(services)
        source = new_source(services, "agency", "B")
        post_evidence(services, source, claim, "2024-01-04T00:00:00Z")
        state = services.claims_app.state
        with read_connections_held(state.engine):
            written = post_evidence(services, source, claim, "2024-01-05T00:00:00Z")
            applied = await asyncio.to_thread(state.follower.wait_for, written["position"], 10)
        assert applied, "the follower waited for a connection the readers held"


@pytest.mark.parametrize("asked", ["health", "write"])
@pytest.mark.parametrize("service", ["sources", "claims"])
async def test_health_and_writes_answer_while_reads_hold_every_worker_thread(
    database_url: str, claims_database_url: str, service: str, asked: str
) -> None:
    """Reads waiting for a pooled connection hold all 40 worker threads; a health check, as
    a container's, and a write still answer within 3 s."""
    with serve_both(database_url, claims_database_url) as services:
        claim = new_claim(services)
        app = services.sources_app if service == "sources" else services.claims_app
        url = services.sources_url if service == "sources" else services.claims_url
        path = "/sources" if service == "sources" else f"/claims/{claim}"
        method, asked_path, body = (
            ("GET", "/health", None)
            if asked == "health"
            else ("POST", "/sources", {"name": "agency", "kind": "wire"})
            if service == "sources"
            else ("POST", "/claims", {"text": "a claim registered while reads wait"})
        )
        async with httpx.AsyncClient(
            base_url=url, timeout=60, limits=httpx.Limits(max_connections=READS)
        ) as client:
            with read_connections_held(app.state.engine):
                reads = [asyncio.create_task(client.get(path)) for _ in range(WAITING_READS)]
                await asyncio.sleep(1)
                try:
                    answer = await client.request(method, asked_path, json=body, timeout=3)
                except httpx.TimeoutException:
                    answer = None
            answers = await asyncio.gather(*reads)
    assert answer is not None, f"the {asked} waited behind the reads"
    assert answer.status_code == (200 if asked == "health" else 201), answer.text
    if asked == "health":
        assert answer.json()["status"] == "ok", answer.text
    assert [answer.status_code for answer in answers] == [200] * WAITING_READS


@pytest.mark.parametrize("service", ["sources", "claims"])
def test_keyed_writes_are_applied_while_readers_hold_every_pooled_connection(
    database_url: str, claims_database_url: str, service: str
) -> None:
    """A keyed write looks its key up under the write lock, and the read models then apply it;
    neither waits for the connections readers hold."""
    with serve_both(database_url, claims_database_url) as services:
        app = services.sources_app if service == "sources" else services.claims_app
        client = services.sources if service == "sources" else services.claims
        path, body = (
            ("/sources", {"name": "agency", "kind": "wire"})
            if service == "sources"
            else ("/claims", {"text": "a claim registered under load"})
        )
        with read_connections_held(app.state.engine):
            answers = [
                client.post(path, json=body, headers={"Idempotency-Key": "k"}, timeout=10)
                for _ in range(2)
            ]
            applied = app.state.projection.wait_for_writes(10)
    assert [answer.status_code for answer in answers] == [201, 201], answers[0].text
    assert answers[0].json() == answers[1].json()
    assert applied, "the read models waited for a connection the readers held"
