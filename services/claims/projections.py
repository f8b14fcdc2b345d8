"""Read models of the claims service and the projections that keep them.

`ClaimsProjection` follows the service's own events (claims, rulings). `VerdictProjection`
follows the sources service's feed and keeps, for every claim, the bitemporal verdict state:
evidence and rating versions by `known_at`, origin step functions over `at`, and tally points
`(known_from, at, delta)` whose dominance sums are verdicts. Each feed page is applied in one
transaction together with the feed position, so every item counts exactly once.
"""

import json
from collections.abc import Iterable
from datetime import datetime
from typing import Any, NamedTuple, TypeVar
from uuid import UUID

from eventsourcing.domain import DomainEventProtocol
from pydantic import ValidationError
from pydantic_core import to_jsonable_python
from sqlalchemy import JSON, BigInteger, Column, Engine, Index, Table, text
from sqlmodel import Field, Session, SQLModel, col, func, select

from services.claims.domain import WORDING_TYPES, Claim
from services.claims.origins import (
    ITEM,
    Member,
    Step,
    Steps,
    Vector,
    difference,
    level_of,
    steps_of,
    vector_steps,
    with_new_member,
)
from shared.chain import GENESIS, event_hash
from shared.columns import WIDE_INTEGER, UtcDateTime
from shared.feed import FeedItem, FeedPage, event_type
from shared.follower import Progress
from shared.projection import Inserts, Projection, schema_change
from shared.shape import create_missing_indexes, unlike_code
from shared.sources_feed import (
    CorrectedData,
    ItemData,
    RatedData,
    Reliability,
    RetractedData,
    RetractionChange,
    Stance,
    SubmittedData,
)
from shared.timeaxes import from_micros, to_micros

FEED_NAME = "sources-feed"


M = TypeVar("M", bound=SQLModel)


class ClaimView(SQLModel, table=True):
    __tablename__ = "claim_view"

    id: UUID = Field(primary_key=True)
    text: str
    context: str | None = None
    tags: list[str] = Field(default_factory=list, sa_column=Column(JSON))
    registered_at: datetime = Field(sa_type=UtcDateTime)
    version: int
    position: int = Field(index=True, sa_type=WIDE_INTEGER)


class RulingView(SQLModel, table=True):
    __tablename__ = "ruling_view"

    position: int = Field(primary_key=True, sa_type=WIDE_INTEGER)
    claim_id: UUID = Field(index=True)
    status: str
    rationale: str
    effective_at: datetime = Field(sa_type=UtcDateTime)
    recorded_at: datetime = Field(sa_type=UtcDateTime)
    actor: str


class ClaimEventView(SQLModel, table=True):
    """The claim's own recorded events, for its history."""

    __tablename__ = "claim_event_view"

    position: int = Field(primary_key=True, sa_type=WIDE_INTEGER)
    claim_id: UUID = Field(index=True)
    type: str
    stream_version: int
    recorded_at: datetime = Field(sa_type=UtcDateTime)
    data: dict[str, Any] = Field(sa_column=Column(JSON))
    event_metadata: dict[str, Any] = Field(sa_column=Column("metadata", JSON))


class ClaimsProjection(Projection):
    """Keeps claims, rulings and each claim's own event history queryable."""

    name = "claims"
    tables = (ClaimView.__table__, RulingView.__table__, ClaimEventView.__table__)

    def apply(self, session: Session, position: int, event: DomainEventProtocol[UUID]) -> None:
        fields = {
            key: value
            for key, value in vars(event).items()
            if key not in ("originator_id", "originator_version", "timestamp", "originator_topic")
        }
        metadata = fields.pop("metadata", {})
        session.add(
            ClaimEventView(
                position=position,
                claim_id=event.originator_id,
                type=event_type(event),
                stream_version=event.originator_version,
                recorded_at=event.timestamp,
                data=to_jsonable_python(fields),
                event_metadata=metadata,
            )
        )
        if isinstance(event, Claim.Registered):
            session.add(
                ClaimView(
                    id=event.originator_id,
                    text=event.text,
                    context=event.context,
                    tags=list(event.tags),
                    registered_at=event.timestamp,
                    version=event.originator_version,
                    position=position,
                )
            )
            return
        claim = session.get_one(ClaimView, event.originator_id)
        claim.version = event.originator_version
        if isinstance(event, Claim.Reworded):
            claim.text = event.text
        elif isinstance(event, Claim.Ruled):
            session.add(
                RulingView(
                    position=position,
                    claim_id=event.originator_id,
                    status=event.status,
                    rationale=event.rationale,
                    effective_at=event.effective_at,
                    recorded_at=event.timestamp,
                    actor=str(metadata.get("actor", "anonymous")),
                )
            )
        session.add(claim)


