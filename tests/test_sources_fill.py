"""Read models filled inside the database equal those that apply every event one by one."""

import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import Connection, inspect, text

from services.sources.application import SourcesApplication
from services.sources.domain import Source
from services.sources.projections import (
    CorrectionView,
    EvidenceView,
    RatingView,
    RetractionView,
    SourcesProjection,
    SourceView,
)
from shared.chain import UnreadableEvent
from shared.errors import Conflict, NotFound, Rejected
from shared.eventstore import Recorded
from shared.idempotency import IdempotencyRecord
from shared.projection import BATCH_SIZE
from shared.storage import parse_storage_url
from shared.stored import StoredEvents
from tests.conftest import KnownClaims, fresh_database

READ_MODELS: tuple[str, ...] = tuple(
    str(model.__tablename__)
    for model in (
        SourceView,
        RatingView,
        EvidenceView,
        CorrectionView,
        RetractionView,
        IdempotencyRecord,
    )
)
Seen = dict[str, list[uuid.UUID]]
"""Ids written so far: `sources`, `claims`, `evidence`, and each claim's evidence by its id."""
Command = Callable[[SourcesApplication, Seen], tuple[Recorded, tuple[str, ...]]]
"""A write, answering what it recorded and under which keys of `Seen` its new id goes."""


class OneByOne(SourcesProjection):
    """The sources projection with nothing filled inside the database."""

    def fill_in_database(self, connection: Connection, stored: StoredEvents, head: int) -> None:
        return None


class Counted(SourcesProjection):
    """The sources projection, keeping the head up to which it last began a fill."""

    filled: int = 0

    def fill_in_database(
        self, connection: Connection, stored: StoredEvents, head: int
    ) -> tuple[str, ...]:
        self.filled = head
        return tuple(super().fill_in_database(connection, stored, head))


texts = st.text(st.characters(codec="utf-8", exclude_characters="\x00"), max_size=12)
optional_texts = st.none() | texts
instants = st.builds(
    lambda days, micros, hours: (
        datetime(2020, 1, 1, tzinfo=UTC) + timedelta(days=days, microseconds=micros)
    ).astimezone(timezone(timedelta(hours=hours))),
    st.integers(min_value=0, max_value=1500),
    st.sampled_from([0, 1, 999_999]) | st.integers(min_value=0, max_value=86_399_999_999),
    st.integers(min_value=-12, max_value=14),
)
metadata = st.builds(
    lambda actor, key: (
        {"actor": actor}
        | ({} if key is None else {"idempotency_key": key, "request_hash": f"hash of {key}"})
    ),
    st.sampled_from(["anonymous", "desk", "wire"]),
    st.none() | st.sampled_from(["k1", "k2", "k3"]),
)


FIXED = ("sources", "claims", "evidence")
"""The keys of `Seen` that are not a claim's id."""


def pick(items: list[uuid.UUID], index: int) -> uuid.UUID:
    """One of `items`, chosen by `index`; a new id, which no write accepts, if there are none."""
    return items[index % len(items)] if items else uuid.uuid4()


@st.composite
def commands(draw: st.DrawFn) -> Command:
    """One write of the sources service, chosen by what exists when it runs."""
    kind = draw(st.sampled_from(["register", "rate", "submit", "submit", "retract", "correct"]))
    n = draw(st.integers(min_value=0, max_value=50))
    meta = draw(metadata)
    if kind == "register":
        name, url, notes = draw(texts), draw(optional_texts), draw(optional_texts)
        return lambda app, seen: (
            app.register_source(name, "outlet", url, None, notes, meta),
            ("sources",),
        )
    if kind == "rate":
        grade, rationale = draw(st.sampled_from("ABCDEF")), draw(texts)
        return lambda app, seen: (
            app.rate_source(pick(seen["sources"], n), grade, rationale, "desk", meta),
            (),
        )
    if kind == "submit":
        values = {
            "stance": draw(st.sampled_from(["supports", "refutes", "neutral"])),
            "strength": draw(st.sampled_from(["weak", "moderate", "strong"])),
            "published_at": draw(instants),
            "summary": draw(texts),
            "url": draw(optional_texts),
            "quote": draw(optional_texts),
        }
        parents = draw(st.lists(st.integers(min_value=0, max_value=50), min_size=2, max_size=3))

        def submit(app: SourcesApplication, seen: Seen) -> tuple[Recorded, tuple[str, ...]]:
            claim = pick(seen["claims"], n)
            about = seen.get(str(claim), [])
            derived = list(dict.fromkeys(pick(about, p) for p in parents)) if about else []
            recorded = app.submit_evidence(
                pick(seen["sources"], n), claim, derived_from=derived, metadata=meta, **values
            )
            return recorded, ("evidence", str(claim))

        return submit
    if kind == "retract":
        when, reason = draw(instants), draw(texts)
        return lambda app, seen: (
            app.retract_evidence(pick(seen["evidence"], n), when, reason, meta),
            (),
        )
    field = draw(
        st.sampled_from(
            ["stance", "strength", "summary", "published_at", "url", "derived_from"]
            + ["retracted_from"] * 2
        )
    )
    value = draw(
        {
            "stance": st.sampled_from(["supports", "refutes", "neutral"]),
            "strength": st.sampled_from(["weak", "moderate", "strong"]),
            "summary": texts,
            "published_at": instants,
            "url": optional_texts,
            "derived_from": st.lists(st.integers(min_value=0, max_value=50), max_size=3),
            "retracted_from": st.none() | instants,
        }[field]
    )

    def correct(app: SourcesApplication, seen: Seen) -> tuple[Recorded, tuple[str, ...]]:
        evidence = pick(seen["evidence"], n)
        change = value
        if field == "derived_from":
            about = [ids for key, ids in seen.items() if key not in FIXED and evidence in ids]
            siblings = about[0] if about else []
            change = list(dict.fromkeys(pick(siblings, p) for p in value))
        return app.correct_evidence(evidence, {field: change}, "re-read", meta), ()

    return correct


