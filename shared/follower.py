"""Follows another service's public feed over HTTP and hands each page to a projection."""

import logging
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import closing
from dataclasses import dataclass
from datetime import datetime

import httpx
from pydantic import ValidationError

from shared.feed import FEED_MAX_LIMIT, FeedPage, ServiceName

logger = logging.getLogger("factcheck.follower")
MAX_BACKOFF_SECONDS = 5.0
QUIET_BACKOFF_SECONDS = 0.8
"""Failures are logged as warnings from this back-off on; a service starting up is quieter."""


class WrongFeed(ValueError):
    """The follower's settings do not reach the feed as they should: the followed URL serves
    no feed, or another service's, or the service refuses the key (or its absence)."""


@dataclass(frozen=True)
class Progress:
    """Where a projection stands in the feed it follows; committed with what it derived."""

    position: int
    known_through: datetime | None
    last_hash: str = ""
    """The hash of the item at `position`, which the next item must chain to."""


@dataclass(frozen=True)
class FollowerStatus:
    position: int
    head: int | None
    lag: int | None
    known_through: datetime | None
    connected: bool
    last_error: str | None
    applied_hash: str | None


class FeedFollower:
    """Reads `GET {base_url}/feed` with a long poll and applies each page exactly once.

    `apply(page)` must commit the page's effects together with its new position, and pass
    over items at or below the position it has committed; `progress()` reads that committed
    position back, so a restart resumes where the last commit left off.
    Behind the head, it reads each next page while it applies the last. After a page that
    was not full it lingers, so that the next page carries more items and a stream of writes
    costs fewer, larger transactions; a read waiting for a position or a time the follower
    has not reached cuts the linger short.
    """

    def __init__(
        self,
        base_url: str,
        apply: Callable[[FeedPage], Progress],
        progress: Callable[[], Progress],
        *,
        wait: float = 1.0,
        page_size: int = FEED_MAX_LIMIT,
        linger: float = 0.2,
        timeout: float = 10.0,
        api_key: str | None = None,
        service: ServiceName = "sources",
    ) -> None:
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._client = httpx.Client(base_url=base_url, timeout=timeout + wait, headers=headers)
        self._keyed = bool(api_key)
        self._apply = apply
        self._service = service
        self._wait = wait
        self._page_size = page_size
        self._linger = linger
        self._stopping = threading.Event()
        self._wanted = threading.Event()
        """Set when a read waits for more than is applied, or on stop: ends a linger."""
        self._applying = threading.Lock()
        self._asking = threading.Lock()
        """Held by the one reader polling the feed itself; see `wait_for_time`."""
        self._advanced = threading.Condition()
        self._thread: threading.Thread | None = None
        self._progress = progress()
        self._head: int | None = None
        self._connected = False
        self._last_error: str | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="feed-follower", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stopping.set()
        self._wanted.set()
        if self._thread is not None:
            self._thread.join(timeout=self._wait + self._linger + 15)
        self._client.close()

    def status(self) -> FollowerStatus:
        head = self._head
        position = self._progress.position
        error = self._last_error
        if head is not None and head < position:
            error = (
                f"the followed feed ends at position {head}, before position {position} that "
                "was applied: its newest events are missing"
            )
        return FollowerStatus(
            position=position,
            head=head,
            lag=None if head is None else max(head - position, 0),
            known_through=self._progress.known_through,
            connected=self._connected,
            last_error=error,
            applied_hash=(self._progress.last_hash or None) if position else None,
        )

    @property
    def progress(self) -> Progress:
        return self._progress

    def wait_for(self, position: int, timeout: float) -> bool:
        """Block until the applied position reaches `position`; False after `timeout`."""
        return self._wait_until(lambda: self._progress.position >= position, timeout)

    def wait_for_time(self, known_at: datetime, timeout: float) -> bool:
        """Block until everything recorded up to `known_at` is applied; False after `timeout`.

        The followed service may have recorded nothing since: then only a read of its feed
        says so. Rather than wait for the long poll in progress to end, one waiting reader at a
        time reads the feed itself, and the others wait for what that read applies.
        """

        def reached() -> bool:
            through = self._progress.known_through
            return through is not None and through >= known_at

        deadline = time.monotonic() + timeout
        following = self._thread is not None and not self._stopping.is_set()
        if following and not reached() and self._asking.acquire(blocking=False):
            try:
                self.poll_once(timeout=timeout)
            except Exception as error:
                logger.debug("feed follower: a reader's own poll failed: %s", error)
            finally:
                self._asking.release()
        return self._wait_until(reached, max(deadline - time.monotonic(), 0.0))

    def _wait_until(self, reached: Callable[[], bool], timeout: float) -> bool:
        with self._advanced:
            if not reached():
                self._wanted.set()
            return self._advanced.wait_for(reached, timeout=timeout)

    def poll_once(self, wait: float = 0.0, timeout: float | None = None) -> int:
        """Read and apply one page; return how many items it held.

        The read (a long poll, perhaps) holds nothing up; the page is applied only if the
        position has not moved meanwhile, for instance by a rebuild. The feed never changes
        what it has served, so a page read after a position is right whenever that position
        is the current one. With a `timeout`, neither the read nor the wait for another
        page's applying (such as a rebuild's) takes longer than that, and then nothing is
        applied.
        """
        after = self._progress.position
        page = self._read(after, wait, timeout)
        return self._take_if_at(after, page, timeout)

    def _take_if_at(self, after: int, page: FeedPage, timeout: float | None = None) -> int:
        """Apply `page`, read after `after`, if that is still the position; return how many
        items it held, or 0 if it was not applied."""
        if not self._applying.acquire(timeout=-1 if timeout is None else timeout):
            return 0
        try:
            if self._progress.position != after:
                return 0
            return self._take(page)
        finally:
            self._applying.release()

    def _catch_up(self) -> int:
        """Apply every page up to the head, each next one read while the last is applied;
        return how many items the last page held. A page read after a position that has
        moved meanwhile, by a rebuild for instance, ends it unapplied."""
        after, taken = self._progress.position, 0
        with closing(self._pages(after, self._page_size)) as pages:
            for page in pages:
                taken = self._take_if_at(after, page)
                if self._progress.position != page.next_after or self._stopping.is_set():
                    break
                after = page.next_after
        return taken

    def hash_at(self, position: int) -> str | None:
        """The hash the followed feed holds at `position`, if it holds that position."""
        page = self._read(position - 1, 0.0, limit=1)
        return next(
            (item.metadata.get("hash") for item in page.items if item.position == position), None
        )

    def check_feed(self) -> None:
        """WrongFeed unless the followed URL serves the expected service's feed."""
        self._read(0, 0.0, limit=1)

    def verify_source(self) -> dict[str, object]:
        """Ask the followed service to recompute its own hash chain."""
        response = self._client.get("/audit/verify", timeout=600)
        self._check_key(response, "GET /audit/verify", "the auditor or admin role")
        response.raise_for_status()
        return response.json()

    def _check_key(self, response: httpx.Response, asked: str, access: str) -> None:
        """WrongFeed naming the key setting if the followed service refused it (or its
        absence) for `asked`, which needs `access`."""
        if response.status_code not in (401, 403):
            return
        setting = f"{self._service.upper()}_API_KEY"
        key = f"refused {setting}" if self._keyed else f"needs {setting}, which is unset"
        raise WrongFeed(
            f"the {self._service} service at {self._client.base_url} {key} "
            f"({response.status_code} to {asked}): set a key with {access}"
        )

    def replay_from_start(self, reset: Callable[[], Progress]) -> Progress:
        """Hold the follower, let `reset` drop the projection, then read the whole feed again.

        Each next page is read while the last one is applied, in the largest pages the feed
        serves: fewer, larger transactions than following takes. The position is the start
        from before `reset` runs: if it fails part-way, readers do not take the projection to
        hold what it may have dropped, and following goes on from what it has committed.
        """
        with self._applying:
            self._publish(Progress(position=0, known_through=None))
            progress = reset()
            self._publish(progress)
            with closing(self._pages(progress.position, FEED_MAX_LIMIT)) as pages:
                for page in pages:
                    self._take(page)
            return self._progress

    def _pages(self, after: int, limit: int) -> Iterator[FeedPage]:
        """The feed's pages of `limit` items from `after` to its head, each next one read
        while the caller takes the last."""
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="feed-reader") as reader:
            upcoming: Future[FeedPage] | None = reader.submit(self._read, after, 0.0, limit=limit)
            while upcoming is not None:
                page = upcoming.result()
                more = page.next_after < page.head
                upcoming = (
                    reader.submit(self._read, page.next_after, 0.0, limit=limit) if more else None
                )
                yield page

    def _read(
        self, after: int, wait: float, timeout: float | None = None, limit: int | None = None
    ) -> FeedPage:
        response = self._client.get(
            "/feed",
            params={"after": after, "limit": limit or self._page_size, "wait": wait},
            timeout=httpx.USE_CLIENT_DEFAULT if timeout is None else timeout,
        )
        if response.status_code == 404:
            raise WrongFeed(
                f"{response.url.copy_with(query=None)} answered 404: {self._client.base_url} "
                f"serves no feed, so it is not the {self._service} service's base URL; check "
                "its URL setting"
            )
        self._check_key(response, "GET /feed", "read access (any role)")
        response.raise_for_status()
        page = FeedPage.model_validate_json(response.content)
        if page.service is not None and page.service != self._service:
            raise WrongFeed(
                f"{self._client.base_url} serves the {page.service} service's feed, not the "
                f"{self._service} service's: check its URL setting; nothing was applied"
            )
        return page

    def _take(self, page: FeedPage) -> int:
        """Apply the page and publish the new position; return how many items it held."""
        progress = self._apply(page)
        self._publish(progress, page.head)
        return len(page.items)

    def _publish(self, progress: Progress, head: int | None = None) -> None:
        """Make `progress` the position readers wait on, with the feed's head if read."""
        with self._advanced:
            self._progress = progress
            if head is not None:
                self._head = head
            self._advanced.notify_all()

    def _run(self) -> None:
        backoff = 0.1
        while not self._stopping.is_set():
            try:
                caught_up = self._head is not None and self._progress.position >= self._head
                self._wanted.clear()
                if self._stopping.is_set():
                    break
                read = self.poll_once(wait=self._wait) if caught_up else self._catch_up()
                self._connected = True
                self._last_error = None
                backoff = 0.1
                if 0 < read < self._page_size:
                    self._wanted.wait(self._linger)
            except (httpx.HTTPError, ValidationError, ValueError) as error:
                self._connected = False
                self._last_error = f"{type(error).__name__}: {error}"
                log = logger.warning if backoff >= QUIET_BACKOFF_SECONDS else logger.info
                log("feed follower: %s; retrying in %.1fs", self._last_error, backoff)
                self._stopping.wait(backoff)
                backoff = min(backoff * 2, MAX_BACKOFF_SECONDS)
            except Exception as error:
                self._last_error = f"{type(error).__name__}: {error}"
                logger.exception("feed follower: applying a page failed")
                self._stopping.wait(backoff)
                backoff = min(backoff * 2, MAX_BACKOFF_SECONDS)