class FeedTracking(SQLModel, table=True):
    """How far the sources feed has been applied, and up to which recording time."""

    __tablename__ = "feed_tracking"

    name: str = Field(primary_key=True)
    position: int = Field(default=0, sa_type=WIDE_INTEGER)
    known_through: int | None = Field(default=None, sa_type=BigInteger)


class FeedChain(SQLModel, table=True):
    """The hash of the last sources-feed item applied: the next must chain to it."""

    __tablename__ = "feed_chain"

    name: str = Field(primary_key=True)
    last_hash: str


class ChainBroken(RuntimeError):
    """A sources-feed item fails the hash chain: the feed was altered; nothing is applied."""

    def __init__(self, position: int, reason: str) -> None:
        super().__init__(f"the sources feed fails verification at position {position}: {reason}")
        self.position = position


class UpstreamEvent(SQLModel, table=True):
    """Every sources-feed item as received, with the reason if it could not be used."""

    __tablename__ = "upstream_event"

    position: int = Field(primary_key=True, sa_type=WIDE_INTEGER)
    id: UUID
    type: str
    version: int
    stream_id: UUID = Field(index=True)
    stream_version: int
    recorded_at: datetime = Field(sa_type=UtcDateTime, index=True)
    data: dict[str, Any] = Field(sa_column=Column(JSON))
    event_metadata: dict[str, Any] = Field(sa_column=Column("metadata", JSON))
    rejected: str | None = None


class EvidenceCurrent(SQLModel, table=True):
    """Each evidence item's state as recorded so far."""

    __tablename__ = "evidence_current"
    __table_args__ = (Index("ix_evidence_current_origin", "claim_id", "source_id", "stance"),)

    id: UUID = Field(primary_key=True)
    claim_id: UUID
    source_id: UUID
    stance: str
    strength: str
    published: int = Field(sa_type=BigInteger)
    derived_from: list[str] = Field(default_factory=list, sa_column=Column(JSON))
    retracted: int | None = Field(default=None, sa_type=BigInteger)
    position: int = Field(sa_type=WIDE_INTEGER)


class EvidenceVersion(SQLModel, table=True):
    """An evidence item's state from `known_from` on (transaction time)."""

    __tablename__ = "evidence_version"
    __table_args__ = (
        Index("ix_evidence_version_claim", "claim_id", "position"),
        Index("ix_evidence_version_item", "evidence_id", "row"),
    )

    row: int | None = Field(default=None, primary_key=True, sa_type=WIDE_INTEGER)
    evidence_id: UUID
    claim_id: UUID
    known_from: int = Field(sa_type=BigInteger)
    source_id: UUID
    stance: str
    strength: str
    published: int = Field(sa_type=BigInteger)
    derived_from: list[str] = Field(default_factory=list, sa_column=Column(JSON))
    retracted: int | None = Field(default=None, sa_type=BigInteger)
    position: int = Field(
        description="The evidence's first position in the sources feed.", sa_type=WIDE_INTEGER
    )


class SourceCurrent(SQLModel, table=True):
    __tablename__ = "source_current"

    id: UUID = Field(primary_key=True)
    reliability: str = "F"


class RatingVersion(SQLModel, table=True):
    """A source's reliability from `known_from` on."""

    __tablename__ = "rating_version"

    position: int = Field(primary_key=True, sa_type=WIDE_INTEGER)
    source_id: UUID = Field(index=True)
    known_from: int = Field(sa_type=BigInteger)
    reliability: str


