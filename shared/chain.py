"""The tamper-evident log: every event, in recorded order, chained by SHA-256.

An event's `hash` is SHA-256 over the canonical JSON of its public feed item (without its
`position` and without `metadata.hash`), which includes `metadata.prev_hash`: the hash of the
event recorded before it, or 64 zeros for the first. Anyone holding the feed can recompute it.
"""

import hashlib
import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from shared.feed import FeedItem

GENESIS = "0" * 64


class UnreadableEvent(ValueError):
    """A stored event that cannot be decoded: its row was altered behind the service."""

    def __init__(self, position: int, error: Exception) -> None:
        super().__init__(f"the event at position {position} cannot be read ({error})")
        self.position = position


def canonical(item: FeedItem) -> bytes:
    """The bytes an event's hash covers."""
    body = item.model_dump(mode="json", exclude={"position"})
    body["metadata"] = {key: value for key, value in body["metadata"].items() if key != "hash"}
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def event_hash(item: FeedItem) -> str:
    return hashlib.sha256(canonical(item)).hexdigest()


@dataclass(frozen=True)
class Verification:
    """The outcome of recomputing a chain."""

    ok: bool
    count: int
    head_hash: str
    head_position: int
    broken_position: int | None = None
    reason: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {key: value for key, value in vars(self).items() if value is not None}


def verify(items: Iterable[FeedItem]) -> Verification:
    """Recompute the chain over `items` in recorded order; name the first position that breaks."""
    previous, count, position = GENESIS, 0, 0
    try:
        for item in items:
            fault = _link_fault(item, previous)
            if fault is not None:
                return Verification(False, count, previous, position, item.position, fault)
            previous, count, position = item.metadata["hash"], count + 1, item.position
    except UnreadableEvent as error:
        reason = "the stored event cannot be read: its row was altered"
        return Verification(False, count, previous, position, error.position, reason)
    return Verification(True, count, previous, position)


def _link_fault(item: FeedItem, previous: str) -> str | None:
    """Why `item` does not follow the event whose hash is `previous`, if it does not."""
    if item.metadata.get("prev_hash") != previous:
        return (
            "prev_hash does not match the hash of the event recorded before it: "
            "an earlier event is missing, or this link was altered"
        )
    if item.metadata.get("hash") != event_hash(item):
        return "the event's content does not match its recorded hash: it was altered"
    return None


def witness_fault(
    verified: dict[str, Any],
    applied_position: int,
    applied_hash: str | None,
    hash_at: Callable[[int], str | None],
) -> tuple[int, str] | None:
    """Where and why a log that verified on its own fails its follower's witness, if it does.

    A follower keeps the position and hash of the last item it applied. A log that ends before
    that position lost its newest events; a log whose item at that position has another hash had
    it replaced. `hash_at` looks up the hash the log holds at a position.
    """
    head = int(verified["head_position"])
    if applied_position > head:
        reason = (
            f"the claims service applied sources events up to position {applied_position}: "
            "events after this head are missing"
        )
        return head, reason
    if not applied_position or not applied_hash:
        return None
    found = verified["head_hash"] if applied_position == head else hash_at(applied_position)
    if found != applied_hash:
        reason = "this is not the event the claims service applied here: it was replaced"
        return applied_position, reason
    return None


def hash_in_page(page: dict[str, Any], position: int) -> str | None:
    """The hash a feed page (as JSON) holds at `position`, if it holds that position."""
    for item in page["items"]:
        if item["position"] == position:
            return item["metadata"].get("hash")
    return None
