"""Answers on the two time axes: verdict, evidence, timeline and history of a claim.

The tally of a claim at (`at`, `known_at`) is the sum of its tally points with
`known_from <= known_at` and `at_from <= at`: a dominance sum. `DominanceSum` answers it in
O(log² n) with a Fenwick tree over the points' recording order whose nodes hold their points
sorted by `at_from` with prefix sums. The index is kept in memory, loaded per claim from the
read models on first use and extended after every committed feed page.
"""

import heapq
import threading
from array import array
from bisect import bisect_right
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from itertools import accumulate
from operator import itemgetter
from typing import Any
from uuid import UUID

from sqlalchemy import Connection, Engine, Result, Table
from sqlalchemy.orm import aliased
from sqlmodel import Session, col, select
from sqlmodel.sql.expression import SelectOfScalar

from services.claims.confidence import (
    REASON_DERIVED,
    REASON_NEUTRAL,
    REASON_NOT_YET_PUBLISHED,
    REASON_REPEAT,
    REASON_RETRACTED,
    RELIABILITY_UNITS,
    STRENGTH_UNITS,
    Assessment,
    Tally,
    assess,
)
from services.claims.origins import ZERO, Vector, add, value_at
from services.claims.projections import (
    Changes,
    ClaimEventView,
    EvidenceVersion,
    OriginRow,
    OriginVersion,
    PointRow,
    RatingRow,
    RatingVersion,
    RulingView,
    TallyPoint,
    UpstreamEvent,
    steps_from_json,
)
from shared.timeaxes import from_micros, to_micros

COMPONENTS = len(ZERO)


class DominanceSum:
    """Sums of vectors over points (k, x) with k <= K and x <= X; points arrive in k order."""

    def __init__(self) -> None:
        self.known: list[int] = []
        self._points: list[tuple[int, Vector]] = []
        self._nodes: list[tuple[array[int], list[array[int]]]] = [(array("q"), [])]

    def __len__(self) -> int:
        return len(self._points)

    def append(self, known: int, at: int, delta: Vector) -> None:
        if self.known and known < self.known[-1]:
            raise ValueError("points must arrive in recording order")
        self.known.append(known)
        self._points.append((at, delta))
        index = len(self._points)
        run = sorted(self._points[index - (index & -index) : index], key=lambda point: point[0])
        positions = array("q", (point[0] for point in run))
        sums = [array("q", accumulate(point[1][c] for point in run)) for c in range(COMPONENTS)]
        self._nodes.append((positions, sums))

    def total(self, known: int, at: int) -> Vector:
        totals = [0] * COMPONENTS
        index = bisect_right(self.known, known)
        while index:
            positions, sums = self._nodes[index]
            found = bisect_right(positions, at)
            if found:
                for component in range(COMPONENTS):
                    totals[component] += sums[component][found - 1]
            index -= index & -index
        return tuple(totals)  # type: ignore[return-value]

    def points(self, known: int) -> list[tuple[int, Vector]]:
        """Every point recorded by `known`, in recording order."""
        return self._points[: bisect_right(self.known, known)]


class Versions:
    """Values that hold from a recording time on, looked up by `known_at`."""

    def __init__(self) -> None:
        self.known: list[int] = []
        self.values: list[Any] = []

    def add(self, known: int, value: Any) -> None:
        self.known.append(known)
        self.values.append(value)

    def at(self, known: int) -> Any:
        index = bisect_right(self.known, known)
        return self.values[index - 1] if index else None


@dataclass
class ClaimIndex:
    sums: DominanceSum
    origins: dict[tuple[UUID, str], Versions]
    last_point: int = 0
    last_origin: int = 0
    entries: int = 0
    """Tally points and origin versions held."""


KEPT_ENTRIES = 1_000_000
"""Tally points and origin versions the index holds over every claim. Beyond that, the claims
asked about least recently are let go, to be read again from the read models when next asked."""


@dataclass(frozen=True)
class Counted:
    """One counted origin's decisive item at (at, known_at)."""

    evidence_id: str
    source_id: UUID
    stance: str
    strength: str
    reliability: str
    units: int