def run(application: SourcesApplication, seen: Seen, batch: list[Command]) -> None:
    """Run each write; one the service refuses records nothing and is passed over."""
    for write in batch:
        try:
            recorded, keys = write(application, seen)
        except (Rejected, Conflict, NotFound):
            continue
        for key in keys:
            seen.setdefault(key, []).append(recorded.id)


def read_models(projection: SourcesProjection) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every read model, as the database driver gives them: on SQLite, times and
    JSON as the text that queries compare."""
    with projection.engine.connect() as connection:
        return {
            name: sorted(
                (tuple(row) for row in connection.execute(text(f"SELECT * FROM {name}"))), key=repr
            )
            for name in READ_MODELS
        }


def indexes_of(projection: SourcesProjection) -> set[str]:
    """The indexes the database holds on the projection's read models."""
    inspector = inspect(projection.engine)
    return {
        str(index["name"])
        for table in projection.tables
        for index in inspector.get_indexes(table.name)
    }


DECLARED_INDEXES = {
    str(index.name) for table in SourcesProjection.tables for index in table.indexes
}


@contextmanager
def application_on(storage_kind: str, folder: Path) -> Iterator[SourcesApplication]:
    """A sources application on a new, empty store, knowing two claims."""
    with fresh_database(storage_kind, folder, f"fill_{uuid.uuid4().hex[:8]}") as url:
        storage = parse_storage_url("SOURCES_DATABASE_URL", url)
        storage.prepare()
        claims = KnownClaims()
        claims.add(), claims.add()
        application = SourcesApplication(storage, claims)
        try:
            yield application
        finally:
            application.close()


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    before=st.lists(commands(), min_size=5, max_size=25),
    after=st.lists(commands(), max_size=10),
)
def test_filled_read_models_equal_those_applied_one_by_one(
    storage_kind: str, tmp_path: Path, before: list[Command], after: list[Command]
) -> None:
    """Fill from the events recorded so far, apply the later ones one by one, and compare
    with read models rebuilt from every event one by one."""
    with application_on(storage_kind, tmp_path) as application:
        claims = application.claims
        assert isinstance(claims, KnownClaims)
        first = application.register_source("the first source", "outlet").id
        seen: Seen = {"sources": [first], "evidence": [], "claims": sorted(claims.ids)}
        run(application, seen, before)
        engine = application.storage.create_engine()
        try:
            filled = Counted(engine, application)
            filled.create_tables()
            head = application.head()
            assert filled.catch_up() == head
            assert filled.filled == head
            assert filled.fills_in_database, "the fill ran to its end, with no fallback"
            assert indexes_of(filled) == DECLARED_INDEXES
            run(application, seen, after)
            assert filled.catch_up() == application.head()
            expected = OneByOne(engine, application)
            got = read_models(filled)
            assert expected.rebuild() == application.head()
            assert got == read_models(expected)
        finally:
            engine.dispose()


def test_a_fill_that_fails_leaves_the_batches_before_an_unreadable_event_applied(
    storage_kind: str, tmp_path: Path
) -> None:
    """As applying one by one always has: each batch of events is applied whole or not at all,
    and those before the one holding an unreadable event are applied."""
    with application_on(storage_kind, tmp_path) as application:
        with application.recording() as write:
            write.add(*(Source(f"source {n}", "outlet", None, None, None) for n in range(600)))
        broken = BATCH_SIZE + 50
        with application.storage.create_engine().begin() as connection:
            position = "rowid" if storage_kind == "sqlite" else "notification_id"
            garbled = connection.execute(
                text(
                    f"UPDATE {application.events_table} SET state = :state "
                    f"WHERE {position} = :position"
                ),
                {"state": b'{"not json', "position": broken},
            )
            assert garbled.rowcount == 1
        engine = application.storage.create_engine()
        try:
            projection = Counted(engine, application)
            projection.create_tables()
            with pytest.raises(UnreadableEvent):
                projection.catch_up()
            assert projection.filled == application.head(), "the fill was tried first"
            assert indexes_of(projection) == DECLARED_INDEXES, "the failed fill put them back"
            assert projection.position() == BATCH_SIZE
            assert not projection.fills_in_database
            projection.filled = 0
            with pytest.raises(UnreadableEvent):
                projection.catch_up()
            assert projection.filled == 0, "a fill that failed is not tried at every catch-up"
        finally:
            engine.dispose()
