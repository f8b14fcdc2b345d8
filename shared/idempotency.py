"""Idempotency keys: a POST retried with the same key records nothing new.

The key travels in the recorded event's metadata, and the projection keeps a row per
(actor, key) under a unique primary key, in the same transaction as its feed position. So the
record is as durable as the event itself, and a rebuild derives it again from the events.
"""

import hashlib
import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from datetime import datetime
from typing import Annotated
from uuid import UUID

from anyio import CapacityLimiter, to_thread
from eventsourcing.domain import DomainEventProtocol
from fastapi import Header, Request
from pydantic import AfterValidator, BaseModel, WithJsonSchema
from sqlalchemy import Connection, Engine, text
from sqlmodel import Field, Session, SQLModel

from shared.columns import WIDE_INTEGER, UtcDateTime
from shared.errors import Rejected
from shared.eventstore import FactcheckApplication, Recorded
from shared.schemas import header_text, request_metadata
from shared.stored import StoredEvents

HEADER = "Idempotency-Key"


class IdempotencyRecord(SQLModel, table=True):
    """The write an idempotency key first caused."""

    __tablename__ = "idempotency_record"

    actor: str = Field(primary_key=True)
    key: str = Field(primary_key=True)
    request_hash: str
    stream_id: UUID
    version: int
    position: int = Field(sa_type=WIDE_INTEGER)
    recorded_at: datetime = Field(sa_type=UtcDateTime)


def fingerprint(method: str, path: str, body: BaseModel | None) -> str:
    """What makes two requests the same: method, canonical path and the validated body; in a
    body whose `unset_differs_from_null` is true, a field left out differs from a null."""
    sparse = getattr(body, "unset_differs_from_null", False)
    content = body.model_dump_json(exclude_unset=sparse) if body is not None else ""
    return hashlib.sha256(f"{method} {path}\n{content}".encode()).hexdigest()


def canonical_path(request: Request) -> str:
    """The request's path with every id in the path spelt one way, as the route reads it."""
    route = request.scope.get("route")
    path_format = getattr(route, "path_format", None)
    if path_format is None:
        return request.url.path
    return path_format.format(
        **{name: _canonical_id(value) for name, value in request.path_params.items()}
    )


def _canonical_id(value: str) -> str:
    try:
        return str(UUID(value))
    except ValueError:
        return value


class KeyLocks:
    """One lock per caller's idempotency key, kept while a request holds or waits for it.

    Looking a key up and recording its write are one step for requests with the same key,
    while writes with other keys, or with none, go on: a write's own checks may wait on
    another service, and must not hold every other write and read of the feed meanwhile.
    """

    def __init__(self) -> None:
        self._guard = threading.Lock()
        self._locks: dict[tuple[str, str], tuple[threading.Lock, list[int]]] = {}
        """Each key's lock, with how many requests hold or wait for it."""

    @contextmanager
    def of(self, actor: str, key: str) -> Iterator[None]:
        with self._guard:
            lock, users = self._locks.setdefault((actor, key), (threading.Lock(), [0]))
            users[0] += 1
        try:
            with lock:
                yield
        finally:
            with self._guard:
                users[0] -= 1
                if not users[0]:
                    del self._locks[(actor, key)]


