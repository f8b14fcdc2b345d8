"""What every factcheck service's FastAPI app has: problem details, request ids, read sessions."""

import sys
from collections.abc import Callable, Iterator
from contextlib import AbstractAsyncContextManager
from typing import Annotated, Any, TypeVar

from anyio import CapacityLimiter, to_thread
from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.responses import JSONResponse
from sqlmodel import Session
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from shared.auth import Requires
from shared.idempotency import KeyLocks
from shared.problems import Problem, install_problem_handlers
from shared.routes import FeedLimits
from shared.routing import CheckedRoute
from shared.schemas import RequestIds
from shared.stopping import AnswerWhenStopped, RequestsInProgress, on_stop

VERSION = "0.1.0"
MAX_BODY_BYTES = 64 * 1024
"""A request body larger than this is answered 413 before it is read."""
DIGITS_READ = 18
"""The most significant digits of a `Content-Length` converted; any more is over the limit."""
HEALTH_THREADS = 4
"""Health checks answered at once, in threads apart from the worker threads every other route
shares: a backlog of reads does not hold back a container's health check."""
WRITE_THREADS = 40
"""Writes run at once, in threads apart from the worker threads reads share: a backlog of reads
does not hold a write back. They take turns under the write lock for the part that decides."""
T = TypeVar("T")


def service_app(
    title: str,
    summary: str,
    router: APIRouter,
    lifespan: Callable[[FastAPI], AbstractAsyncContextManager[None]],
    **state: Any,
) -> FastAPI:
    """A FastAPI app with the service's routes; `state` becomes `app.state`."""
    app = FastAPI(
        title=title,
        summary=summary,
        version=VERSION,
        lifespan=lifespan,
    )
    app.state.feed_limits = FeedLimits()
    app.state.key_locks = KeyLocks()
    app.state.health_threads = CapacityLimiter(HEALTH_THREADS)
    app.state.write_threads = CapacityLimiter(WRITE_THREADS)
    app.state.requests = RequestsInProgress()
    app.state.stopping = on_stop(app)
    for name, value in state.items():
        setattr(app.state, name, value)
    install_problem_handlers(app, [*app.routes, *router.routes])
    app.add_middleware(BodyLimit, limit=MAX_BODY_BYTES)
    app.add_middleware(HeadAsGet)
    app.add_middleware(AnswerWhenStopped, requests=app.state.requests)
    app.add_middleware(RequestIds)
    app.include_router(router)
    return app


async def closed_apart(close: Callable[[], None]) -> None:
    """Run a service's `close` in a thread of its own, apart from the worker threads requests
    cancelled by a stop may still hold, so that the event loop meanwhile sends their answers."""
    await to_thread.run_sync(close, limiter=CapacityLimiter(1))


async def in_health_thread(request: Request, check: Callable[[], T]) -> T:
    """Run `check` in one of the app's health threads, apart from the worker threads."""
    return await to_thread.run_sync(check, limiter=request.app.state.health_threads)


class HeadAsGet:
    """Answer HEAD as GET would, without the body."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "HEAD":
            await self.app(scope, receive, send)
            return

        async def send_head(message: Message) -> None:
            if message["type"] == "http.response.body":
                message = {**message, "body": b""}
            await send(message)

        await self.app({**scope, "method": "GET"}, receive, send_head)


class BodyLimit:
    """Answer 413 (problem+json) to a request body over `limit` bytes, before any route runs."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if self._declared_length(scope) > self.limit:
            await self._too_large(scope)(scope, receive, send)
            return
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                break
            chunks.append(message.get("body", b""))
            size += len(chunks[-1])
            if size > self.limit:
                await self._too_large(scope)(scope, receive, send)
                return
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)

    @staticmethod
    def _declared_length(scope: Scope) -> int:
        """The request's `Content-Length`, or 0 if it gives none (a chunked body is counted as
        it is read); one too long to convert is as large as any."""
        for name, value in scope["headers"]:
            if name == b"content-length" and value.isdigit():
                significant = value.lstrip(b"0") or b"0"
                return int(significant) if len(significant) <= DIGITS_READ else sys.maxsize
        return 0

    def _too_large(self, scope: Scope) -> JSONResponse:
        detail = f"the request body is over {self.limit} bytes"
        problem = Problem(413, detail, errors=[{"field": "body", "reason": detail}])
        return problem.response(Request(scope))


def service_router() -> APIRouter:
    """The router every service's routes hang on: parameters checked by the route class, reads
    gated, each route's errors documented as problem+json."""
    return APIRouter(
        dependencies=[Depends(Requires("read"))],
        route_class=CheckedRoute,
        strict_content_type=False,
    )


def read_session(request: Request) -> Iterator[Session]:
    """A session on the service's read models, once they hold every write answered so far;
    held through the route function, so that a rebuild waits for it to end."""
    projection = request.app.state.projection
    with projection.gate.reading():
        projection.hold_answered_writes()
        with Session(request.app.state.engine) as session:
            yield session


Reads = Annotated[Session, Depends(read_session, scope="function")]
"""Ends with the route function, before its answer is sent: a slow client holds up no rebuild."""
