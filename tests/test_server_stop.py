"""A server stops in time: even when a connection reaches it just as it stops listening, and
when requests wait on it for longer than it waits for them."""

import asyncio
import socket
import threading
import time

import httpx
import pytest
import uvicorn
from fastapi import FastAPI

from services.sources.application import SourcesApplication
from services.sources.domain import Source
from shared.errors import RESTART_SECONDS, Unavailable
from shared.server import STOP_LIMIT_SECONDS, STOP_WAIT_SECONDS, Server, server_config
from shared.settings import SourcesSettings
from tests.conftest import KnownClaims, read_connections_held, sources_service
from tests.servers import free_port, started
from tests.test_sources_rejections import assert_problem

POLL = b"GET /poll HTTP/1.1\r\nHost: test\r\n\r\n"


def test_a_connection_accepted_as_the_server_stops_does_not_keep_it_running() -> None:
    app = FastAPI()
    holding = threading.Event()

    @app.get("/hold")
    async def hold() -> dict[str, str]:
        """Holds the event loop, so that a connection made meanwhile is accepted late."""
        holding.set()
        time.sleep(0.5)
        return {}

    @app.get("/poll")
    async def poll() -> dict[str, str]:
        return {}

    port = free_port()
    server = Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = started(server)
    holder = threading.Thread(target=httpx.get, args=(f"http://127.0.0.1:{port}/hold",))
    holder.start()
    assert holding.wait(10)
    server.should_exit = True
    polls, closed = 0, False
    with socket.create_connection(("127.0.0.1", port), timeout=5) as late:
        deadline = time.monotonic() + 10
        while not closed and time.monotonic() < deadline:
            try:
                late.sendall(POLL)
                closed = not late.recv(65536)
            except ConnectionError:
                closed = True
            polls += not closed
    thread.join(10)
    holder.join(10)
    assert closed, f"the server answered {polls} polls after it was told to stop"
    assert not thread.is_alive()


WORKER_THREADS = 40
"""The threads reads share: anyio's default."""
WAITING_READS = 60
"""More reads than the service has worker threads, each waiting for a pooled connection."""


async def test_reads_still_waiting_when_the_server_stops_are_answered_503(
    database_url: str, known_claims: KnownClaims
) -> None:
    """Reads waiting for a thread past the server's wait are answered 503, saying why, not
    500 nor a dropped connection; those a thread had begun finish first; and the server stops
    once they have, without waiting for the others. Writes are refused from then on, to be
    retried. Every answer given while it stops closes its connection, which the server no
    longer reads from."""
    with sources_service(database_url, known_claims) as app:
        port = free_port()
        server = Server(server_config(app, "127.0.0.1", port, "warning"), app.state.stopping)
        thread = started(server)
        async with httpx.AsyncClient(
            base_url=f"http://127.0.0.1:{port}",
            timeout=60,
            limits=httpx.Limits(max_connections=WAITING_READS),
        ) as client:
            with read_connections_held(app.state.engine):
                reads = [asyncio.create_task(client.get("/sources")) for _ in range(WAITING_READS)]
                await asyncio.sleep(1)
                asked_to_stop = time.monotonic()
                server.should_exit = True
                await asyncio.sleep(STOP_WAIT_SECONDS + 1)
                with pytest.raises(Unavailable, match="stopping") as refused:
                    app.state.sources.register_source("too late", "wire")
                assert refused.value.retry_after == RESTART_SECONDS
            await asyncio.to_thread(thread.join, STOP_LIMIT_SECONDS)
            stopped_after = time.monotonic() - asked_to_stop
            answers = await asyncio.gather(*reads, return_exceptions=True)
    assert not thread.is_alive()
    assert stopped_after < STOP_LIMIT_SECONDS + 2, stopped_after
    failed = [answer for answer in answers if isinstance(answer, BaseException)]
    assert not failed, f"{len(failed)} reads got no answer, as {failed[0]!r}"
    stopped = [answer for answer in answers if answer.status_code == 503]
    assert len(stopped) >= WAITING_READS - WORKER_THREADS, [a.status_code for a in answers]
    for answer in stopped:
        assert_problem(answer, 503)
        assert "stopped before it answered" in answer.json()["detail"]
        assert answer.headers["retry-after"] == "5"
    assert {answer.headers.get("connection") for answer in answers} == {"close"}


def test_closing_waits_for_a_write_begun_and_refuses_new_ones(database_url: str) -> None:
    """A stopping server closes the application while a write it began may still be running
    in a thread: that write is stored before the store closes, and none begins after."""
    storage = SourcesSettings(database_url=database_url).storage
    storage.prepare()
    application = SourcesApplication(storage, KnownClaims())
    deciding, decided = threading.Event(), threading.Event()

    def write() -> None:
        with application.recording() as begun:
            deciding.set()
            decided.wait(10)
            begun.add(Source(name="agency", kind="wire", url=None, country=None, notes=None))

    writer = threading.Thread(target=write)
    writer.start()
    assert deciding.wait(10)
    closing = threading.Thread(target=application.close)
    closing.start()
    time.sleep(0.3)
    assert closing.is_alive(), "the store closed while a write was being decided"
    with pytest.raises(Unavailable, match="stopping"):
        application.register_source("too late", "wire")
    decided.set()
    writer.join(10)
    closing.join(10)
    assert not closing.is_alive()
    reopened = SourcesApplication(storage, KnownClaims())
    try:
        assert reopened.head() == 1
    finally:
        reopened.close()
