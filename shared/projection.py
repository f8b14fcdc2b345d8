"""Read models kept by a projector that records its feed position in the same transaction."""

import logging
import threading
from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from uuid import UUID

from eventsourcing.domain import DomainEventProtocol
from sqlalchemy import Connection, Engine, Table
from sqlmodel import Field, Session, SQLModel, col, delete

from shared.bulk import Row, insert_rows
from shared.columns import WIDE_INTEGER
from shared.errors import Conflict, Unavailable
from shared.eventstore import FactcheckApplication
from shared.idempotency import IdempotencyRecord, fill_records, record_of
from shared.shape import create_missing_indexes, shape_faults, unlike_code
from shared.stored import StoredEvents

BATCH_SIZE = 500
READ_MODEL_WAIT_SECONDS = 5.0
"""How long a read waits for the read models to hold every write already answered."""
RETRY_FIRST_SECONDS = 0.5
RETRY_MAX_SECONDS = 5.0
"""A projector that failed to catch up tries again after the first pause, then after twice the
pause before, up to this."""
logger = logging.getLogger("factcheck")


class ProjectionTracking(SQLModel, table=True):
    """The last feed position a projection has applied, committed with what it derived."""

    __tablename__ = "projection_tracking"

    name: str = Field(primary_key=True)
    position: int = Field(default=0, sa_type=WIDE_INTEGER)


@contextmanager
def schema_change(engine: Engine) -> Iterator[Connection]:
    """A connection whose statements, schema changes among them, commit together or not at all.

    Python's sqlite3 runs each schema statement in a transaction of its own unless one was
    begun explicitly: a drop that failed part-way would leave some tables dropped and the rest
    holding rows that a refill would count again.
    """
    with engine.connect() as connection:
        begin_explicitly(connection)
        yield connection
        connection.commit()


def begin_explicitly(connection: Connection) -> None:
    """Begin the connection's transaction now, so that schema statements belong to it: Python's
    sqlite3 would otherwise begin one only at the first row written."""
    if connection.dialect.name == "sqlite":
        connection.exec_driver_sql("BEGIN IMMEDIATE")


class ReadGate:
    """Keeps reads of the read models and a rebuild of them apart.

    A read that begins while a rebuild runs is answered 503 at once; a rebuild first waits
    for the reads in progress to end. So no answer ever mixes old rows with rebuilt ones.
    """

    def __init__(self) -> None:
        self._changed = threading.Condition()
        self._reads = 0
        self._closed = False

    @contextmanager
    def reading(self) -> Iterator[None]:
        """Hold while reading the read models; Unavailable while they are being rebuilt."""
        with self._changed:
            if self._closed:
                raise Unavailable("the read models are being rebuilt; try again shortly")
            self._reads += 1
        try:
            yield
        finally:
            with self._changed:
                self._reads -= 1
                self._changed.notify_all()

    @contextmanager
    def closed(self, drain: float) -> Iterator[None]:
        """Refuse new reads, wait up to `drain` seconds for those in progress, then run."""
        with self._changed:
            if self._closed:
                raise Conflict("a rebuild is already running")
            self._closed = True
            drained = self._changed.wait_for(lambda: self._reads == 0, drain)
        try:
            if not drained:
                raise Unavailable(
                    f"reads in progress did not end within {drain:g} s; nothing was rebuilt"
                )
            yield
        finally:
            with self._changed:
                self._closed = False


class Inserts:
    """New rows, queued to go in one bulk insert per table, past the ORM's unit of work.

    Queued rows are not in the database until `write`: write them before anything reads or
    updates their tables.
    """

    def __init__(self) -> None:
        self._rows: dict[Table, list[Row]] = {}

    def add(self, model: type[SQLModel], values: Row) -> None:
        """Queue a new row of `model`'s table: its columns by name, or a named tuple of them."""
        self._rows.setdefault(model.__table__, []).append(values)  # type: ignore[attr-defined]

    def write(self, session: Session) -> None:
        """Insert every queued row in the session's transaction."""
        connection = session.connection()
        for table, rows in self._rows.items():
            if rows:
                insert_rows(connection, table, rows)
        self._rows.clear()

    def clear(self) -> None:
        self._rows.clear()