class VerdictIndex:
    """In-memory, per-claim bitemporal index over the verdict read models.

    It reads a claim or the ratings from `engine` under its lock, which readers holding a
    connection of their own wait for: so `engine` must be one that no reader takes connections
    from, or the loader could wait for a connection held by a reader waiting for it.
    """

    def __init__(self, engine: Engine, kept_entries: int = KEPT_ENTRIES) -> None:
        self.engine = engine
        self.kept_entries = kept_entries
        self._lock = threading.RLock()
        self._claims: OrderedDict[UUID, ClaimIndex] = OrderedDict()
        """The claims in memory, the one asked about least recently first."""
        self._entries = 0
        self._ratings: dict[UUID, Versions] = {}
        self._last_rating = 0
        self._ratings_loaded = False

    @property
    def entries(self) -> int:
        """Tally points and origin versions held, over every claim in memory."""
        return self._entries

    def clear(self) -> None:
        with self._lock:
            self._claims.clear()
            self._entries = 0
            self._ratings.clear()
            self._last_rating = 0
            self._ratings_loaded = False

    def extend(self, changes: Changes) -> None:
        """Take in what a committed page added, for the claims already in memory."""
        with self._lock:
            for point in changes.points:
                claim = self._claims.get(point.claim_id)
                if claim is not None and point.row is not None and point.row > claim.last_point:
                    claim.sums.append(point.known_from, point.at_from, point.vector)
                    claim.last_point = point.row
                    self._held(claim, 1)
            for origin in changes.origins:
                claim = self._claims.get(origin.claim_id)
                if claim is not None and origin.row is not None and origin.row > claim.last_origin:
                    key = (origin.source_id, origin.stance)
                    claim.origins.setdefault(key, Versions()).add(
                        origin.known_from, steps_from_json(origin.steps)
                    )
                    claim.last_origin = origin.row
                    self._held(claim, 1)
            self._let_go()
            if self._ratings_loaded:
                for rating in changes.ratings:
                    self._add_rating(rating)

    def tally(self, claim_id: UUID, at: int, known: int) -> Vector:
        with self._lock:
            return self._claim(claim_id).sums.total(known, at)

    def points(self, claim_id: UUID, known: int) -> list[tuple[int, Vector]]:
        with self._lock:
            return list(self._claim(claim_id).sums.points(known))

    def reliability(self, source_id: UUID, known: int) -> str:
        with self._lock:
            self._load_ratings()
            return self._reliability(source_id, known)

    def counted(self, claim_id: UUID, at: int, known: int, limit: int) -> list[Counted]:
        """The `limit` strongest origins counted at (at, known), strongest first.

        Every origin of the claim is looked at, so this costs time in their number; with a
        limit of 0 nothing is looked at.
        """
        if limit <= 0:
            return []
        decisive = []
        with self._lock:
            self._load_ratings()
            for (source_id, stance), versions in self._claim(claim_id).origins.items():
                steps = versions.at(known)
                step = value_at(steps, at) if steps else None
                if step is None or step.level == 0 or step.item is None:
                    continue
                reliability = self._reliability(source_id, known)
                units = RELIABILITY_UNITS[reliability] * step.level
                decisive.append((-units, step.item, source_id, stance, step.level, reliability))
        return [
            Counted(
                evidence_id=item,
                source_id=source_id,
                stance=stance,
                strength=_strength_name(level),
                reliability=reliability,
                units=-negated,
            )
            for negated, item, source_id, stance, level, reliability in heapq.nsmallest(
                limit, decisive, key=itemgetter(0, 1)
            )
        ]

    def decisive_item(
        self, claim_id: UUID, source_id: UUID, stance: str, at: int, known: int
    ) -> str | None:
        """The item the origin of `source_id` with `stance` counts at (at, known), if any."""
        with self._lock:
            versions = self._claim(claim_id).origins.get((source_id, stance))
            steps = versions.at(known) if versions else None
        step = value_at(steps, at) if steps else None
        return step.item if step is not None and step.level else None

    def _reliability(self, source_id: UUID, known: int) -> str:
        """The source's rating as known at `known` ("F" if unrated); hold the lock, with the
        ratings loaded."""
        versions = self._ratings.get(source_id)
        return (versions.at(known) if versions else None) or "F"

    def _claim(self, claim_id: UUID) -> ClaimIndex:
        claim = self._claims.get(claim_id)
        if claim is None:
            claim = self._load(claim_id)
            self._claims[claim_id] = claim
            self._entries += claim.entries
            self._let_go()
        else:
            self._claims.move_to_end(claim_id)
        return claim

    def _held(self, claim: ClaimIndex, entries: int) -> None:
        claim.entries += entries
        self._entries += entries

    def _let_go(self) -> None:
        """Let the claims asked about least recently go while more than `kept_entries` are
        held; the one asked about last stays, however large."""
        while self._entries > self.kept_entries and len(self._claims) > 1:
            _, claim = self._claims.popitem(last=False)
            self._entries -= claim.entries

    def _load(self, claim_id: UUID) -> ClaimIndex:
        claim = ClaimIndex(sums=DominanceSum(), origins={})
        with self.engine.connect() as connection:
            for row in _claim_rows(connection, TallyPoint.__table__, claim_id):
                point = PointRow(**row._mapping)
                claim.sums.append(point.known_from, point.at_from, point.vector)
                claim.last_point = point.row
                claim.entries += 1
            for row in _claim_rows(connection, OriginVersion.__table__, claim_id):
                origin = OriginRow(**row._mapping)
                claim.origins.setdefault((origin.source_id, origin.stance), Versions()).add(
                    origin.known_from, steps_from_json(origin.steps)
                )
                claim.last_origin = origin.row
                claim.entries += 1
        return claim

    def _load_ratings(self) -> None:
        if self._ratings_loaded:
            return
        table = RatingVersion.__table__
        with self.engine.connect() as connection:
            for row in connection.execute(table.select().order_by(table.c.position)):
                self._add_rating(RatingRow(**row._mapping))
        self._ratings_loaded = True

    def _add_rating(self, rating: RatingRow) -> None:
        if rating.position > self._last_rating:
            self._ratings.setdefault(rating.source_id, Versions()).add(
                rating.known_from, rating.reliability
            )
            self._last_rating = rating.position


