"""What a service does when its server stops: requests still waiting are cancelled and
answered 503, writes are refused, and every answer closes its connection."""

import asyncio
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from anyio import CancelScope
from fastapi import FastAPI, Request
from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from shared.errors import RESTART_SECONDS
from shared.problems import Problem
from shared.server import STOP_WAIT_SECONDS

STOPPED_DETAIL = (
    "the service stopped before it answered; retry later. A write may have been recorded: "
    "retry it with the same Idempotency-Key"
)


def on_stop(app: FastAPI) -> Callable[[], None]:
    """What the server calls as it begins to stop: end the waits of long polls, and
    STOP_WAIT_SECONDS later refuse new writes and cancel the requests still in progress."""

    def begin() -> None:
        application = app.state.application
        application.end_waits()

        def give_up() -> None:
            application.refuse_writes_until_restart()
            app.state.requests.cancel()

        app.state.requests.closing = True
        asyncio.get_running_loop().call_later(STOP_WAIT_SECONDS, give_up)

    return begin


class RequestsInProgress:
    """The requests a service is working on, to be cancelled when it stops. A cancelled
    request waiting for a thread ends at once; work a thread has begun goes on to its end
    first, so that what a request began, it finishes."""

    def __init__(self) -> None:
        self._scopes: set[CancelScope] = set()
        self._cancelled = False
        self.closing = False
        """Whether the server has begun to stop: answers then close their connection."""

    @contextmanager
    def cancellable(self) -> Iterator[CancelScope]:
        """A scope for one request, cancelled with the others, or at once if they were."""
        with CancelScope() as scope:
            self._scopes.add(scope)
            if self._cancelled:
                scope.cancel()
            try:
                yield scope
            finally:
                self._scopes.discard(scope)

    def cancel(self) -> None:
        """Cancel every request in progress, and those that begin after; on the event loop."""
        self._cancelled = True
        for scope in list(self._scopes):
            scope.cancel()


class AnswerWhenStopped:
    """Answer 503 (problem+json) to a request cancelled before its answer began, as requests
    are when the service stops, where the server would answer 500 or close the connection:
    also when what the cancel interrupted fails on its way out, as a read whose session is
    still in use by the thread the cancel left running.
    Once it stops, every answer says the connection closes after it, so that no client sends
    another request on a connection the server is about to close."""

    def __init__(self, app: ASGIApp, requests: RequestsInProgress) -> None:
        self.app = app
        self.requests = requests

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        answering = False

        async def send_noting(message: Message) -> None:
            nonlocal answering
            answering = True
            await send_closing(message)

        async def send_closing(message: Message) -> None:
            if self.requests.closing and message["type"] == "http.response.start":
                MutableHeaders(scope=message)["Connection"] = "close"
            await send(message)

        task = asyncio.current_task()
        try:
            with self.requests.cancellable() as cancellable:
                await self.app(scope, receive, send_noting)
        except (asyncio.CancelledError, Exception):
            if answering or not (cancellable.cancel_called or _cancelled(task)):
                raise
            if task is not None and task.cancelling():
                task.uncancel()
        else:
            if not cancellable.cancel_called or answering:
                return
        stopped = Problem(503, STOPPED_DETAIL, headers={"Retry-After": str(RESTART_SECONDS)})
        await stopped.response(Request(scope))(scope, receive, send_closing)


def _cancelled(task: asyncio.Task[object] | None) -> bool:
    """Whether the server cancelled the task, as it does those still running at its limit."""
    return task is not None and task.cancelling() > 0
