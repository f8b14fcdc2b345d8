"""The uvicorn server every service runs on."""

import asyncio
import socket
import sys
from collections.abc import Callable
from contextlib import suppress

import uvicorn
from starlette.types import ASGIApp
from uvicorn.config import STARTUP_FAILURE

SETTLE_SECONDS = 0.05
"""How long a stopping server waits, after it stops listening, for the connections it has
just accepted to be set up."""
KEEP_ALIVE_SECONDS = 65
"""How long an idle connection is kept open: longer than clients and proxies keep one before
they reuse it (httpx 5 s, common load balancers 60 s). A server that closes first closes some
just as the client sends on them, and that request fails without an answer."""
STOP_WAIT_SECONDS = 5
"""How long a stopping server waits for the requests in progress before the service cancels
those still waiting, answering them 503 (`shared.stopping`)."""
STOP_LIMIT_SECONDS = 8
"""How long a stopping server waits for requests at most: then it cancels any still running,
even work a thread is doing, and closes the application, which waits for writes already begun
to be stored (WRITES_DRAIN_SECONDS). Within `factcheck serve`'s wait (20 s) and the compose
file's (`stop_grace_period`), before either kills it."""


class Server(uvicorn.Server):
    """uvicorn's server, which on stopping also closes the connections it accepted last.

    uvicorn stops listening and at once asks every connection it knows of to close. One it
    accepted a moment before is set up only on a later turn of the event loop, so it was never
    asked; a client that kept it busy, as a feed follower's long polls do, then kept the server
    from stopping at all.
    """

    def __init__(self, config: uvicorn.Config, stopping: Callable[[], None] | None = None) -> None:
        super().__init__(config)
        self.stopping = stopping
        """Called as the server begins to stop: ends the waits of long polls in progress."""

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        if self.stopping is not None:
            self.stopping()
        for server in self.servers:
            server.close()
        await asyncio.sleep(SETTLE_SECONDS)
        await super().shutdown(sockets)


def server_config(app: ASGIApp, host: str, port: int, log_level: str) -> uvicorn.Config:
    """How every service is served: without an access log, keeping idle connections open for
    KEEP_ALIVE_SECONDS, waiting at most STOP_LIMIT_SECONDS for requests when it stops, and
    failing to start if the app's lifespan fails."""
    return uvicorn.Config(
        app,
        host=host,
        port=port,
        log_level=log_level,
        access_log=False,
        timeout_keep_alive=KEEP_ALIVE_SECONDS,
        timeout_graceful_shutdown=STOP_LIMIT_SECONDS,
        lifespan="on",
    )


def serve(app: ASGIApp, host: str, port: int, log_level: str, stopping: Callable[[], None]) -> None:
    """Serve `app` until stopped, as `uvicorn.run` does, on a `Server` that calls `stopping`
    as it begins to stop."""
    server = Server(server_config(app, host, port, log_level), stopping=stopping)
    with suppress(KeyboardInterrupt):
        server.run()
    if not server.started:
        sys.exit(STARTUP_FAILURE)
