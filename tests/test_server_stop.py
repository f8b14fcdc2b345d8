"""A server stops even when a connection reaches it just as it stops listening."""

import socket
import threading
import time

import httpx
import uvicorn
from fastapi import FastAPI

from shared.server import Server
from tests.servers import free_port, started

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
