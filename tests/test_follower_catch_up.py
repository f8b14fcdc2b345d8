"""Behind the head, the follower reads each next page while it applies the last."""

import threading
from urllib.parse import parse_qs

import httpx
from fastapi import FastAPI
from starlette.types import ASGIApp, Receive, Scope, Send

from shared.feed import FeedPage
from shared.follower import FeedFollower, Progress
from tests.servers import serving
from tests.test_follower_linger import Applied, register_source


class FeedReads:
    """The sources service, noting the `after` of each feed read as it arrives."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.afters: list[int] = []
        self.arrived = threading.Condition()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"] == "/feed":
            after = parse_qs(scope["query_string"].decode()).get("after", ["0"])[0]
            with self.arrived:
                self.afters.append(int(after))
                self.arrived.notify_all()
        await self.app(scope, receive, send)


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
