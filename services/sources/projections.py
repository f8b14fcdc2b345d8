"""Read models of the sources service and the projection that keeps them."""

from collections.abc import Collection, Sequence
from datetime import datetime
from typing import Any, TypeVar
from uuid import UUID

from eventsourcing.domain import DomainEventProtocol
from eventsourcing.utils import get_topic
from pydantic_core import to_jsonable_python
from sqlalchemy import JSON, Column, Connection, text
from sqlmodel import Field, Session, SQLModel, col, select

from services.sources.domain import Evidence, Source
from shared.columns import WIDE_INTEGER, UtcDateTime
from shared.projection import Projection
from shared.stored import StoredEvents


class SourceView(SQLModel, table=True):
    __tablename__ = "source_view"

    id: UUID = Field(primary_key=True)
    name: str
    kind: str
    url: str | None = None
    country: str | None = None
    notes: str | None = None
    reliability: str = "F"
    registered_at: datetime = Field(sa_type=UtcDateTime)
    version: int


class RatingView(SQLModel, table=True):
    __tablename__ = "rating_view"

    position: int = Field(primary_key=True, sa_type=WIDE_INTEGER)
    source_id: UUID = Field(index=True)
    reliability: str
    rationale: str
    rater: str
    recorded_at: datetime = Field(sa_type=UtcDateTime)


class EvidenceView(SQLModel, table=True):
    __tablename__ = "evidence_view"

    id: UUID = Field(primary_key=True)
    source_id: UUID = Field(index=True)
    claim_id: UUID = Field(index=True)
    stance: str
    strength: str
    published_at: datetime = Field(sa_type=UtcDateTime)
    url: str | None = None
    quote: str | None = None
    summary: str
    derived_from: list[str] = Field(default_factory=list, sa_column=Column(JSON))
    retracted_from: datetime | None = Field(default=None, sa_type=UtcDateTime)
    recorded_at: datetime = Field(sa_type=UtcDateTime)
    position: int = Field(index=True, sa_type=WIDE_INTEGER)
    version: int


class CorrectionView(SQLModel, table=True):
    __tablename__ = "correction_view"

    position: int = Field(primary_key=True, sa_type=WIDE_INTEGER)
    evidence_id: UUID = Field(index=True)
    changes: dict[str, Any] = Field(sa_column=Column(JSON))
    reason: str
    recorded_at: datetime = Field(sa_type=UtcDateTime)


class RetractionView(SQLModel, table=True):
    """Every retraction recorded, with the date and reason it was recorded with, including one
    a correction has since moved or withdrawn."""

    __tablename__ = "retraction_view"

    position: int = Field(primary_key=True, sa_type=WIDE_INTEGER)
    evidence_id: UUID = Field(index=True)
    published_at: datetime = Field(sa_type=UtcDateTime)
    reason: str
    recorded_at: datetime = Field(sa_type=UtcDateTime)