class Once:
    """Runs a write command at most once per idempotency key of the caller.

    The key is looked up under the write lock, once the read models hold every answered write
    and any write stored unanswered, so never in tables a rebuild is replacing; the command
    then runs under its key's lock alone.
    """

    def __init__(
        self,
        application: FactcheckApplication,
        engine: Engine,
        key_locks: KeyLocks,
        key: str | None,
        request: Request,
        hold_answered_writes: Callable[[], None],
        threads: CapacityLimiter,
    ) -> None:
        self.application = application
        self.threads = threads
        self.engine = engine
        self.hold_answered_writes = hold_answered_writes
        self.key_locks = key_locks
        self.key = key
        self.request = request

    @property
    def actor(self) -> str:
        return request_metadata(self.request)["actor"]

    async def __call__(
        self, body: BaseModel | None, command: Callable[[Mapping[str, str]], Recorded]
    ) -> Recorded:
        """Run the write in one of the app's write threads: it waits for its key's lock and the
        database.

        The route itself stays on the event loop, and so does checking its answer.
        """
        return await to_thread.run_sync(self._once, body, command, limiter=self.threads)

    def _once(
        self, body: BaseModel | None, command: Callable[[Mapping[str, str]], Recorded]
    ) -> Recorded:
        metadata = dict(request_metadata(self.request))
        if self.key is None:
            return command(metadata)
        request_hash = fingerprint(self.request.method, canonical_path(self.request), body)
        with self.key_locks.of(metadata["actor"], self.key):
            with self.application.writing():
                self.application.settle()
                self.hold_answered_writes()
                with Session(self.engine) as session:
                    found = session.get(IdempotencyRecord, (metadata["actor"], self.key))
            if found is not None:
                if found.request_hash != request_hash:
                    raise Rejected(HEADER, "was already used for a different request")
                return Recorded(found.stream_id, found.version, found.position, found.recorded_at)
            metadata.update(idempotency_key=self.key, request_hash=request_hash)
            return command(metadata)


def record_of(position: int, event: DomainEventProtocol[UUID]) -> IdempotencyRecord | None:
    """The idempotency row for an event whose metadata carries a key, else None."""
    metadata: Mapping[str, object] = getattr(event, "metadata", {})
    if "idempotency_key" not in metadata:
        return None
    return IdempotencyRecord(
        actor=str(metadata.get("actor", "anonymous")),
        key=str(metadata["idempotency_key"]),
        request_hash=str(metadata["request_hash"]),
        stream_id=event.originator_id,
        version=event.originator_version,
        position=position,
        recorded_at=event.timestamp,
    )


def fill_records(connection: Connection, stored: StoredEvents, head: int) -> None:
    """Insert the row `record_of` gives for each event up to `head`, inside the database;
    where a key was used again, the first use's."""
    key = stored.text("metadata", "idempotency_key")
    actor = f"coalesce({stored.text('metadata', 'actor')}, 'anonymous')"
    columns = "actor, key, request_hash, stream_id, version, position, recorded_at"
    connection.execute(
        text(
            f"INSERT INTO {IdempotencyRecord.__tablename__} ({columns}) SELECT {columns} FROM ("
            f"SELECT {actor} AS actor, {key} AS key, "
            f"{stored.text('metadata', 'request_hash')} AS request_hash, "
            f"stream_id, version, position, {stored.instant('timestamp')} AS recorded_at, "
            f"row_number() OVER (PARTITION BY {actor}, {key} ORDER BY position) AS nth "
            f"FROM {stored.rows(containing=True)} WHERE {key} IS NOT NULL) AS keyed "
            "WHERE nth = 1"
        ),
        {"head": head, "containing": '"idempotency_key"'},
    )


KEY_MAX_BYTES = 200


def _key(header: str | None) -> str | None:
    """The key as sent: 1 to KEY_MAX_BYTES bytes (HTTP hands them over one character each),
    then read as printable UTF-8."""
    if header is None:
        return None
    if not 1 <= len(header) <= KEY_MAX_BYTES:
        raise ValueError(f"must be 1 to {KEY_MAX_BYTES} bytes long, not {len(header)}")
    return header_text(header)


IdempotencyKey = Annotated[
    str | None,
    AfterValidator(_key),
    Header(
        alias=HEADER,
        description="Retry-safe writes: the same key with the same body records once. "
        f"1 to {KEY_MAX_BYTES} bytes of printable UTF-8.",
    ),
    WithJsonSchema({"type": "string", "minLength": 1, "maxLength": KEY_MAX_BYTES}),
]


async def once_per_key(request: Request, idempotency_key: IdempotencyKey = None) -> Once:
    """The request's write, to be run once per idempotency key."""
    state = request.app.state
    return Once(
        state.application,
        state.projection.engine,
        state.key_locks,
        idempotency_key,
        request,
        state.projection.hold_answered_writes,
        state.write_threads,
    )
