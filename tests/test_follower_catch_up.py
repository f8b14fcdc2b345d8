"""Behind the head, the follower reads each next page while it applies the last."""

import asyncio
import threading
from urllib.parse import parse_qs

import httpx
import pytest
from fastapi import FastAPI
from starlette.types import ASGIApp, Receive, Scope, Send

from shared.feed import FeedPage
from shared.follower import FeedFollower, Progress
from tests.servers import serving
from tests.test_follower_linger import Applied, register_source


class FeedReads:
    """The sources service, noting the `after` of each feed read as it arrives, and holding
    one read if asked to."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.afters: list[int] = []
        self.arrived = threading.Condition()
        self.held_after: int | None = None
        self.release = threading.Event()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"] == "/feed":
            after = int(parse_qs(scope["query_string"].decode()).get("after", ["0"])[0])
            with self.arrived:
                self.afters.append(after)
                self.arrived.notify_all()
            if after == self.held_after:
                self.held_after = None
                await asyncio.to_thread(self.release.wait, 10)
        await self.app(scope, receive, send)


class Rebuildable(Applied):
    """The in-memory projection, which a rebuild can empty."""

    def reset(self) -> Progress:
        self.pages.clear()
        self.position = 0
        self.known_through = None
        return self.progress()


def test_behind_the_head_the_next_page_is_read_while_the_last_is_applied(
    sources_app: FastAPI,
) -> None:
    reads = FeedReads(sources_app)
    applied = Applied()
    read_during_apply: list[bool] = []

    def apply(page: FeedPage) -> Progress:
        """Hold the first page until the page after it is asked for, or 10 s pass."""
        if not applied.pages:
            with reads.arrived:
                asked = reads.arrived.wait_for(lambda: page.next_after in reads.afters, 10)
            read_during_apply.append(asked)
        return applied.apply(page)

    with serving(reads) as url, httpx.Client(base_url=url, timeout=10) as sources:
        positions = [register_source(sources, f"source {n}")[0] for n in range(5)]
        follower = FeedFollower(url, apply, applied.progress, wait=0.1, page_size=2)
        follower.start()
        try:
            assert follower.wait_for(positions[-1], timeout=30)
        finally:
            follower.stop()
    assert read_during_apply == [True]
    assert applied.pages[:3] == [positions[:2], positions[2:4], positions[4:]]
    assert [position for page in applied.pages for position in page] == positions


def test_a_page_read_ahead_is_not_applied_once_a_rebuild_has_moved_the_position(
    sources_app: FastAPI,
) -> None:
    reads = FeedReads(sources_app)
    applied = Rebuildable()
    asked = threading.Event()
    rebuilt: list[Progress] = []

    def rebuild() -> None:
        rebuilt.append(follower.replay_from_start(applied.reset))
        reads.release.set()

    def apply(page: FeedPage) -> Progress:
        """At the first page, ask for a rebuild: it runs once this page is applied."""
        if not asked.is_set():
            asked.set()
            threading.Thread(target=rebuild).start()
        return applied.apply(page)

    with serving(reads) as url, httpx.Client(base_url=url, timeout=10) as sources:
        positions = [register_source(sources, f"source {n}")[0] for n in range(5)]
        reads.held_after = positions[1]
        follower = FeedFollower(url, apply, applied.progress, wait=0.1, page_size=2)
        follower.start()
        try:
            with reads.arrived:
                assert reads.arrived.wait_for(lambda: reads.afters.count(positions[-1]) > 0, 30)
        finally:
            follower.stop()
    assert reads.held_after is None, "the page after the first was read ahead, and held"
    assert [progress.position for progress in rebuilt] == [positions[-1]]
    assert applied.pages[0] == positions, "the rebuild read the whole feed again"
    assert [position for page in applied.pages for position in page] == positions


def test_a_rebuild_that_fails_part_way_leaves_the_follower_at_the_start(
    sources_app: FastAPI,
) -> None:
    applied = Rebuildable()

    def reset_that_fails() -> Progress:
        applied.reset()
        raise OSError("the database went away after the drop")

    with serving(sources_app) as url, httpx.Client(base_url=url, timeout=10) as sources:
        positions = [register_source(sources, f"source {n}")[0] for n in range(3)]
        follower = FeedFollower(url, applied.apply, applied.progress, wait=0.1)
        try:
            follower.poll_once()
            assert follower.progress.position == positions[-1]
            with pytest.raises(OSError, match="went away"):
                follower.replay_from_start(reset_that_fails)
            assert follower.progress.position == 0
            assert not follower.wait_for(positions[-1], timeout=0.1), "readers wait for it"
            follower.poll_once()
        finally:
            follower.stop()
    assert applied.pages == [positions]
    assert follower.progress.position == positions[-1]