class OriginCurrent(SQLModel, table=True):
    """Each origin's step function over valid time, as recorded so far."""

    __tablename__ = "origin_current"

    claim_id: UUID = Field(primary_key=True)
    source_id: UUID = Field(primary_key=True, index=True)
    stance: str = Field(primary_key=True)
    steps: list[list[Any]] = Field(default_factory=list, sa_column=Column(JSON))


class OriginVersion(SQLModel, table=True):
    """An origin's step function from `known_from` on."""

    __tablename__ = "origin_version"
    __table_args__ = (Index("ix_origin_version_claim", "claim_id", "row"),)

    row: int | None = Field(default=None, primary_key=True, sa_type=WIDE_INTEGER)
    claim_id: UUID
    source_id: UUID
    stance: str
    known_from: int = Field(sa_type=BigInteger)
    steps: list[list[Any]] = Field(default_factory=list, sa_column=Column(JSON))


class TallyPoint(SQLModel, table=True):
    """From `known_from` on, for every `at` >= `at_from`, the claim's tally moves by delta."""

    __tablename__ = "tally_point"
    __table_args__ = (Index("ix_tally_point_claim", "claim_id", "row"),)

    row: int | None = Field(default=None, primary_key=True, sa_type=WIDE_INTEGER)
    claim_id: UUID
    known_from: int = Field(sa_type=BigInteger)
    at_from: int = Field(sa_type=BigInteger)
    units: int
    supporting: int
    refuting: int
    weighty_supporting: int
    weighty_refuting: int
    items: int


VERDICT_TABLES = (
    UpstreamEvent.__table__,
    EvidenceCurrent.__table__,
    EvidenceVersion.__table__,
    SourceCurrent.__table__,
    RatingVersion.__table__,
    OriginCurrent.__table__,
    OriginVersion.__table__,
    TallyPoint.__table__,
)

APPLYING_INDEXES = frozenset({"ix_evidence_current_origin", "ix_origin_current_source_id"})
"""The indexes that applying the feed reads through; every other one serves only readers."""

RETIRED_INDEXES = ("ix_evidence_version_evidence_id", "ix_evidence_version_claim_id")
"""Indexes an earlier release made that nothing reads any more; every write would still keep
them up, so a start drops them."""

_REBUILT_TABLES = [FeedTracking.__table__, FeedChain.__table__, *VERDICT_TABLES]
"""Every table a rebuild drops and refills: the feed position, its last hash, the read models."""


def reading_indexes() -> list[Index]:
    """The verdict read models' indexes that only readers use: a rebuild fills without them."""
    return [
        index
        for table in VERDICT_TABLES
        for index in sorted(table.indexes, key=lambda index: str(index.name))
        if index.name not in APPLYING_INDEXES
    ]


class ItemRejected(ValueError):
    """A feed item this projection cannot use; it is kept with the reason and skipped."""


_UNCHANGED = object()
"""A field a correction leaves as it was."""


def steps_to_json(steps: Steps) -> list[list[Any]]:
    return [[step.at, step.level, step.item, step.published] for step in steps]


def steps_from_json(rows: Iterable[list[Any]]) -> Steps:
    return tuple(
        Step(int(at), int(level), item, int(published)) for at, level, item, published in rows
    )


class EvidenceState(NamedTuple):
    """An evidence item's columns (see EvidenceCurrent), as a new item is first inserted."""

    id: UUID
    claim_id: UUID
    source_id: UUID
    stance: str
    strength: str
    published: int
    derived_from: list[str]
    retracted: int | None
    position: int


class PointRow(NamedTuple):
    """A row of TallyPoint."""

    row: int
    claim_id: UUID
    known_from: int
    at_from: int
    units: int
    supporting: int
    refuting: int
    weighty_supporting: int
    weighty_refuting: int
    items: int

    @property
    def vector(self) -> Vector:
        return (
            self.units,
            self.supporting,
            self.refuting,
            self.weighty_supporting,
            self.weighty_refuting,
            self.items,
        )


class OriginRow(NamedTuple):
    """A row of OriginVersion."""

    row: int
    claim_id: UUID
    source_id: UUID
    stance: str
    known_from: int
    steps: list[list[Any]]