class SourcesProjection(Projection):
    """Keeps sources, their rating history, evidence and corrections queryable."""

    name = "sources"
    tables = (
        SourceView.__table__,
        RatingView.__table__,
        EvidenceView.__table__,
        CorrectionView.__table__,
        RetractionView.__table__,
    )

    def apply(self, session: Session, position: int, event: DomainEventProtocol[UUID]) -> None:
        if isinstance(event, Evidence.Submitted):
            self.inserts.add(
                EvidenceView,
                {
                    "id": event.originator_id,
                    "source_id": event.source_id,
                    "claim_id": event.claim_id,
                    "stance": event.stance,
                    "strength": event.strength,
                    "published_at": event.published_at,
                    "url": event.url,
                    "quote": event.quote,
                    "summary": event.summary,
                    "derived_from": [str(parent) for parent in event.derived_from],
                    "recorded_at": event.timestamp,
                    "position": position,
                    "version": event.originator_version,
                },
            )
            return
        self.inserts.write(session)
        if isinstance(event, Source.Registered):
            session.add(
                SourceView(
                    id=event.originator_id,
                    name=event.name,
                    kind=event.kind,
                    url=event.url,
                    country=event.country,
                    notes=event.notes,
                    registered_at=event.timestamp,
                    version=event.originator_version,
                )
            )
        elif isinstance(event, Source.Rated):
            source = session.get_one(SourceView, event.originator_id)
            source.reliability = event.reliability
            source.version = event.originator_version
            session.add(source)
            session.add(
                RatingView(
                    position=position,
                    source_id=event.originator_id,
                    reliability=event.reliability,
                    rationale=event.rationale,
                    rater=event.rater,
                    recorded_at=event.timestamp,
                )
            )
        elif isinstance(event, Evidence.Retracted):
            evidence = session.get_one(EvidenceView, event.originator_id)
            evidence.retracted_from = event.published_at
            evidence.version = event.originator_version
            session.add(evidence)
            session.add(
                RetractionView(
                    position=position,
                    evidence_id=event.originator_id,
                    published_at=event.published_at,
                    reason=event.reason,
                    recorded_at=event.timestamp,
                )
            )
        elif isinstance(event, Evidence.Corrected):
            evidence = session.get_one(EvidenceView, event.originator_id)
            for field, value in event.changes.items():
                if field == "derived_from":
                    value = [str(parent) for parent in value]
                setattr(evidence, field, value)
            evidence.version = event.originator_version
            session.add(evidence)
            session.add(
                CorrectionView(
                    position=position,
                    evidence_id=event.originator_id,
                    changes=to_jsonable_python(event.changes),
                    reason=event.reason,
                    recorded_at=event.timestamp,
                )
            )

    def fill_in_database(
        self, connection: Connection, stored: StoredEvents, head: int
    ) -> Sequence[str]:
        """Insert every submitted item's row in one statement; the rest, one by one."""
        values = {
            "id": "stream_id",
            "source_id": stored.uuid("source_id"),
            "claim_id": stored.uuid("claim_id"),
            "stance": stored.text("stance"),
            "strength": stored.text("strength"),
            "published_at": stored.instant("published_at"),
            "url": stored.text("url"),
            "quote": stored.text("quote"),
            "summary": stored.text("summary"),
            "derived_from": stored.uuid_texts("derived_from"),
            "recorded_at": stored.instant("timestamp"),
            "position": "position",
            "version": "version",
        }
        connection.execute(
            text(
                f"INSERT INTO {EvidenceView.__tablename__} ({', '.join(values)}) "
                f"SELECT {', '.join(values.values())} FROM {stored.rows(topic=True)}"
            ),
            {"head": head, "topic": SUBMITTED},
        )
        return APPLIED_ONE_BY_ONE


SUBMITTED = get_topic(Evidence.Submitted)
APPLIED_ONE_BY_ONE = tuple(
    get_topic(event)
    for event in (Source.Registered, Source.Rated, Evidence.Retracted, Evidence.Corrected)
)
"""What a fill leaves to `apply`: every other event the sources read models take."""


def list_sources(session: Session) -> list[tuple[SourceView, list[RatingView]]]:
    """Every source in registration order, with its ratings oldest first: two queries in all."""
    sources = list(session.exec(select(SourceView).order_by(col(SourceView.registered_at))))
    ratings: dict[UUID, list[RatingView]] = {}
    for rating in session.exec(select(RatingView).order_by(col(RatingView.position))):
        ratings.setdefault(rating.source_id, []).append(rating)
    return [(source, ratings.get(source.id, [])) for source in sources]


def rating_history(session: Session, source_id: UUID) -> list[RatingView]:
    """The source's ratings, oldest first."""
    query = select(RatingView).where(RatingView.source_id == source_id)
    return list(session.exec(query.order_by(col(RatingView.position))))


def evidence_for_claim(
    session: Session, claim_id: UUID | None, after: int, limit: int
) -> list[EvidenceView]:
    """A page of evidence in recorded order, for one claim or for all."""
    query = select(EvidenceView).where(EvidenceView.position > after)
    if claim_id is not None:
        query = query.where(EvidenceView.claim_id == claim_id)
    return list(session.exec(query.order_by(col(EvidenceView.position)).limit(limit)))


ItemRecord = TypeVar("ItemRecord", CorrectionView, RetractionView)


def records_by_item(
    session: Session, model: type[ItemRecord], evidence_ids: Collection[UUID]
) -> dict[UUID, list[ItemRecord]]:
    """The corrections or the retractions of these items, in one query; each item's oldest
    first."""
    found: dict[UUID, list[ItemRecord]] = {evidence_id: [] for evidence_id in evidence_ids}
    query = select(model).where(col(model.evidence_id).in_(list(found)))
    for row in session.exec(query.order_by(col(model.position))):
        found[row.evidence_id].append(row)
    return found
