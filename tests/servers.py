"""Real uvicorn servers on loopback ports, for tests that cross a socket."""

import socket
import sys
import threading
import time
import traceback
from collections.abc import Iterator
from contextlib import contextmanager

import uvicorn
from starlette.types import ASGIApp

from shared.server import Server, server_config


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def started(server: uvicorn.Server) -> threading.Thread:
    """Run `server` in a thread; return the thread once the server listens."""
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError(f"uvicorn did not start on port {server.config.port}")
        time.sleep(0.02)
    return thread


@contextmanager
def serving(app: ASGIApp, port: int | None = None) -> Iterator[str]:
    """Serve `app` with uvicorn on 127.0.0.1 in a thread; yield its base URL."""
    port = port or free_port()
    stopping = getattr(getattr(app, "state", None), "stopping", None)
    server = Server(server_config(app, "127.0.0.1", port, "warning"), stopping=stopping)
    thread = started(server)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        if thread.is_alive():
            raise RuntimeError(
                f"uvicorn on port {port} did not stop within 10 s; its threads:\n{_stacks()}"
            )


def _stacks() -> str:
    """Where every thread of this process is, to say what a server that will not stop waits on."""
    frames = sys._current_frames()
    return "\n".join(
        f"{thread.name}:\n{''.join(traceback.format_stack(frames[thread.ident]))}"
        for thread in threading.enumerate()
        if thread.ident in frames
    )