class RatingRow(NamedTuple):
    """A row of RatingVersion."""

    position: int
    source_id: UUID
    known_from: int
    reliability: str


class Changes:
    """What one transaction added, handed to the in-memory index after it commits."""

    def __init__(self) -> None:
        self.points: list[PointRow] = []
        self.origins: list[OriginRow] = []
        self.ratings: list[RatingRow] = []


class VerdictProjection:
    """Applies sources-feed pages to the bitemporal verdict read models."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._rows: dict[tuple[type[SQLModel], Any], SQLModel] = {}
        """Rows the page being applied has loaded or added, by table and key."""
        self._absent: set[UUID] = set()
        """Evidence ids the page refers to that were not stored before it."""
        self._new_evidence: set[UUID] = set()
        """Evidence the page submitted, queued in `_inserts` until a read needs it stored."""
        self._origins_loaded: set[UUID] = set()
        """Claims whose stored origins the page has loaded, all at once."""
        self._inserts = Inserts()
        """New rows, written before a read needs them and at the page's end."""
        self._last_row: dict[Table, int] = {}
        """The last row number given in each numbered table."""
        self.whole = False
        """Whether every table and index is known to be there: not from a `drop` until the
        next `create_tables` has ended."""

    def _find(self, session: Session, model: type[M], key: Any) -> M | None:
        """The row with `key`, added by this page or stored, without flushing the page."""
        known = self._rows.get((model, key))
        if known is not None:
            return known  # type: ignore[return-value]
        if model is EvidenceCurrent and key in self._new_evidence:
            self._insert_queued(session)
        elif model is EvidenceCurrent and key in self._absent:
            return None
        with session.no_autoflush:
            found = session.get(model, key)
        if found is not None:
            self._rows[(model, key)] = found
        return found

    def _prefetch(self, session: Session, page: FeedPage) -> None:
        """Load, a query each, the stored evidence and the origins the page's items refer to."""
        ids = {item.stream_id for item in page.items if item.type.startswith("Evidence")}
        stored = session.exec(select(EvidenceCurrent).where(col(EvidenceCurrent.id).in_(ids)))
        for evidence in stored:
            self._rows[(EvidenceCurrent, evidence.id)] = evidence
            ids.discard(evidence.id)
        self._absent = ids
        claims = {claim for item in page.items if (claim := _named(item, "claim_id")) is not None}
        sources = {
            source for item in page.items if (source := _named(item, "source_id")) is not None
        }
        sources |= {item.stream_id for item in page.items if item.type.startswith("Source")}
        stored_sources = session.exec(
            select(SourceCurrent).where(col(SourceCurrent.id).in_(sources))
        )
        for source in stored_sources:
            self._rows[(SourceCurrent, source.id)] = source
        origins = session.exec(select(OriginCurrent).where(col(OriginCurrent.claim_id).in_(claims)))
        for origin in origins:
            self._rows[(OriginCurrent, (origin.claim_id, origin.source_id, origin.stance))] = origin
        self._origins_loaded = claims

    def _number(self, session: Session, model: type[SQLModel]) -> int:
        """The next row number of a table whose rows only this projection adds."""
        table: Table = model.__table__  # type: ignore[attr-defined]
        last = self._last_row.get(table)
        if last is None:
            last = session.connection().execute(select(func.max(table.c.row))).scalar() or 0
        self._last_row[table] = last + 1
        return last + 1

    def _insert_queued(self, session: Session) -> None:
        """Insert the queued rows, before anything reads their tables, and at the page's end."""
        self._inserts.write(session)
        self._new_evidence.clear()

    def _add(self, session: Session, row: SQLModel, key: Any) -> None:
        self._rows[(type(row), key)] = row
        session.add(row)

    def create_tables(self) -> None:
        """Create what is missing: tables, and indexes, such as the readers' ones a rebuild
        broke off without."""
        SQLModel.metadata.create_all(self.engine, tables=_REBUILT_TABLES)
        create_missing_indexes(self.engine, _REBUILT_TABLES)
        self.whole = True

    def reshape(self) -> None:
        """Drop the verdict read models if their columns are not this release's, so that
        following the feed fills them again from its start, and the indexes it retired."""
        if unlike_code("verdicts", self.engine, _REBUILT_TABLES):
            self.drop()
        with schema_change(self.engine) as connection:
            for name in RETIRED_INDEXES:
                connection.execute(text(f'DROP INDEX IF EXISTS "{name}"'))

    def drop(self) -> None:
        """Drop every verdict read model and forget the feed position; the tables come back
        empty, without the readers' indexes, which `create_tables` restores once they are
        filled."""
        self.whole = False
        with schema_change(self.engine) as connection:
            SQLModel.metadata.drop_all(connection, tables=_REBUILT_TABLES)
            SQLModel.metadata.create_all(connection, tables=_REBUILT_TABLES)
            for index in reading_indexes():
                index.drop(connection)

    def progress(self) -> Progress:
        """The committed position with its hash, read in one statement so that both are of
        the same page while the follower applies more."""
        query = (
            select(FeedTracking.position, FeedTracking.known_through, FeedChain.last_hash)
            .outerjoin(FeedChain, col(FeedChain.name) == col(FeedTracking.name))
            .where(col(FeedTracking.name) == FEED_NAME)
        )
        with Session(self.engine) as session:
            row = session.exec(query).first()
        if row is None:
            return Progress(position=0, known_through=None)
        position, through, last_hash = row
        return Progress(
            position, None if through is None else from_micros(through), last_hash or ""
        )

    def apply_page(self, page: FeedPage) -> tuple[Progress, Changes]:
        """Apply the page's items and its position in one transaction."""
        changes = Changes()
        self._rows.clear()
        self._inserts.clear()
        self._new_evidence.clear()
        self._last_row.clear()
        with Session(self.engine, expire_on_commit=False) as session:
            self._prefetch(session, page)
            tracking = session.get(FeedTracking, FEED_NAME) or FeedTracking(name=FEED_NAME)
            chain = session.get(FeedChain, FEED_NAME)
            if chain is None:
                chain = FeedChain(
                    name=FEED_NAME, last_hash=GENESIS if not tracking.position else ""
                )
            position = tracking.position
            through = tracking.known_through
            last_hash = chain.last_hash
            for item in page.items:
                if item.position <= position:
                    continue
                _check_chain(item, last_hash)
                last_hash = str(item.metadata["hash"])
                rejected: str | None = None
                try:
                    self._apply_item(session, item, changes)
                except ItemRejected as error:
                    rejected = str(error)
                self._inserts.add(
                    UpstreamEvent,
                    {
                        "position": item.position,
                        "id": item.id,
                        "type": item.type,
                        "version": item.version,
                        "stream_id": item.stream_id,
                        "stream_version": item.stream_version,
                        "recorded_at": item.recorded_at,
                        "data": item.data,
                        "metadata": item.metadata,
                        "rejected": rejected,
                    },
                )
                position, through = item.position, to_micros(item.recorded_at)
            if page.next_after >= page.head and position >= page.head:
                through = max(through or 0, to_micros(page.head_known_at))
            tracking.position = position
            tracking.known_through = through
            chain.last_hash = last_hash
            self._insert_queued(session)
            session.add(tracking)
            session.add(chain)
            session.flush()
            session.commit()
        progress = Progress(position, None if through is None else from_micros(through), last_hash)
        return progress, changes

    def _apply_item(self, session: Session, item: FeedItem, changes: Changes) -> None:
        known = to_micros(item.recorded_at)
        handler = {
            "SourceRegistered": self._registered,
            "SourceRated": self._rated,
            "EvidenceSubmitted": self._submitted,
            "EvidenceRetracted": self._retracted,
            "EvidenceCorrected": self._corrected,
        }.get(item.type)
        if handler is None:
            raise ItemRejected(f"unknown event type {item.type!r}")
        if item.version != 1:
            raise ItemRejected(f"unknown version {item.version} of {item.type}")
        handler(session, item, known, changes)

    def _registered(self, session: Session, item: FeedItem, known: int, changes: Changes) -> None:
        if self._find(session, SourceCurrent, item.stream_id) is None:
            self._add(session, SourceCurrent(id=item.stream_id), item.stream_id)

    def _rated(self, session: Session, item: FeedItem, known: int, changes: Changes) -> None:
        data = _parse(RatedData, item)
        source = self._find(session, SourceCurrent, item.stream_id) or SourceCurrent(
            id=item.stream_id
        )
        old = source.reliability
        source.reliability = data.reliability
        self._add(session, source, item.stream_id)
        rating = RatingRow(item.position, item.stream_id, known, data.reliability)
        self._inserts.add(RatingVersion, rating)
        changes.ratings.append(rating)
        origins = session.exec(
            select(OriginCurrent)
            .where(OriginCurrent.source_id == item.stream_id)
            .order_by(col(OriginCurrent.claim_id), col(OriginCurrent.stance))
        ).all()
        for origin in origins:
            steps = steps_from_json(origin.steps)
            stance: Stance = origin.stance  # type: ignore[assignment]
            old_steps = vector_steps(steps, stance, old)  # type: ignore[arg-type]
            new_steps = vector_steps(steps, stance, data.reliability)
            self._points(session, origin.claim_id, known, difference(old_steps, new_steps), changes)

    def _submitted(self, session: Session, item: FeedItem, known: int, changes: Changes) -> None:
        data = _parse(SubmittedData, item)
        if self._find(session, EvidenceCurrent, item.stream_id) is not None:
            raise ItemRejected(f"evidence {item.stream_id} was already submitted")
        evidence = EvidenceState(
            id=item.stream_id,
            claim_id=data.claim_id,
            source_id=data.source_id,
            stance=data.stance,
            strength=data.strength,
            published=to_micros(data.published_at),
            derived_from=[str(parent) for parent in data.derived_from],
            retracted=None,
            position=item.position,
        )
        self._inserts.add(EvidenceCurrent, evidence)
        self._absent.discard(evidence.id)
        self._new_evidence.add(evidence.id)
        self._version(session, evidence, known)
        self._points(session, evidence.claim_id, known, [(evidence.published, ITEM)], changes)
        if _counts(evidence):
            origin = self._origin(session, evidence.claim_id, evidence.source_id, evidence.stance)
            old = steps_from_json(origin.steps)
            new = with_new_member(old, _member(evidence))
            self._set_origin(session, origin, old, new, known, changes)

    def _retracted(self, session: Session, item: FeedItem, known: int, changes: Changes) -> None:
        data = _parse(RetractedData, item)
        evidence = self._evidence(session, item)
        evidence.retracted = to_micros(data.published_at)
        session.add(evidence)
        self._version(session, evidence, known)
        if _counts(evidence):
            self._recompute(
                session, evidence.claim_id, evidence.source_id, evidence.stance, known, changes
            )

    def _corrected(self, session: Session, item: FeedItem, known: int, changes: Changes) -> None:
        data = _parse(CorrectedData, item)
        evidence = self._evidence(session, item)
        before = EvidenceState(**evidence.model_dump())
        fields = dict(data.changes)
        retraction = fields.pop("retracted_from", _UNCHANGED)
        merged = {
            "source_id": evidence.source_id,
            "claim_id": evidence.claim_id,
            "stance": evidence.stance,
            "strength": evidence.strength,
            "published_at": from_micros(evidence.published),
            "derived_from": evidence.derived_from,
            **fields,
        }
        try:
            state = SubmittedData.model_validate(merged)
            if retraction is not _UNCHANGED:
                retracted = RetractionChange(retracted_from=retraction).retracted_from
                evidence.retracted = None if retracted is None else to_micros(retracted)
        except ValidationError as error:
            raise ItemRejected(_first_error(error)) from None
        evidence.source_id = state.source_id
        evidence.claim_id = state.claim_id
        evidence.stance = state.stance
        evidence.strength = state.strength
        evidence.published = to_micros(state.published_at)
        evidence.derived_from = [str(parent) for parent in state.derived_from]
        session.add(evidence)
        session.flush()
        self._version(session, evidence, known)
        if (before.claim_id, before.published) != (evidence.claim_id, evidence.published):
            self._points(
                session, before.claim_id, known, [(before.published, _negated(ITEM))], changes
            )
            self._points(session, evidence.claim_id, known, [(evidence.published, ITEM)], changes)
        origins = {
            (row.claim_id, row.source_id, row.stance) for row in (before, evidence) if _counts(row)
        }
        for claim_id, source_id, stance in sorted(origins, key=str):
            self._recompute(session, claim_id, source_id, stance, known, changes)

    def _evidence(self, session: Session, item: FeedItem) -> EvidenceCurrent:
        evidence = self._find(session, EvidenceCurrent, item.stream_id)
        if evidence is None:
            raise ItemRejected(f"no evidence {item.stream_id} was submitted before")
        return evidence

    def _version(
        self, session: Session, evidence: EvidenceCurrent | EvidenceState, known: int
    ) -> None:
        self._inserts.add(
            EvidenceVersion,
            {
                "row": self._number(session, EvidenceVersion),
                "evidence_id": evidence.id,
                "claim_id": evidence.claim_id,
                "known_from": known,
                "source_id": evidence.source_id,
                "stance": evidence.stance,
                "strength": evidence.strength,
                "published": evidence.published,
                "derived_from": list(evidence.derived_from),
                "retracted": evidence.retracted,
                "position": evidence.position,
            },
        )

    def _origin(
        self, session: Session, claim_id: UUID, source_id: UUID, stance: str
    ) -> OriginCurrent:
        key = (claim_id, source_id, stance)
        origin = self._rows.get((OriginCurrent, key))
        if origin is None and claim_id not in self._origins_loaded:
            origin = self._find(session, OriginCurrent, key)
        if origin is None:
            origin = OriginCurrent(claim_id=claim_id, source_id=source_id, stance=stance, steps=[])
            self._rows[(OriginCurrent, key)] = origin
        return origin

    def _recompute(
        self,
        session: Session,
        claim_id: UUID,
        source_id: UUID,
        stance: str,
        known: int,
        changes: Changes,
    ) -> None:
        self._insert_queued(session)
        members = session.exec(
            select(EvidenceCurrent).where(
                EvidenceCurrent.claim_id == claim_id,
                EvidenceCurrent.source_id == source_id,
                EvidenceCurrent.stance == stance,
            )
        ).all()
        origin = self._origin(session, claim_id, source_id, stance)
        new = steps_of(_member(row) for row in members if _counts(row))
        self._set_origin(session, origin, steps_from_json(origin.steps), new, known, changes)

    def _set_origin(
        self,
        session: Session,
        origin: OriginCurrent,
        old: Steps,
        new: Steps,
        known: int,
        changes: Changes,
    ) -> None:
        if old == new:
            return
        source = self._find(session, SourceCurrent, origin.source_id)
        reliability: Reliability = source.reliability if source else "F"  # type: ignore[assignment]
        stance: Stance = origin.stance  # type: ignore[assignment]
        deltas = difference(
            vector_steps(old, stance, reliability), vector_steps(new, stance, reliability)
        )
        self._points(session, origin.claim_id, known, deltas, changes)
        origin.steps = steps_to_json(new)
        self._add(session, origin, (origin.claim_id, origin.source_id, origin.stance))
        version = OriginRow(
            row=self._number(session, OriginVersion),
            claim_id=origin.claim_id,
            source_id=origin.source_id,
            stance=origin.stance,
            known_from=known,
            steps=steps_to_json(new),
        )
        self._inserts.add(OriginVersion, version)
        changes.origins.append(version)

    def _points(
        self,
        session: Session,
        claim_id: UUID,
        known: int,
        deltas: list[tuple[int, Vector]],
        changes: Changes,
    ) -> None:
        for at, delta in deltas:
            point = PointRow(self._number(session, TallyPoint), claim_id, known, at, *delta)
            self._inserts.add(TallyPoint, point)
            changes.points.append(point)


