"""The uvicorn server every service runs on."""

import asyncio
import socket
import sys
from contextlib import suppress

import uvicorn
from fastapi import FastAPI
from uvicorn.config import STARTUP_FAILURE

SETTLE_SECONDS = 0.05
"""How long a stopping server waits, after it stops listening, for the connections it has
just accepted to be set up."""


class Server(uvicorn.Server):
    """uvicorn's server, which on stopping also closes the connections it accepted last.

    uvicorn stops listening and at once asks every connection it knows of to close. One it
    accepted a moment before is set up only on a later turn of the event loop, so it was never
    asked; a client that kept it busy, as a feed follower's long polls do, then kept the server
    from stopping at all.
    """

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        for server in self.servers:
            server.close()
        await asyncio.sleep(SETTLE_SECONDS)
        await super().shutdown(sockets)


def serve(app: FastAPI, host: str, port: int, log_level: str) -> None:
    """Serve `app` until stopped, as `uvicorn.run` does, on a `Server`."""
    server = Server(
        uvicorn.Config(app, host=host, port=port, log_level=log_level, access_log=False)
    )
    with suppress(KeyboardInterrupt):
        server.run()
    if not server.started:
        sys.exit(STARTUP_FAILURE)