def _claim_rows(connection: Connection, table: Table, claim_id: UUID) -> Result[Any]:
    """The claim's rows of a numbered table, in the order they were added."""
    return connection.execute(
        table.select().where(table.c.claim_id == claim_id).order_by(table.c.row)
    )


def _strength_name(level: int) -> str:
    return next(name for name, units in STRENGTH_UNITS.items() if units == level)


@dataclass(frozen=True)
class Verdict:
    tally: Tally
    items: int
    assessment: Assessment
    counted: list[Counted]


def verdict(
    index: VerdictIndex, claim_id: UUID, at: datetime, known_at: datetime, evidence_limit: int
) -> Verdict:
    """The verdict with its `evidence_limit` strongest counted origins: O(log² n) in the
    claim's items, plus the number of its origins when `evidence_limit` is above 0."""
    at_us, known_us = to_micros(at), to_micros(known_at)
    vector = index.tally(claim_id, at_us, known_us)
    tally = Tally(*vector[:5])
    return Verdict(
        tally=tally,
        items=vector[5],
        assessment=assess(tally),
        counted=index.counted(claim_id, at_us, known_us, evidence_limit),
    )


def ruling_at(
    session: Session, claim_id: UUID, at: datetime, known_at: datetime
) -> RulingView | None:
    """The ruling in force: the latest recorded by `known_at` among those effective by `at`."""
    query = (
        select(RulingView)
        .where(
            RulingView.claim_id == claim_id,
            col(RulingView.effective_at) <= at,
            col(RulingView.recorded_at) <= known_at,
        )
        .order_by(col(RulingView.position).desc())
        .limit(1)
    )
    return session.exec(query).first()


@dataclass(frozen=True)
class Judged:
    """One evidence item's state as known at `known_at`, and its fate at `at`."""

    version: EvidenceVersion
    counted: bool
    reason: str | None
    units: int
    reliability: str


def evidence_as_known(session: Session, claim_id: UUID, known: int) -> list[EvidenceVersion]:
    """The claim's evidence items, each in its latest state recorded by `known`, in the order
    of their first positions."""
    return list(session.exec(_as_known(claim_id, known)))


def evidence_page(
    session: Session, claim_id: UUID, known: int, after: int, limit: int
) -> tuple[list[EvidenceVersion], bool]:
    """As `evidence_as_known`, only the first `limit` items whose first position is past
    `after`, read by the claim's index in their order, not all of them; and whether any item
    follows them."""
    query = _as_known(claim_id, known).where(EvidenceVersion.position > after)
    page = list(session.exec(query.limit(limit + 1)))
    return page[:limit], len(page) > limit


