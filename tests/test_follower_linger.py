"""The follower lingers after a short page, so that a stream of writes comes in larger pages,
unless a read is waiting for what it has not applied yet."""

import time
from collections.abc import Iterator
from datetime import UTC, datetime

import httpx
import pytest
from fastapi import FastAPI

from shared.feed import FeedPage
from shared.follower import FeedFollower, Progress
from tests.servers import serving

LINGER = 30.0
"""Far longer than any wait below, so that only a waiting read can end it early."""


class Applied:
    """A projection kept in memory: the pages the follower handed over, in order."""

    def __init__(self) -> None:
        self.pages: list[list[int]] = []
        self.position = 0
        self.known_through: datetime | None = None

    def apply(self, page: FeedPage) -> Progress:
        """Take the page; once it reaches the head, everything recorded by then is known."""
        self.pages.append([item.position for item in page.items])
        self.position = max([self.position, *self.pages[-1]])
        if page.next_after >= page.head:
            self.known_through = page.head_known_at
        return self.progress()

    def progress(self) -> Progress:
        return Progress(position=self.position, known_through=self.known_through)


@pytest.fixture
def sources_url(sources_app: FastAPI) -> Iterator[str]:
    with serving(sources_app) as url:
        yield url


def register_source(client: httpx.Client, name: str) -> tuple[int, datetime]:
    """Record one event on the sources service; return its feed position and time."""
    answer = client.post("/sources", json={"name": name, "kind": "agency"})
    answer.raise_for_status()
    written = answer.json()
    return int(written["position"]), datetime.fromisoformat(written["recorded_at"])


def applied_within(applied: Applied, position: int, seconds: float) -> bool:
    """Watch the projection, without waiting through the follower, as a plain reader would."""
    deadline = time.monotonic() + seconds
    while applied.position < position:
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def test_waiting_reads_and_stop_cut_the_linger_short(sources_url: str) -> None:
    applied = Applied()
    follower = FeedFollower(sources_url, applied.apply, applied.progress, wait=0.5, linger=LINGER)
    follower.start()
    try:
        with httpx.Client(base_url=sources_url, timeout=10) as sources:
            first, _ = register_source(sources, "first")
            assert applied_within(applied, first, 10)
            second, _ = register_source(sources, "second")
            assert not applied_within(applied, second, 1.0)
            assert follower.wait_for(second, timeout=10)
            third, recorded_at = register_source(sources, "third")
            assert not applied_within(applied, third, 1.0)
            assert follower.wait_for_time(recorded_at, timeout=10)
    finally:
        began = time.monotonic()
        follower.stop()
        stopped_within = time.monotonic() - began
    assert applied.pages[-2:] == [[second], [third]]
    assert stopped_within < LINGER / 2


def test_a_read_asking_for_now_does_not_wait_out_the_long_poll(sources_url: str) -> None:
    applied = Applied()
    follower = FeedFollower(sources_url, applied.apply, applied.progress, wait=6.0, linger=0.0)
    follower.start()
    try:
        with httpx.Client(base_url=sources_url, timeout=10) as sources:
            position, _ = register_source(sources, "first")
            assert applied_within(applied, position, 10)
            asked = datetime.now(UTC)
            assert follower.wait_for_time(asked, timeout=2.0), "the 6 s long poll was waited out"
            assert applied.known_through is not None and applied.known_through >= asked
    finally:
        follower.stop()