def _check_chain(item: FeedItem, last_hash: str) -> None:
    """The item must match its own hash and follow the last applied one ("" if not known)."""
    if item.metadata.get("hash") != event_hash(item):
        raise ChainBroken(item.position, "the event does not match its hash; it was altered")
    if last_hash and item.metadata.get("prev_hash") != last_hash:
        raise ChainBroken(item.position, "it does not follow the last event applied")


def _parse(model: type[ItemData], item: FeedItem) -> Any:
    try:
        return model.model_validate(item.data)
    except ValidationError as error:
        raise ItemRejected(_first_error(error)) from None


def _first_error(error: ValidationError) -> str:
    first = error.errors()[0]
    field = ".".join(str(part) for part in first["loc"]) or "data"
    return f"{field}: {first['msg']}"


def _named(item: FeedItem, field: str) -> UUID | None:
    """The id a submission names in `field`, if it names one well enough to look up."""
    if item.type != "EvidenceSubmitted":
        return None
    try:
        return UUID(str(item.data.get(field)))
    except ValueError:
        return None


def _counts(evidence: EvidenceCurrent | EvidenceState) -> bool:
    """Whether the item can count for an origin: neither neutral nor derived."""
    return evidence.stance != "neutral" and not evidence.derived_from


def _member(evidence: EvidenceCurrent | EvidenceState) -> Member:
    return Member(
        id=str(evidence.id),
        level=level_of(evidence.strength),  # type: ignore[arg-type]
        published=evidence.published,
        retracted=evidence.retracted,
    )


