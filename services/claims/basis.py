"""The basis of an answer: which `at`, which `known_at`, and which sources-feed position."""

import math
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from sqlmodel import Session

from services.claims.projections import ClaimView, last_recorded, position_known_at
from shared.errors import Rejected, Unavailable
from shared.follower import FeedFollower
from shared.timeaxes import (
    TimeParseError,
    format_instant,
    is_today,
    parse_instant,
    recording_clock,
)

NOT_READ = "the sources feed has not been read yet"


@dataclass(frozen=True)
class Basis:
    """Asked again with this `at` and `known_at`, the same question gives the same answer."""

    at: datetime
    known_at: datetime
    position: int


def query_time_form(value: str | None) -> str | None:
    """A query's time, once its form is checked: ISO 8601 with an offset, or a bare date."""
    if value is not None:
        parse_query_time(value)
    return value


def parse_query_time(value: str) -> datetime:
    """A query's time: ISO 8601 with an offset, or a bare date meaning that day's end in UTC."""
    if not value.strip():
        raise TimeParseError("is empty; leave it out to mean now")
    return parse_instant(value, allow_date=True)


def resolve_basis(
    follower: FeedFollower,
    at: str | None,
    known_at: str | None,
    min_position: int | None,
    wait: float,
    position_at: Callable[[datetime], int],
    hold_own_writes: Callable[[], None],
    floor: datetime | None = None,
    registered_at: datetime | None = None,
) -> Basis:
    """Settle the question's two times (their form checked already), waiting a bounded time
    for the follower if needed.

    Without `known_at` (or with today's bare date), the answer is as known through the last
    recording time the follower has applied completely, so it never promises items it has not
    seen yet; and no earlier than `floor`, the time of the claim's own latest event, so that a
    new ruling shows at once. That time is never later than this service's clock: where the
    sources service's clock runs ahead, the answer is as known now, at the position
    `position_at` gives, so that it can be asked again with its basis. Now is this service's
    recording clock, which never runs behind a time it has recorded. `hold_own_writes` returns
    once the read models hold every event of this service recorded so far, so that each event
    they lack was recorded after `now`, and no answer as known by `now` can change.
    """
    now = recording_clock.now()
    hold_own_writes()
    wanted_at = now if at is None else parse_query_time(at)
    wanted_known = None if known_at is None else parse_query_time(known_at)
    if wanted_known is not None and wanted_known > now:
        if known_at is not None and is_today(known_at, now):
            wanted_known = None
        else:
            raise Rejected("known_at", "is in the future; nothing can be known at it yet")
    if wanted_known is not None and registered_at is not None and wanted_known < registered_at:
        raise _before_registration(registered_at)
    if min_position is not None and wanted_known is not None:
        applied = follower.progress.position
        if min_position > applied and position_at(wanted_known) < applied:
            raise _not_includable(wanted_known)
    if min_position is not None and not follower.wait_for(min_position, wait):
        raise Unavailable(
            f"the sources feed has not been applied up to position {min_position} yet"
        )
    needed = wanted_known or floor
    if needed is not None and not follower.wait_for_time(needed, wait):
        if follower.progress.known_through is None:
            raise Unavailable(NOT_READ)
        upto = "known_at" if wanted_known is not None else "the claim's latest event"
        raise Unavailable(f"the sources feed has not been applied up to {upto} yet")
    known_through, applied = sources_applied(follower)
    if wanted_known is None and known_through <= now:
        basis = Basis(at=wanted_at, known_at=known_through, position=applied)
    else:
        known = wanted_known or now
        basis = Basis(at=wanted_at, known_at=known, position=position_at(known))
    if min_position is not None and basis.position < min_position:
        if wanted_known is not None:
            raise _not_includable(wanted_known)
        raise Unavailable(
            f"the sources service recorded position {min_position} at a time still ahead of "
            "this service's clock: the two services' clocks differ",
            retry_after=max(1, math.ceil((known_through - now).total_seconds())),
        )
    return basis


def sources_applied(follower: FeedFollower) -> tuple[datetime, int]:
    """How far the sources feed is applied: every item recorded by the time answered, and
    none past the position answered. Unavailable if the feed has not been read yet."""
    progress = follower.progress
    if progress.known_through is None:
        raise Unavailable(NOT_READ)
    return progress.known_through, progress.position


def _before_registration(registered_at: datetime) -> Rejected:
    return Rejected(
        "known_at", f"is before the claim was registered ({format_instant(registered_at)})"
    )


def _not_includable(known_at: datetime) -> Rejected:
    return Rejected(
        "min_position",
        f"was not recorded by known_at ({format_instant(known_at)}), so an answer as known then "
        "cannot include it",
    )


def basis_for_claim(
    follower: FeedFollower,
    session: Session,
    claim: ClaimView,
    at: str | None,
    known_at: str | None,
    min_position: int | None,
    wait: float,
    hold_own_writes: Callable[[], None],
) -> Basis:
    """The basis of a question about one claim: not before the claim was known, and with the
    sources-feed position that everything recorded by `known_at` ends at.

    The session's connection goes back to the readers' pool after each read, before the answer
    waits for the follower, so that readers waiting cannot keep the others from the pool.
    """
    floor, registered_at = last_recorded(session, claim.id), claim.registered_at
    session.rollback()

    def position_at(known: datetime) -> int:
        try:
            return position_known_at(session, known)
        finally:
            session.rollback()

    basis = resolve_basis(
        follower,
        at,
        known_at,
        min_position,
        wait,
        position_at,
        hold_own_writes,
        floor=floor,
        registered_at=registered_at,
    )
    if basis.known_at < registered_at:
        raise _before_registration(registered_at)
    return basis