def _as_known(claim_id: UUID, known: int) -> SelectOfScalar[EvidenceVersion]:
    """The versions on the claim that are their items' latest recorded by `known`; an item
    moved to another claim since has its latest version there."""
    later = aliased(EvidenceVersion)
    superseded = (
        select(later.row)
        .where(
            later.evidence_id == EvidenceVersion.evidence_id,
            col(later.row) > col(EvidenceVersion.row),
            later.known_from <= known,
        )
        .exists()
    )
    return (
        select(EvidenceVersion)
        .where(
            EvidenceVersion.claim_id == claim_id,
            EvidenceVersion.known_from <= known,
            ~superseded,
        )
        .order_by(col(EvidenceVersion.position), col(EvidenceVersion.evidence_id))
    )


def standing(session: Session, claim_id: UUID, at: int, known: int) -> list[EvidenceVersion]:
    """The claim's items that take a side and stand at `at` (published, not yet retracted),
    each as known at `known`: the claim's appearances, retellings included."""
    return [
        row
        for row in evidence_as_known(session, claim_id, known)
        if _reason(row, at, counted=True) in (None, REASON_DERIVED)
    ]


def judge(
    index: VerdictIndex,
    claim_id: UUID,
    items: Iterable[EvidenceVersion],
    at: datetime,
    known_at: datetime,
) -> list[Judged]:
    at_us, known_us = to_micros(at), to_micros(known_at)
    judged = []
    for item in items:
        reliability = index.reliability(item.source_id, known_us)
        units = 0
        if item.stance != "neutral":
            units = RELIABILITY_UNITS[reliability] * STRENGTH_UNITS[item.strength]  # type: ignore[index]
        decisive = index.decisive_item(claim_id, item.source_id, item.stance, at_us, known_us)
        reason = _reason(item, at_us, decisive == str(item.evidence_id))
        judged.append(
            Judged(
                version=item,
                counted=reason is None,
                reason=reason,
                units=units,
                reliability=reliability,
            )
        )
    return judged


def _reason(item: EvidenceVersion, at: int, counted: bool) -> str | None:
    if item.published > at:
        return REASON_NOT_YET_PUBLISHED
    if item.retracted is not None and at >= item.retracted:
        return REASON_RETRACTED
    if item.stance == "neutral":
        return REASON_NEUTRAL
    if item.derived_from:
        return REASON_DERIVED
    return None if counted else REASON_REPEAT


@dataclass(frozen=True)
class ChangePoint:
    at: datetime
    tally: Tally
    items: int
    assessment: Assessment
    published: list[str]
    retracted: list[str]


def _change_key(tally: Tally) -> tuple[Assessment, int, int]:
    """What a change point changes: the assessment, or the count of origins on either side."""
    return assess(tally), tally.supporting, tally.refuting


def timeline(
    index: VerdictIndex, session: Session, claim_id: UUID, known_at: datetime
) -> list[ChangePoint]:
    """The valid-time points where the verdict as known at `known_at` changes."""
    known = to_micros(known_at)
    by_at: dict[int, Vector] = {}
    for at, delta in index.points(claim_id, known):
        by_at[at] = add(by_at.get(at, ZERO), delta)
    items = evidence_as_known(session, claim_id, known)
    published: dict[int, list[str]] = {}
    retracted: dict[int, list[str]] = {}
    for item in items:
        published.setdefault(item.published, []).append(str(item.evidence_id))
        if item.retracted is not None:
            retracted.setdefault(item.retracted, []).append(str(item.evidence_id))
    changes: list[ChangePoint] = []
    state = ZERO
    previous = _change_key(Tally(*state[:5]))
    for at in sorted(by_at):
        state = add(state, by_at[at])
        tally = Tally(*state[:5])
        key = _change_key(tally)
        if key == previous:
            continue
        previous = key
        assessment = key[0]
        changes.append(
            ChangePoint(
                at=from_micros(at),
                tally=tally,
                items=state[5],
                assessment=assessment,
                published=published.get(at, []),
                retracted=retracted.get(at, []),
            )
        )
    return changes


@dataclass(frozen=True)
class HistoryEntry:
    service: str
    position: int
    type: str
    stream_id: UUID
    recorded_at: datetime
    data: dict[str, Any]
    metadata: dict[str, Any]

    @property
    def at(self) -> str | None:
        """The event's valid time, as recorded: when the source published it, or from when
        the ruling holds."""
        for field in ("published_at", "effective_at"):
            if isinstance(self.data.get(field), str):
                return str(self.data[field])
        return None


