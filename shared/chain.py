"""The tamper-evident log: every event, in recorded order, chained by SHA-256.

An event's `hash` is SHA-256 over the canonical JSON of its public feed item (without its
`position` and without `metadata.hash`), which includes `metadata.prev_hash`: the hash of the
event recorded before it, or 64 zeros for the first. Anyone holding the feed can recompute it.
"""

import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from shared.feed import FeedItem

GENESIS = "0" * 64


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
    for item in items:
        recorded_prev = item.metadata.get("prev_hash")
        recorded_hash = item.metadata.get("hash")
        if recorded_prev != previous:
            reason = (
                "prev_hash does not match the hash of the event recorded before it: "
                "an earlier event is missing, or this link was altered"
            )
            return Verification(False, count, previous, position, item.position, reason)
        if recorded_hash != event_hash(item):
            reason = "the event's content does not match its recorded hash: it was altered"
            return Verification(False, count, previous, position, item.position, reason)
        previous, count, position = recorded_hash, count + 1, item.position
    return Verification(True, count, previous, position)