def _negated(vector: Vector) -> Vector:
    return tuple(-value for value in vector)  # type: ignore[return-value]


def rulings_of(session: Session, claim_id: UUID) -> list[RulingView]:
    query = select(RulingView).where(RulingView.claim_id == claim_id)
    return list(session.exec(query.order_by(col(RulingView.position))))


def last_recorded(session: Session, claim_id: UUID) -> datetime | None:
    """When the claim's own latest event was recorded."""
    query = select(ClaimEventView.recorded_at).where(ClaimEventView.claim_id == claim_id)
    return session.exec(query.order_by(col(ClaimEventView.position).desc()).limit(1)).first()


def wording_known_at(session: Session, claim_id: UUID, known_at: datetime) -> str:
    """The claim's text as last registered or reworded by `known_at`, which must not be
    before the claim was registered."""
    query = (
        select(ClaimEventView.data)
        .where(ClaimEventView.claim_id == claim_id)
        .where(col(ClaimEventView.type).in_(WORDING_TYPES))
        .where(col(ClaimEventView.recorded_at) <= known_at)
        .order_by(col(ClaimEventView.position).desc())
        .limit(1)
    )
    return str(session.exec(query).one()["text"])


def position_known_at(session: Session, known_at: datetime) -> int:
    """The last sources-feed position recorded by `known_at` (0 if none).

    The feed records times in the order of its positions, so the latest time at or before
    `known_at` belongs to that position: one step down the index on `recorded_at`, where
    the largest position below `known_at` would read every row recorded before it.
    """
    query = (
        select(UpstreamEvent.position)
        .where(col(UpstreamEvent.recorded_at) <= known_at)
        .order_by(col(UpstreamEvent.recorded_at).desc(), col(UpstreamEvent.position).desc())
        .limit(1)
    )
    return session.exec(query).first() or 0


def list_claims(session: Session, after: int, limit: int) -> list[ClaimView]:
    query = select(ClaimView).where(ClaimView.position > after)
    return list(session.exec(query.order_by(col(ClaimView.position)).limit(limit)))


def rejected_items(session: Session, after: int, limit: int) -> list[UpstreamEvent]:
    query = select(UpstreamEvent).where(
        col(UpstreamEvent.rejected).is_not(None), UpstreamEvent.position > after
    )
    return list(session.exec(query.order_by(col(UpstreamEvent.position)).limit(limit)))


def digest_rows(session: Session) -> str:
    """A canonical dump of every verdict read model, to compare a rebuild with the original."""
    dump: dict[str, list[Any]] = {}
    for table in VERDICT_TABLES:
        rows = session.connection().execute(table.select().order_by(*table.primary_key.columns))
        dump[table.name] = [to_jsonable_python(dict(row._mapping)) for row in rows]
    return json.dumps(dump, sort_keys=True, default=str)
