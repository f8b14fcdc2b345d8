"""The verdict projection answers exactly what a from-scratch replay answers, for any times;
refilled, it ends with every index it declares."""

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine, event, inspect, text
from sqlmodel import Session

from services.claims.confidence import Verdict
from services.claims.projections import (
    RETIRED_INDEXES,
    VERDICT_TABLES,
    FeedTracking,
    TallyPoint,
    VerdictProjection,
)
from services.claims.replay import replay_verdict
from services.claims.verdicts import (
    KEPT_ENTRIES,
    VerdictIndex,
    evidence_as_known,
    evidence_page,
    judge,
    timeline,
    verdict,
)
from shared.chain import GENESIS, event_hash
from shared.feed import FeedItem, FeedPage, event_id
from shared.storage import parse_storage_url
from shared.timeaxes import ONE_MICROSECOND, format_instant, to_micros

SOURCES = [str(uuid.UUID(int=index + 1)) for index in range(3)]
CLAIMS = [str(uuid.UUID(int=100 + index)) for index in range(2)]
DAY0 = datetime(2024, 1, 1, tzinfo=UTC)
RECORDED0 = datetime(2024, 2, 1, tzinfo=UTC)


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    storage = parse_storage_url("TEST_DATABASE_URL", database_url)
    storage.prepare()
    engine = storage.create_engine()
    yield engine
    engine.dispose()


def day(offset: int) -> str:
    return format_instant(DAY0 + timedelta(hours=12 * offset))


@st.composite
def histories(draw: st.DrawFn) -> list[dict[str, Any]]:
    """A random, valid sources feed: ratings, evidence, retractions and corrections."""
    items: list[dict[str, Any]] = []
    evidence: dict[str, dict[str, Any]] = {}
    position = 0
    for step in range(draw(st.integers(min_value=1, max_value=25))):
        position += draw(st.integers(min_value=1, max_value=3))
        kinds = ["rate", "submit", "submit"] + (["retract", "correct"] if evidence else [])
        kind = draw(st.sampled_from(kinds))
        if kind == "rate":
            stream = draw(st.sampled_from(SOURCES))
            data: dict[str, Any] = {"reliability": draw(st.sampled_from("ABCDEF"))}
            item_type = "SourceRated"
        elif kind == "submit":
            stream = str(uuid.UUID(int=1000 + step))
            parents = draw(st.lists(st.sampled_from(sorted(evidence) or ["-"]), max_size=1))
            data = {
                "source_id": draw(st.sampled_from(SOURCES)),
                "claim_id": draw(st.sampled_from(CLAIMS)),
                "stance": draw(st.sampled_from(["supports", "supports", "refutes", "neutral"])),
                "strength": draw(st.sampled_from(["weak", "moderate", "strong"])),
                "published_at": day(draw(st.integers(min_value=0, max_value=12))),
                "derived_from": [parent for parent in parents if parent != "-"],
            }
            evidence[stream] = {"published": data["published_at"], "retracted": None}
            item_type = "EvidenceSubmitted"
        elif kind == "retract":
            open_items = sorted(key for key, value in evidence.items() if not value["retracted"])
            if not open_items:
                continue
            stream = draw(st.sampled_from(open_items))
            published = evidence[stream]["published"]
            offset = draw(st.integers(min_value=0, max_value=12))
            retracted = max(published, day(offset))
            evidence[stream]["retracted"] = retracted
            data = {"published_at": retracted, "reason": "withdrawn"}
            item_type = "EvidenceRetracted"
        else:
            stream = draw(st.sampled_from(sorted(evidence)))
            retracted = evidence[stream]["retracted"]
            fields = ["strength", "stance", "published_at", "claim_id", "source_id"]
            field = draw(st.sampled_from(fields + (["retracted_from"] * 5 if retracted else [])))
            value: Any = {
                "strength": st.sampled_from(["weak", "moderate", "strong"]),
                "stance": st.sampled_from(["supports", "refutes", "neutral"]),
                "published_at": st.integers(min_value=0, max_value=12).map(day),
                "claim_id": st.sampled_from(CLAIMS),
                "source_id": st.sampled_from(SOURCES),
                "retracted_from": st.none() | st.integers(min_value=0, max_value=12).map(day),
            }[field]
            value = draw(value)
            if field == "published_at":
                if retracted and value > retracted:
                    continue
                evidence[stream]["published"] = value
            if field == "retracted_from":
                if value is not None and value < evidence[stream]["published"]:
                    continue
                evidence[stream]["retracted"] = value
            data = {"changes": {field: value}, "reason": "typo"}
            item_type = "EvidenceCorrected"
        items.append(
            {
                "position": position,
                "id": str(event_id(uuid.UUID(stream), 1)),
                "type": item_type,
                "version": 1,
                "stream_id": stream,
                "stream_version": 1,
                "recorded_at": format_instant(RECORDED0 + timedelta(hours=step)),
                "data": data,
                "metadata": {"actor": "test"},
            }
        )
    return chained(items)