class Membership:
    """Until when each evidence item, and each source through its items, was on one claim
    (transaction time): what was recorded about them by then shaped the claim."""

    def __init__(self, claim_id: UUID, versions: Iterable[tuple[UUID, UUID, UUID, int]]) -> None:
        self._until: dict[UUID, float] = {}
        on_claim: dict[UUID, UUID] = {}
        """Each item on the claim now, with its source."""
        for evidence_id, claim, source_id, known_from in versions:
            if evidence_id in on_claim:
                for stream_id in (evidence_id, on_claim.pop(evidence_id)):
                    self._until[stream_id] = max(self._until.get(stream_id, 0), known_from)
            if claim == claim_id:
                on_claim[evidence_id] = source_id
        for evidence_id, source_id in on_claim.items():
            self._until[evidence_id] = self._until[source_id] = float("inf")
        self.streams = set(self._until)

    def shaped(self, stream_id: UUID, recorded: int) -> bool:
        """Whether an event about an item or a source was recorded while or before it was on
        the claim: an item's move away counts, what followed does not."""
        return recorded <= self._until.get(stream_id, -1)


def history(
    session: Session, claim_id: UUID, known_at: datetime, through: int
) -> list[HistoryEntry]:
    """Every recorded event that shaped the claim, from both services, in recorded order: the
    claims service's recorded by `known_at`, and the sources service's up to feed position
    `through`, which holds all it recorded by `known_at`."""
    known = to_micros(known_at)
    entries = [
        HistoryEntry(
            "claims",
            row.position,
            row.type,
            row.claim_id,
            row.recorded_at,
            row.data,
            row.event_metadata,
        )
        for row in session.exec(
            select(ClaimEventView)
            .where(ClaimEventView.claim_id == claim_id, col(ClaimEventView.recorded_at) <= known_at)
            .order_by(col(ClaimEventView.position))
        )
    ]
    evidence_ids = set(
        session.exec(
            select(EvidenceVersion.evidence_id).where(
                EvidenceVersion.claim_id == claim_id, col(EvidenceVersion.known_from) <= known
            )
        ).all()
    )
    if evidence_ids:
        membership = Membership(
            claim_id,
            session.exec(
                select(
                    EvidenceVersion.evidence_id,
                    EvidenceVersion.claim_id,
                    EvidenceVersion.source_id,
                    EvidenceVersion.known_from,
                )
                .where(
                    col(EvidenceVersion.evidence_id).in_(evidence_ids),
                    col(EvidenceVersion.known_from) <= known,
                )
                .order_by(col(EvidenceVersion.row))
            ).all(),
        )
        upstream = session.exec(
            select(UpstreamEvent)
            .where(
                col(UpstreamEvent.stream_id).in_(membership.streams),
                col(UpstreamEvent.rejected).is_(None),
                col(UpstreamEvent.position) <= through,
            )
            .order_by(col(UpstreamEvent.position))
        )
        entries.extend(
            HistoryEntry(
                "sources",
                row.position,
                row.type,
                row.stream_id,
                row.recorded_at,
                row.data,
                row.event_metadata,
            )
            for row in upstream
            if membership.shaped(row.stream_id, to_micros(row.recorded_at))
        )
    return sorted(entries, key=lambda entry: (entry.recorded_at, entry.service, entry.position))


def appearances(
    session: Session, items: Iterable[EvidenceVersion], known: int
) -> list[tuple[EvidenceVersion, str | None, str, str]]:
    """Each item with its url, its source's name and its summary, as recorded by `known`."""
    items = list(items)
    streams = {row.evidence_id for row in items} | {row.source_id for row in items}
    if not streams:
        return []
    details: dict[UUID, dict[str, Any]] = {}
    rows = session.exec(
        select(UpstreamEvent)
        .where(col(UpstreamEvent.stream_id).in_(streams), col(UpstreamEvent.rejected).is_(None))
        .order_by(col(UpstreamEvent.position))
    )
    for row in rows:
        if to_micros(row.recorded_at) > known:
            continue
        entry = details.setdefault(row.stream_id, {})
        if row.type in ("SourceRegistered", "EvidenceSubmitted"):
            entry.update(row.data)
        elif row.type == "EvidenceCorrected":
            entry.update(row.data.get("changes", {}))
    return [
        (
            row,
            details.get(row.evidence_id, {}).get("url"),
            details.get(row.source_id, {}).get("name", "unknown source"),
            details.get(row.evidence_id, {}).get("summary", ""),
        )
        for row in items
    ]