class Projection(ABC):
    """Applies an application's events to read models, exactly once, in recorded order."""

    name: str
    tables: Sequence[Table]

    def __init__(self, engine: Engine, application: FactcheckApplication) -> None:
        self.engine = engine
        self.application = application
        self._lock = threading.Lock()
        self._applied = threading.Condition()
        self._applied_position = 0
        self._position: int | None = None
        """The applied position, once read: this projector is the only one that moves it."""
        self.inserts = Inserts()
        """New rows `apply` queues; written before the batch commits."""
        self._wake = threading.Event()
        self._stopping = False
        self._thread: threading.Thread | None = None
        self.gate = ReadGate()
        """Readers of these read models hold it; close it around a rebuild."""
        self.fills_in_database = True
        """Whether empty read models are filled inside the database: False once a fill has
        failed, until the next rebuild, so that a failing fill is not run at every catch-up."""

    def _all_tables(self) -> list[Table]:
        """The read models with the position they hold and the idempotency records."""
        return [ProjectionTracking.__table__, IdempotencyRecord.__table__, *self.tables]

    def create_tables(self, bind: Engine | Connection | None = None) -> None:
        """Create the tables missing, and the indexes missing from tables already there."""
        target, tables = self.engine if bind is None else bind, self._all_tables()
        SQLModel.metadata.create_all(target, tables=tables)
        create_missing_indexes(target, tables)

    def reshape(self) -> None:
        """Drop the read models if their tables or columns are not this release's, so that
        they are filled again from the log."""
        if unlike_code(self.name, self.engine, self._all_tables()):
            self._replace_tables()

    def drop_tables(self, connection: Connection) -> None:
        SQLModel.metadata.drop_all(connection, tables=[IdempotencyRecord.__table__, *self.tables])

    def position(self) -> int:
        with Session(self.engine) as session:
            tracking = session.get(ProjectionTracking, self.name)
            return tracking.position if tracking else 0

    def missing_events(self) -> str | None:
        """Why the event log ends before what these read models applied, if it does: its
        newest events were lost, and a write now would take their positions."""
        position, head = self.position(), self.application.head()
        if position <= head:
            return None
        return (
            f"the event log ends at position {head}, but its read models applied position "
            f"{position}: the newest events are missing; restore the log, or drop the read "
            "models to accept the loss"
        )

    def catch_up_or_log(self) -> bool:
        """Catch up; if an event cannot be applied, log it, leave the read models behind, and
        answer False."""
        try:
            self.catch_up()
        except Exception:
            logger.exception("projection %s is behind: an event could not be applied", self.name)
            return False
        return True

    def follow(self) -> None:
        """Keep up in a background thread, woken after every write of the application.

        Writes then return without waiting for the read models; `wait_for_writes` gives
        readers their own writes back.
        """
        self.application.on_recorded(self._wake.set)
        self.application.before_close(self.stop)
        self._thread = threading.Thread(target=self._follow, name=f"{self.name}-projection")
        self._thread.daemon = True
        self._thread.start()

    def _follow(self) -> None:
        """Catch up at each wake; after a failure, try again with a growing pause even if no
        write wakes it, so that read models behind after an outage do not wait for one."""
        pause: float | None = None
        while not self._stopping:
            self._wake.wait(pause)
            self._wake.clear()
            if not self._stopping:
                if self.catch_up_or_log():
                    pause = None
                else:
                    pause = (
                        RETRY_FIRST_SECONDS if pause is None else min(2 * pause, RETRY_MAX_SECONDS)
                    )

    def stop(self) -> None:
        self._stopping = True
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=10)

    @property
    def applied_position(self) -> int:
        """The position the read models hold, as this process last committed or found it,
        read without the database."""
        with self._applied:
            return self._applied_position

    def wait_for_writes(self, timeout: float) -> bool:
        """Wait until every write the application has answered is applied; False on timeout."""
        target = self.application.last_position
        with self._applied:
            return self._applied.wait_for(lambda: self._applied_position >= target, timeout)

    def hold_answered_writes(self) -> None:
        """Return once the read models hold every answered write; Unavailable if they lag."""
        if not self.wait_for_writes(READ_MODEL_WAIT_SECONDS):
            raise Unavailable("the read models are behind the event store; try again shortly")

    def hold_recorded_writes(self) -> None:
        """Return once the read models hold every event recorded so far, answered or not: each
        event they lack was recorded later than this call."""
        self.application.store_decided()
        self.hold_answered_writes()

    def _applied_up_to(self, position: int) -> None:
        with self._applied:
            self._applied_position = position
            self._applied.notify_all()

    def catch_up(self) -> int:
        """Apply every event past the tracked position; return the new position."""
        with self._lock:
            try:
                return self._catch_up()
            except Exception:
                self._position = None
                self.inserts.clear()
                raise

    def _catch_up(self) -> int:
        """Catch up from the position last committed; a failed commit may have landed, so
        after any failure the position is read again from the database."""
        if self._position is None:
            self._position = self.position()
        if self._position == 0 and self.fills_in_database:
            try:
                self._fill()
            except Exception:
                self.inserts.clear()
                self.fills_in_database = False
                logger.warning(
                    "projection %s: filling the read models failed; applying events one by one",
                    self.name,
                    exc_info=True,
                )
                self._position = self.position()
        self._applied_up_to(self._position)
        while events := self.application.events_after(self._position, BATCH_SIZE):
            with self.application.database_writes(), Session(self.engine) as session:
                for position, domain_event in events:
                    self.apply(session, position, domain_event)
                    self._record_key(session, record_of(position, domain_event))
                applied = events[-1][0]
                self._commit_through(session, applied)
            self._position = applied
            self._applied_up_to(applied)
        return self._position

    def _fill(self) -> None:
        """Bring empty read models up to the head in one transaction: what `fill_in_database`
        fills there, with the tables' indexes left out until it is in, then the events it
        leaves, applied one by one, in recorded order. The transaction is begun before the
        indexes are dropped, so that on SQLite too a failure brings them back.

        If it fails, nothing is filled, and the catch-up applies every event one by one: up
        to an event that cannot be applied, if that was the cause. A commit that failed may
        have landed, so the position is read again."""
        head = self.application.head()
        if not head:
            return
        with self.application.database_writes(), Session(self.engine) as session:
            connection = session.connection()
            stored = StoredEvents(connection.dialect.name, self.application.events_table)
            begin_explicitly(connection)
            indexes = [index for table in self.tables for index in table.indexes]
            for index in indexes:
                index.drop(connection)
            topics = self.fill_in_database(connection, stored, head)
            if topics is None:
                session.rollback()
                return
            fill_records(connection, stored, head)
            for index in indexes:
                index.create(connection)
            after = 0
            while events := self.application.events_after(after, BATCH_SIZE, head, topics):
                for position, domain_event in events:
                    self.apply(session, position, domain_event)
                after = events[-1][0]
            self._commit_through(session, head)
        self._position = head
        self._applied_up_to(head)

    def fill_in_database(
        self, connection: Connection, stored: StoredEvents, head: int
    ) -> Sequence[str] | None:
        """Fill the empty read models from the events up to `head` inside the database, as
        `apply` would, and answer the topics of the events still to apply one by one, in
        recorded order; None, with nothing filled, to apply every event one by one.

        The filled events are applied before the others rather than among them: only events
        that add rows which no other event reads before changing them may be filled.
        Idempotency records are filled for every event.
        """
        return None

    def _commit_through(self, session: Session, position: int) -> None:
        """Write the queued rows and record `position` as applied, in one commit."""
        self.inserts.write(session)
        self._track(session, position)
        session.commit()

    def _record_key(self, session: Session, record: IdempotencyRecord | None) -> None:
        """Keep the write an idempotency key first caused. A later event with the same key,
        as a keyed write that overlapped a rebuild once recorded, leaves it as it is."""
        if record is None:
            return
        first = session.get(IdempotencyRecord, (record.actor, record.key))
        if first is None:
            session.add(record)
            return
        logger.warning(
            "projection %s: idempotency key %r of %s, first used at position %s, is used "
            "again at position %s; the first write stands",
            self.name,
            record.key,
            record.actor,
            first.position,
            record.position,
        )

    def _track(self, session: Session, position: int) -> None:
        """Record `position` as applied, in the session's transaction."""
        table = ProjectionTracking.__table__
        connection = session.connection()
        moved = connection.execute(
            table.update().where(table.c.name == self.name).values(position=position)
        )
        if not moved.rowcount:
            connection.execute(table.insert().values(name=self.name, position=position))

    def rebuild(self) -> int:
        """Drop the read models, recreate them, and apply every event again.

        Close `gate` around it while the service serves reads. Writes wait while the tables
        are replaced, and a write with an idempotency key then waits for the rebuild to reach
        the last answered write, so it never looks its key up in a table not yet refilled.
        """
        self._replace_tables()
        return self.catch_up()

    def _replace_tables(self) -> None:
        """Drop the read models and their position, and create them empty, in one transaction."""
        with self.application.writing(), self._lock:
            self._position = None
            """Read again from the database, however far the swap got: by the next catch-up,
            woken at once if the swap fails."""
            try:
                with schema_change(self.engine) as connection:
                    self.drop_tables(connection)
                    tracking = [ProjectionTracking.__table__]
                    if shape_faults(connection, tracking):
                        SQLModel.metadata.drop_all(connection, tables=tracking)
                    self.create_tables(connection)
                    connection.execute(
                        delete(ProjectionTracking).where(col(ProjectionTracking.name) == self.name)
                    )
            except Exception:
                self._wake.set()
                raise
            self._applied_up_to(0)
            self.fills_in_database = True

    @abstractmethod
    def apply(self, session: Session, position: int, event: DomainEventProtocol[UUID]) -> None:
        """Apply one event to the read models in `session`.

        Rows queued in `self.inserts` are written at the batch's end: write them first
        before reading a table they go to.
        """