def chained(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Give the items the hash chain a real feed carries."""
    previous = GENESIS
    for item in items:
        item["metadata"]["prev_hash"] = previous
        previous = event_hash(FeedItem.model_validate(item))
        item["metadata"]["hash"] = previous
    return items


def change_key(answer: Verdict) -> tuple[object, ...]:
    return answer.assessment, answer.tally.supporting, answer.tally.refuting


def apply_in_pages(
    projection: VerdictProjection, index: VerdictIndex, items: list[dict[str, Any]], size: int
) -> None:
    head = items[-1]["position"] if items else 0
    for start in range(0, len(items), size):
        chunk = items[start : start + size]
        page = FeedPage.model_validate(
            {
                "service": "sources",
                "items": chunk,
                "next_after": chunk[-1]["position"],
                "head": head,
                "head_known_at": format_instant(RECORDED0 + timedelta(days=30)),
            }
        )
        _, changes = projection.apply_page(page)
        index.extend(changes)


probe_times = st.tuples(st.integers(min_value=-1, max_value=26), st.integers(-1, 13))


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    items=histories(),
    page_size=st.integers(min_value=1, max_value=7),
    probes=st.lists(probe_times, min_size=1, max_size=6),
    warm=st.booleans(),
    kept_entries=st.sampled_from([KEPT_ENTRIES, 1]),
)
def test_projection_equals_replay(
    engine: Engine,
    items: list[dict[str, Any]],
    page_size: int,
    probes: list[tuple[int, int]],
    warm: bool,
    kept_entries: int,
) -> None:
    """Also with an index that holds one claim at a time, letting each go for the next."""
    projection = VerdictProjection(engine)
    projection.drop()
    index = VerdictIndex(engine, kept_entries)
    if warm:
        for claim in CLAIMS:
            index.tally(uuid.UUID(claim), 0, 0)
    apply_in_pages(projection, index, items, page_size)
    fresh = VerdictIndex(engine)

    for known_hours, at_halfdays in probes:
        known_at = RECORDED0 + timedelta(hours=known_hours, minutes=30)
        at = DAY0 + timedelta(hours=12 * at_halfdays, minutes=at_halfdays % 2)
        for claim in CLAIMS:
            expected = replay_verdict(items, claim, at, known_at)
            expected_counted = {j.item.id for j in expected.judgements if j.counted}
            for which in (index, fresh):
                answer = verdict(which, uuid.UUID(claim), at, known_at, len(items))
                assert answer.tally == expected.tally
                assert answer.assessment == expected.assessment
                assert answer.items == sum(
                    1 for j in expected.judgements if j.item.published_at <= at
                )
                assert {entry.evidence_id for entry in answer.counted} == expected_counted
                strongest = verdict(which, uuid.UUID(claim), at, known_at, 1).counted
                assert strongest == answer.counted[:1]
                assert verdict(which, uuid.UUID(claim), at, known_at, 0).counted == []
            with Session(engine) as session:
                known_items = evidence_as_known(session, uuid.UUID(claim), to_micros(known_at))
                for after in (0, *(row.position for row in known_items[:2])):
                    for limit in (1, 3):
                        paged, more = evidence_page(
                            session, uuid.UUID(claim), to_micros(known_at), after, limit
                        )
                        following = [row for row in known_items if row.position > after]
                        assert [row.row for row in paged] == [row.row for row in following[:limit]]
                        assert more == (len(following) > limit)
                judged = judge(index, uuid.UUID(claim), known_items, at, known_at)
                points = timeline(index, session, uuid.UUID(claim), known_at)
            expected_reasons = {j.item.id: j.reason for j in expected.judgements}
            assert {str(j.version.evidence_id): j.reason for j in judged} == expected_reasons
            for point in points:
                there = replay_verdict(items, claim, point.at, known_at)
                before = replay_verdict(items, claim, point.at - ONE_MICROSECOND, known_at)
                assert point.assessment == there.assessment
                assert change_key(before) != change_key(there), "every point changes something"
    if kept_entries == 1:
        alone = VerdictIndex(engine)
        alone.tally(uuid.UUID(CLAIMS[-1]), 0, 0)
        assert index.entries <= max(1, alone.entries), "over its limit, all but the last let go"
    else:
        assert index.entries == fresh.entries, "under its limit, every claim kept, as if loaded"


DECLARED_INDEXES = {str(index.name) for table in VERDICT_TABLES for index in table.indexes}


def verdict_indexes(engine: Engine) -> set[str]:
    """The indexes the database holds on the verdict read models."""
    inspector = inspect(engine)
    return {
        str(index["name"])
        for table in VERDICT_TABLES
        for index in inspector.get_indexes(table.name)
    }


def test_readers_indexes_are_left_out_while_refilling_and_restored(engine: Engine) -> None:
    verdicts = VerdictProjection(engine)
    verdicts.create_tables()
    assert len(DECLARED_INDEXES) == 9
    assert verdict_indexes(engine) == DECLARED_INDEXES
    assert verdicts.whole
    verdicts.drop()
    assert verdict_indexes(engine) == {"ix_evidence_current_origin", "ix_origin_current_source_id"}
    assert not verdicts.whole
    verdicts.create_tables()
    assert verdict_indexes(engine) == DECLARED_INDEXES
    assert verdicts.whole


def test_the_indexes_an_earlier_release_made_are_dropped_at_start(engine: Engine) -> None:
    VerdictProjection(engine).create_tables()
    with engine.begin() as connection:
        for name, column in zip(RETIRED_INDEXES, ("evidence_id", "claim_id"), strict=True):
            connection.execute(text(f"CREATE INDEX {name} ON evidence_version ({column})"))
    assert verdict_indexes(engine) == DECLARED_INDEXES | set(RETIRED_INDEXES)
    restarted = VerdictProjection(engine)
    restarted.reshape()
    restarted.create_tables()
    assert verdict_indexes(engine) == DECLARED_INDEXES


def test_a_drop_that_fails_part_way_leaves_every_table_as_it_was(engine: Engine) -> None:
    verdicts = VerdictProjection(engine)
    verdicts.create_tables()
    claim = uuid.uuid4()
    with Session(engine) as session:
        session.add(FeedTracking(name="sources", position=7))
        session.add(
            TallyPoint(
                row=1,
                claim_id=claim,
                known_from=1,
                at_from=1,
                units=0,
                supporting=0,
                refuting=0,
                weighty_supporting=0,
                weighty_refuting=0,
                items=1,
            )
        )
        session.commit()
    drops: list[str] = []

    def fail_at_the_fifth_drop(*args: Any) -> None:
        statement = str(args[2]).strip()
        if statement.startswith("DROP TABLE"):
            drops.append(statement)
            if len(drops) == 5:
                raise OSError("the disk failed during the drop")

    event.listen(engine, "before_cursor_execute", fail_at_the_fifth_drop)
    try:
        with pytest.raises(OSError, match="disk failed"):
            verdicts.drop()
    finally:
        event.remove(engine, "before_cursor_execute", fail_at_the_fifth_drop)
    assert len(drops) == 5
    assert not verdicts.whole
    assert set(inspect(engine).get_table_names()) >= {table.name for table in VERDICT_TABLES}
    with Session(engine) as session:
        assert session.get_one(FeedTracking, "sources").position == 7
        assert session.get_one(TallyPoint, 1).claim_id == claim
