"""Event-store wiring shared by both services: the aggregate base and the application base."""

import functools
import logging
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext, suppress
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal, ParamSpec, TypeVar
from uuid import UUID

from eventsourcing.application import AggregateNotFoundError, Application, ProcessingEvent
from eventsourcing.domain import Aggregate, DomainEventProtocol
from eventsourcing.persistence import (
    InfrastructureFactory,
    Mapper,
    MapperDeserialisationError,
    Notification,
    RecordConflictError,
    Recording,
    StoredEvent,
)
from eventsourcing.postgres import PostgresFactory
from eventsourcing.utils import Environment, get_topic

from shared.chain import GENESIS, UnreadableEvent, event_hash
from shared.errors import RESTART_SECONDS, NotFound, Unavailable
from shared.feed import feed_item
from shared.storage import CONNECT_SECONDS, Storage
from shared.timeaxes import recording_clock

ANONYMOUS: Mapping[str, str] = {"actor": "anonymous"}
logger = logging.getLogger("factcheck")
P = ParamSpec("P")
R = TypeVar("R")
A = TypeVar("A", bound=Aggregate)
_event_metadata: ContextVar[Mapping[str, str]] = ContextVar("event_metadata", default=ANONYMOUS)


class FactcheckAggregate(Aggregate):
    """Aggregate whose events carry who and why, timed by the service's recording clock."""

    class Event(Aggregate.Event):
        metadata: dict[str, Any]

        @staticmethod
        def create_timestamp() -> datetime:
            return recording_clock.now()

    class Created(Event, Aggregate.Created):
        pass

    def trigger_event(self, event_class: Any, **kwargs: Any) -> None:
        super().trigger_event(event_class, metadata=dict(_event_metadata.get()), **kwargs)

    @classmethod
    def _create(cls, event_class: Any, *, id: Any = None, **kwargs: Any) -> Any:
        return super()._create(event_class, id=id, metadata=dict(_event_metadata.get()), **kwargs)


Refusal = Literal["missing events", "store taken", "unreadable head", "closing"]
"""Why writes may be refused: the log lacks events its read models applied, another process
took the store over, the newest event cannot be read, so nothing can be chained to it, or the
application is closing."""
WRITES_DRAIN_SECONDS = 3.0
"""How long closing waits for writes already begun to be stored before it closes the store:
a server that stops waits for its requests a bounded time, and then closes the application
while threads it started for writes may still be running."""
CONFLICT_RETRIES = 3


def retry_on_conflict(command: Callable[P, R]) -> Callable[P, R]:
    """Run an update again, on the fresh aggregate, when another writer got there first.

    Only without If-Match: with an expected version, a conflict is the caller's to resolve.
    """

    @functools.wraps(command)
    def retrying(*args: P.args, **kwargs: P.kwargs) -> R:
        for attempt in range(CONFLICT_RETRIES):
            try:
                return command(*args, **kwargs)
            except RecordConflictError:
                if kwargs.get("expected_version") is not None or attempt == CONFLICT_RETRIES - 1:
                    raise
        raise AssertionError("unreachable")

    return retrying


@dataclass(frozen=True)
class Recorded:
    """What every write answers: the aggregate, its new version, its feed position and time."""

    id: UUID
    version: int
    position: int
    recorded_at: datetime


class Write:
    """One command's events, from the moment they are decided until they are stored."""

    def __init__(self) -> None:
        self.events: list[DomainEventProtocol[UUID]] = []
        self._done = threading.Event()
        self._recorded: Recorded | None = None
        self._error: BaseException | None = None

    def add(self, *aggregates: FactcheckAggregate) -> None:
        """Take the aggregates' new events into this write."""
        for aggregate in aggregates:
            self.events.extend(aggregate.collect_events())

    @property
    def done(self) -> bool:
        return self._done.is_set()

    def stored(self, recordings: Sequence[Recording[UUID]]) -> None:
        last = recordings[-1]
        self._recorded = Recorded(
            id=last.domain_event.originator_id,
            version=last.domain_event.originator_version,
            position=last.notification.id,
            recorded_at=last.domain_event.timestamp,
        )
        self._done.set()

    def failed(self, error: BaseException) -> None:
        self._error = error
        self._done.set()

    @property
    def recorded(self) -> Recorded:
        """Where the write's last event was stored; raises why it was not."""
        if self._error is not None:
            raise self._error
        assert self._recorded is not None, "the write has not been stored"
        return self._recorded


