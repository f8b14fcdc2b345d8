"""The server keeps an idle connection open longer than clients keep one to reuse."""

import http.client
import time

from fastapi import FastAPI

from tests.servers import free_port, serving

IDLE_SECONDS = 5.5
"""Past httpx's 5 s, after which it opens a new connection rather than reuse an idle one."""


def _status(connection: http.client.HTTPConnection) -> int | str:
    """The status of `GET /ping` on `connection`, read whole; what failed if none came."""
    try:
        connection.request("GET", "/ping")
        response = connection.getresponse()
        response.read()
    except (http.client.HTTPException, ConnectionError) as error:
        return type(error).__name__
    return response.status


def test_an_idle_connection_is_still_open_when_a_client_reuses_it() -> None:
    app = FastAPI()

    @app.get("/ping")
    async def ping() -> dict[str, str]:
        return {}

    port = free_port()
    with serving(app, port):
        kept = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        try:
            first = _status(kept)
            opened = kept.sock
            time.sleep(IDLE_SECONDS)
            again = _status(kept)
            reused = kept.sock is opened
        finally:
            kept.close()
    assert first == 200
    assert again == 200, f"the server closed the idle connection: {again}"
    assert reused, "the request went on a new connection"
