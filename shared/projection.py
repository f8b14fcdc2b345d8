"""Read models kept by a projector that records its feed position in the same transaction."""

import logging
import threading
from abc import ABC, abstractmethod
from collections.abc import Sequence
from uuid import UUID

from eventsourcing.domain import DomainEventProtocol
from sqlalchemy import Engine, Table
from sqlmodel import Field, Session, SQLModel

from shared.eventstore import FactcheckApplication
from shared.idempotency import IdempotencyRecord, record_of

BATCH_SIZE = 500
logger = logging.getLogger("factcheck")


class ProjectionTracking(SQLModel, table=True):
    """The last feed position a projection has applied, committed with what it derived."""

    __tablename__ = "projection_tracking"

    name: str = Field(primary_key=True)
    position: int = 0


class Projection(ABC):
    """Applies an application's events to read models, exactly once, in recorded order."""

    name: str
    tables: Sequence[Table]

    def __init__(self, engine: Engine, application: FactcheckApplication) -> None:
        self.engine = engine
        self.application = application
        self._lock = threading.Lock()

    def create_tables(self) -> None:
        SQLModel.metadata.create_all(
            self.engine,
            tables=[ProjectionTracking.__table__, IdempotencyRecord.__table__, *self.tables],
        )

    def position(self) -> int:
        with Session(self.engine) as session:
            tracking = session.get(ProjectionTracking, self.name)
            return tracking.position if tracking else 0

    def catch_up_or_log(self) -> None:
        """Catch up; if an event cannot be applied, log it and leave the read models behind."""
        try:
            self.catch_up()
        except Exception:
            logger.exception("projection %s is behind: an event could not be applied", self.name)

    def catch_up(self) -> int:
        """Apply every event past the tracked position; return the new position."""
        with self._lock:
            while True:
                with Session(self.engine) as session:
                    tracking = session.get(ProjectionTracking, self.name) or ProjectionTracking(
                        name=self.name
                    )
                    events = self.application.events_after(tracking.position, BATCH_SIZE)
                    if not events:
                        return tracking.position
                    for position, domain_event in events:
                        self.apply(session, position, domain_event)
                        idempotency = record_of(position, domain_event)
                        if idempotency is not None:
                            session.add(idempotency)
                        tracking.position = position
                    session.add(tracking)
                    session.commit()

    def rebuild(self) -> int:
        """Drop the read models, recreate them, and apply every event again."""
        with self._lock:
            SQLModel.metadata.drop_all(
                self.engine, tables=[IdempotencyRecord.__table__, *self.tables]
            )
            with Session(self.engine) as session:
                tracking = session.get(ProjectionTracking, self.name)
                if tracking is not None:
                    session.delete(tracking)
                session.commit()
            self.create_tables()
        return self.catch_up()

    @abstractmethod
    def apply(self, session: Session, position: int, event: DomainEventProtocol[UUID]) -> None:
        """Apply one event to the read models in `session`."""