class CheckedMapper(Mapper[UUID]):
    """Decodes stored events, refusing a created event that names another aggregate class than
    the one its event type belongs to. That name is stored beside the event's data but is not
    part of its public feed item, so the hash chain does not cover it; altered, it would make
    the aggregate unloadable while the log still verified."""

    def to_domain_event(self, stored_event: StoredEvent) -> DomainEventProtocol[UUID]:
        event = super().to_domain_event(stored_event)
        named = getattr(event, "originator_topic", None)
        if named is None:
            return event
        own = get_topic(type(event)).rpartition(".")[0]
        if named != own:
            raise MapperDeserialisationError(
                f"its originator_topic {named!r} is not {own!r}, the aggregate of its event type"
            )
        return event


class FactcheckApplication(Application[UUID]):
    """An eventsourcing application configured only by its Storage, never by os.environ.

    A command decides its events under the write lock, so that its checks see every write
    decided before it, then waits outside the lock while they are stored. Writes waiting
    together are stored in one transaction (group commit), in the order they were decided:
    an item recorded after another has both a later position and a later time. If that
    transaction conflicts, each write is stored on its own, so one conflict fails one write.
    """

    log_section_size = 1000

    def __init__(self, storage: Storage) -> None:
        self.storage = storage
        self._writing = threading.RLock()
        self._storing = threading.RLock()
        self._queued: list[Write] = []
        self._in_flight: list[Write] = []
        """The batch being stored now, taken off the queue."""
        self._queue_lock = threading.Lock()
        self._recorded = threading.Condition()
        self._listeners: list[Callable[[], None]] = []
        self._before_close: list[Callable[[], None]] = []
        self._after_close: list[Callable[[], None]] = []
        self._waits_ended = False
        self._writes_open = 0
        """Writes begun and not yet stored or failed; closing waits for them."""
        self._writes_settled = threading.Condition()
        super().__init__(env=storage.eventsourcing_env())
        self._refusals: dict[str, str] = {}
        self._chain_head: str | None = GENESIS
        """The newest stored event's hash; None when a failed store leaves it unknown."""
        try:
            self._chain_head = self._last_hash()
        except UnreadableEvent as error:
            reason = f"{error}, so no new event can be chained to it; GET /audit/verify"
            self.refuse_writes(reason, "unreadable head")
        self.last_position = self.head()
        """The position of the newest event this process has recorded (or found at start)."""

    @property
    def refusal(self) -> str | None:
        """Why writes are refused, if they are: see `refuse_writes`."""
        return "; ".join(self._refusals.values()) or None

    def refuse_writes(self, reason: str | None, cause: Refusal) -> None:
        """Answer every write 503 with `reason` for `cause`; None lets writes in again as far
        as that cause goes."""
        with self._writes_settled:
            if reason is None:
                self._refusals.pop(cause, None)
            else:
                self._refusals[cause] = reason

    def construct_env(self, name: str, env: Mapping[str, str] | None = None) -> Environment:
        return Environment(name, dict(env or {}))

    def construct_factory(self, env: Environment) -> InfrastructureFactory:
        """The store's factory, with a PostgreSQL store's first connection made within
        CONNECT_SECONDS before the tables are made on it: once started, a request waits for a
        pooled connection only as long as the pool's timeout, so that a database gone away is
        answered 503 soon."""
        factory = super().construct_factory(env)
        if isinstance(factory, PostgresFactory):
            pool = factory.datastore.pool
            try:
                pool.open()
                with pool.connection(timeout=CONNECT_SECONDS):
                    pass
            except BaseException:
                pool.close()
                raise
        return factory

    def writing(self) -> threading.RLock:
        """The write lock: hold it to make a check and a write one step."""
        return self._writing

    @contextmanager
    def recording(self, metadata: Mapping[str, str] = ANONYMOUS) -> Iterator[Write]:
        """Decide a write under the write lock, stamping its events with `metadata`; on leaving,
        store what was added to it. Read `recorded` on the yielded write afterwards."""
        with self._open_write():
            write = Write()
            with self._writing:
                token = _event_metadata.set(metadata)
                try:
                    yield write
                finally:
                    _event_metadata.reset(token)
                if write.events:
                    with self._queue_lock:
                        self._queued.append(write)
            if write.events:
                self._store_through(write)

    @contextmanager
    def _open_write(self) -> Iterator[None]:
        """Count a write as open from its start until it is stored or has failed, unless
        writes are refused; closing waits for the open ones."""
        with self._writes_settled:
            refusal = self.refusal
            if refusal is not None:
                closing = self._refusals.keys() == {"closing"}
                retry_after = RESTART_SECONDS if closing else None
                raise Unavailable(f"writes are refused: {refusal}", retry_after=retry_after)
            self._writes_open += 1
        try:
            yield
        finally:
            with self._writes_settled:
                self._writes_open -= 1
                self._writes_settled.notify_all()

    def store_decided(self) -> None:
        """Return once every write decided so far is stored (or has failed). A write decided
        later takes a later time, so every event recorded before this call is then stored."""
        with self._writing:
            pass
        self._store_through()

    def construct_mapper(self) -> Mapper[UUID]:
        return self.factory.mapper(self.construct_transcoder(), CheckedMapper)

    def get_aggregate(self, kind: type[A], aggregate_id: UUID, what: str) -> A:
        """The `kind` with that id as every write decided so far leaves it; NotFound if none.

        Call it under the write lock: writes to the aggregate that are decided but not yet
        stored are stored first, so that an update never starts from a stale version.
        """
        if self._queued_for(aggregate_id):
            self._store_through()
        try:
            aggregate = self.repository.get(aggregate_id)
        except AggregateNotFoundError:
            raise NotFound(what, aggregate_id) from None
        if not isinstance(aggregate, kind):
            raise NotFound(what, aggregate_id)
        return aggregate

    def _queued_for(self, aggregate_id: UUID) -> bool:
        """Whether a write to the aggregate is decided but not yet stored."""
        with self._queue_lock:
            return any(
                event.originator_id == aggregate_id
                for write in (*self._in_flight, *self._queued)
                for event in write.events
            )

    def database_writes(self) -> AbstractContextManager[object]:
        """Hold while writing read models to this service's database.

        SQLite takes one writer at a time and makes the others poll for its lock, sleeping
        milliseconds at a time; taking turns with the event store in process hands over at
        once. PostgreSQL takes concurrent writers, so there it holds nothing.
        """
        return self._storing if self.storage.kind == "sqlite" else nullcontext()

    def _store_through(self, write: Write | None = None) -> None:
        """Store every queued write (up to `write`, unless another thread already has)."""
        with self._storing:
            if write is not None and write.done:
                return
            with self._queue_lock:
                batch, self._queued = self._queued, []
                self._in_flight = batch
            if not batch:
                return
            try:
                self._store_together(batch)
            except RecordConflictError:
                for each in batch:
                    try:
                        self._store_together([each])
                    except Exception as error:
                        each.failed(error)
            except Exception as error:
                for each in batch:
                    each.failed(error)
            finally:
                with self._queue_lock:
                    self._in_flight = []

    def _store_together(self, batch: list[Write]) -> None:
        recordings = self.save(*(event for write in batch for event in write.events))
        offset = 0
        for write in batch:
            offset += len(write.events)
            write.stored(recordings[offset - len(write.events) : offset])

    def _record(self, processing_event: ProcessingEvent[UUID]) -> list[Recording[UUID]]:
        """Chain each new event to the one before it, then store them together.

        A store that fails may have stored the events all the same (a commit that landed but
        did not answer), so after a failure the chain's head is read again (`settle`) rather
        than taken from what this process last stored.
        """
        with self._storing:
            self.settle()
            head = self._chain_head
            for event in processing_event.events:
                metadata = event.metadata  # type: ignore[attr-defined]
                metadata.pop("hash", None)
                metadata["prev_hash"] = head
                head = event_hash(feed_item(0, event))
                metadata["hash"] = head
            try:
                recordings = super()._record(processing_event)
            except Exception:
                self._chain_head = None
                with suppress(Exception):
                    self.settle()
                raise
            self._chain_head = head
            if recordings:
                self.last_position = recordings[-1].notification.id
            return recordings

    def settle(self) -> None:
        """After a store that failed, read the newest event's hash and position again, and let
        the read models take in whatever that store recorded all the same; else do nothing."""
        with self._storing:
            if self._chain_head is not None:
                return
            self._chain_head = self._last_hash()
            head = self.head()
            if head > self.last_position:
                self.last_position = head
                self._notify([])

    def _last_hash(self) -> str:
        """The newest event's hash; the recording clock is set past that event's time.
        UnreadableEvent if that event cannot be read or holds no hash."""
        head = self.head()
        if not head:
            return GENESIS
        _, event = self.events_after(head - 1, 1)[0]
        recording_clock.not_before(event.timestamp)
        hashed = getattr(event, "metadata", {}).get("hash")
        if not isinstance(hashed, str):
            raise UnreadableEvent(head, ValueError("its metadata holds no hash"))
        return hashed

    def on_recorded(self, listener: Callable[[], None]) -> None:
        """Call `listener` after every save, while saves are held back."""
        self._listeners.append(listener)

    def before_close(self, callback: Callable[[], None]) -> None:
        """Call `callback` when the application closes, before its store does."""
        self._before_close.append(callback)

    def after_close(self, callback: Callable[[], None]) -> None:
        """Call `callback` once the application and its store have closed."""
        self._after_close.append(callback)

    def close(self) -> None:
        """Refuse new writes, wait up to WRITES_DRAIN_SECONDS for those begun to be stored,
        then close the store."""
        self._drain_writes()
        try:
            for callback in self._before_close:
                callback()
            super().close()
        finally:
            for callback in self._after_close:
                callback()

    def refuse_writes_until_restart(self) -> None:
        """Refuse every new write, as the service stops: each is answered 503 with a
        `Retry-After` of RESTART_SECONDS."""
        self.refuse_writes("the service is stopping", "closing")

    def _drain_writes(self) -> None:
        with self._writes_settled:
            self.refuse_writes_until_restart()
            drained = self._writes_settled.wait_for(
                lambda: self._writes_open == 0, timeout=WRITES_DRAIN_SECONDS
            )
            if not drained:
                logger.warning(
                    "closing with %d writes still open after %.0f s",
                    self._writes_open,
                    WRITES_DRAIN_SECONDS,
                )

    def _notify(self, recordings: list[Recording[UUID]]) -> None:
        for listener in self._listeners:
            try:
                listener()
            except Exception:
                logger.exception("a listener failed after a write; the write stands")
        with self._recorded:
            self._recorded.notify_all()

    @property
    def events_table(self) -> str:
        """The table the store keeps its events in."""
        table: str = self.recorder.events_table_name  # type: ignore[attr-defined]
        return table

    def head(self) -> int:
        """The highest feed position recorded so far (0 when empty)."""
        return self.recorder.max_notification_id() or 0

    def head_and_time(self) -> tuple[int, datetime]:
        """The head with a time such that anything recorded later carries a later time."""
        with self._writing:
            self._store_through()
            return self.head(), recording_clock.now()

    def wait_for_events(self, after: int, timeout: float) -> None:
        """Block until this process records an event past `after`, or `timeout` seconds pass.

        The wait reads no database while it holds the lock that every write's notice takes.
        """
        with self._recorded:
            self._recorded.wait_for(
                lambda: self.last_position > after or self._waits_ended, timeout=timeout
            )

    def end_waits(self) -> None:
        """End every wait for events, now and from now on: the service is stopping."""
        with self._recorded:
            self._waits_ended = True
            self._recorded.notify_all()

    def events_after(
        self, after: int, limit: int, until: int | None = None, topics: Sequence[str] = ()
    ) -> list[tuple[int, DomainEventProtocol[UUID]]]:
        """Up to `limit` (position, event) pairs with `after` < position <= `until`; only of
        the event classes named in `topics`, if any are."""
        return list(self.decoded_after(after, limit, until, topics))

    def decoded_after(
        self, after: int, limit: int, until: int | None = None, topics: Sequence[str] = ()
    ) -> Iterator[tuple[int, DomainEventProtocol[UUID]]]:
        """As `events_after`, each event decoded only when it is reached, so that one that
        cannot be read stops the iteration there."""
        notifications = self.recorder.select_notifications(
            start=after, limit=limit, stop=until, topics=topics, inclusive_of_start=False
        )
        for notification in notifications:
            yield notification.id, self._decoded(notification)

    def _decoded(self, notification: Notification) -> DomainEventProtocol[UUID]:
        try:
            event = self.mapper.to_domain_event(notification)
        except Exception as error:
            raise UnreadableEvent(notification.id, error) from error
        if event.timestamp.utcoffset() is None:
            raise UnreadableEvent(notification.id, ValueError("its time has no UTC offset"))
        return event
