"""The server keeps an idle connection open longer than clients keep one to reuse."""

import socket
import time

from fastapi import FastAPI

from tests.servers import free_port, serving

REQUEST = b"GET /ping HTTP/1.1\r\nHost: test\r\n\r\n"
IDLE_SECONDS = 5.5
"""Past httpx's 5 s, after which it opens a new connection rather than reuse an idle one."""


def _answer(connection: socket.socket) -> bytes:
    """Send REQUEST on `connection`; what comes back (b"" if the server closed it)."""
    connection.sendall(REQUEST)
    try:
        return connection.recv(65536)
    except ConnectionError:
        return b""


def test_an_idle_connection_is_still_open_when_a_client_reuses_it() -> None:
    app = FastAPI()

    @app.get("/ping")
    async def ping() -> dict[str, str]:
        return {}

    port = free_port()
    with serving(app, port), socket.create_connection(("127.0.0.1", port), timeout=5) as kept:
        first = _answer(kept)
        time.sleep(IDLE_SECONDS)
        again = _answer(kept)
    assert first.startswith(b"HTTP/1.1 200"), first
    assert again.startswith(b"HTTP/1.1 200"), "the server closed the idle connection"
