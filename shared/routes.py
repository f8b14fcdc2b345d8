"""Routes both services offer the same way: the public feed and the audit of the event log."""

import json
import logging
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from itertools import chain, islice
from typing import Annotated, Any
from uuid import UUID

from anyio import CapacityLimiter, to_thread
from eventsourcing.domain import DomainEventProtocol
from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import StreamingResponse
from starlette.types import Send

from shared.auth import Requires
from shared.chain import UnreadableEvent, verify
from shared.errors import Rejected
from shared.eventstore import FactcheckApplication
from shared.feed import (
    FEED_DEFAULT_LIMIT,
    FEED_MAX_LIMIT,
    FEED_MAX_WAIT_SECONDS,
    FeedItem,
    FeedPage,
    ServiceName,
    feed_item,
    feed_page,
)
from shared.problems import problem_responses
from shared.schemas import AfterQuery, UntilQuery, decimal, whole_number

EXPORT_PAGE = 1000
logger = logging.getLogger("factcheck")
FEED_THREADS = 64
"""Feed requests served at once, long polls waiting for news among them, in threads apart from
the worker threads every other route shares: a follower's read never waits for a worker thread
behind a backlog of writes, and a long poll never holds a thread that a write needs."""
FEED_READERS = 16
"""Of those, pages read at once: however many polls wait for news, a page can still be read."""


@dataclass(frozen=True)
class FeedLimits:
    """One app's limits on feed requests; `service_app` puts them in `app.state.feed_limits`."""

    threads: CapacityLimiter = field(default_factory=lambda: CapacityLimiter(FEED_THREADS))
    reading: threading.BoundedSemaphore = field(
        default_factory=lambda: threading.BoundedSemaphore(FEED_READERS)
    )


UNREADABLE_EVENT = {
    500: {
        **problem_responses(500)[500],
        "description": "An event to be answered cannot be read: its stored row was altered "
        "behind the service. The detail names its position; GET /audit/verify names the first "
        "break.",
    }
}


def every_item(
    source: FactcheckApplication, after: int = 0, until: int | None = None
) -> Iterator[FeedItem]:
    """Every recorded event after `after` (and up to `until`) as a feed item, page by page;
    UnreadableEvent at the first that cannot be read or rendered."""
    while True:
        last = after
        for last, event in source.decoded_after(after, EXPORT_PAGE, until):
            yield stored_item(last, event)
        if last == after:
            return
        after = last


def stored_item(position: int, event: DomainEventProtocol[UUID]) -> FeedItem:
    """A stored event as its feed item; UnreadableEvent if it cannot be rendered as one."""
    try:
        return feed_item(position, event)
    except ValueError as error:
        raise UnreadableEvent(position, error) from error


def add_feed_route(
    router: APIRouter, application: Callable[..., FactcheckApplication], service: ServiceName
) -> None:
    """Add `GET /feed` for `service`'s application, which the dependency `application` returns."""

    @router.get("/feed", response_model=FeedPage, tags=["feed"], responses=UNREADABLE_EVENT)
    async def read_feed(
        request: Request,
        source: Annotated[FactcheckApplication, Depends(application)],
        after: AfterQuery = 0,
        limit: Annotated[whole_number(1, FEED_MAX_LIMIT), Query()] = FEED_DEFAULT_LIMIT,
        wait: Annotated[
            decimal(0, FEED_MAX_WAIT_SECONDS), Query(description="Seconds to wait for news.")
        ] = 0,
    ) -> FeedPage:
        """This service's events in recorded order; see docs/feed.md."""
        limits: FeedLimits = request.app.state.feed_limits
        return await to_thread.run_sync(
            feed_page_of,
            service,
            source,
            after,
            limit,
            wait,
            limits.reading,
            limiter=limits.threads,
        )


def feed_page_of(
    service: ServiceName,
    source: FactcheckApplication,
    after: int,
    limit: int,
    wait: float,
    reading: threading.BoundedSemaphore,
) -> FeedPage:
    """The page after `after`, once there is news or `wait` seconds have passed; read while
    holding `reading`, so that only so many pages are read at once."""
    if wait:
        source.wait_for_events(after, wait)
    with reading:
        head, head_known_at = source.head_and_time()
        events = source.events_after(after, limit, head)
        items = [stored_item(position, event) for position, event in events]
    return feed_page(service, items, after, head, head_known_at)


def add_audit_routes(router: APIRouter, application: Callable[..., FactcheckApplication]) -> None:
    """Add `GET /audit/verify` and `GET /audit/export` for the application's event log."""

    @router.get("/audit/verify", tags=["audit"], dependencies=[Depends(Requires("audit"))])
    def verify_log(
        source: Annotated[FactcheckApplication, Depends(application)],
    ) -> dict[str, Any]:
        """Recompute the hash chain over every recorded event; name the first break."""
        return verify(every_item(source)).as_dict()

    @router.get(
        "/audit/export",
        tags=["audit"],
        response_class=StreamingResponse,
        dependencies=[Depends(Requires("audit"))],
        responses={
            200: {"content": {"application/x-ndjson": {"schema": {"type": "string"}}}},
            **UNREADABLE_EVENT,
        },
    )
    def export_log(
        source: Annotated[FactcheckApplication, Depends(application)],
        after: AfterQuery = 0,
        until: UntilQuery = None,
    ) -> StreamingResponse:
        """The event log as NDJSON, one feed item (with its hashes) per line, streamed.

        The first page is read before the answer starts, so an event there that cannot be read
        is answered 500. One further on breaks the stream off, unfinished, so that no client
        takes what it received for the whole log.
        """
        if until is not None and until < after:
            raise Rejected("until", f"is before after ({after}): the window holds nothing")
        items = every_item(source, after, until)
        first = list(islice(items, EXPORT_PAGE))
        return BrokenOffStream(_lines(chain(first, items)), media_type="application/x-ndjson")


class BrokenOffStream(StreamingResponse):
    """A stream that an unreadable event breaks off: the answer ends without its last chunk,
    so that the client sees it unfinished, and the server logs one line, not a traceback."""

    async def stream_response(self, send: Send) -> None:
        try:
            await super().stream_response(send)
        except UnreadableEvent as error:
            logger.error("the export broke off: %s; GET /audit/verify names the first break", error)


def _lines(items: Iterator[FeedItem]) -> Iterator[str]:
    """Each item as an NDJSON line."""
    for item in items:
        yield json.dumps(item.model_dump(mode="json"), ensure_ascii=False) + "\n"
