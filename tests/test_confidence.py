from __future__ import annotations

import bisect
import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from itertools import pairwise

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.claims.confidence import (
    LIKELIHOOD_BANDS,
    LOGODDS_PER_UNIT,
    MODEL_VERSION,
    REASON_REPEAT,
    RELIABILITY_UNITS,
    WEIGHTY_UNITS,
    Assessment,
    Item,
    Tally,
    assess,
    likelihood,
    origin_steps,
    origin_tally,
    probability_of,
    verdict_at,
    weight_units,
)
from shared.sources_feed import RELIABILITIES, STANCES, STRENGTHS, Reliability, Stance, Strength

BASE = datetime(2024, 1, 1, tzinfo=UTC)
SOURCES = ("s1", "s2", "s3", "s4")
COUNTED_STANCES: tuple[Stance, ...] = ("supports", "refutes")
PROPERTY = settings(max_examples=200, deadline=None)


def jan(day: int, hour: int = 12) -> datetime:
    return datetime(2024, 1, day, hour, tzinfo=UTC)


def day(offset: int) -> datetime:
    return BASE + timedelta(days=offset)


def make(
    id: str,
    source_id: str,
    stance: Stance = "supports",
    strength: Strength = "moderate",
    published_at: datetime = BASE,
    derived_from: Iterable[str] = (),
    retracted_from: datetime | None = None,
) -> Item:
    return Item(
        id=id,
        source_id=source_id,
        stance=stance,
        strength=strength,
        published_at=published_at,
        derived_from=frozenset(derived_from),
        retracted_from=retracted_from,
    )


def outcome(
    items: Iterable[Item], ratings: Mapping[str, Reliability], at: datetime
) -> tuple[Tally, Assessment]:
    verdict = verdict_at(items, ratings, at)
    return verdict.tally, verdict.assessment


def value_at(steps: list[tuple[datetime, int]], at: datetime) -> int:
    position = bisect.bisect_right([point for point, _ in steps], at)
    return steps[position - 1][1] if position else 0


def alive_max(items: Iterable[Item], units_of: Callable[[Item], int], at: datetime) -> int:
    return max(
        (
            units_of(item)
            for item in items
            if item.published_at <= at and (item.retracted_from is None or at < item.retracted_from)
        ),
        default=0,
    )


# Kharkiv calibration

KHARKIV_RATINGS: dict[str, Reliability] = {
    "prosecutor": "C",
    "nsc": "B",
    "wire": "A",
    "a1": "A",
    "a2": "A",
    "a3": "A",
    "a4": "A",
    "a5": "A",
    "defence-ministry": "C",
}
PROSECUTOR = make("prosecutor-1", "prosecutor", "supports", "moderate", jan(5))
NSC = make("nsc-1", "nsc", "supports", "strong", jan(6))
AFTER = jan(20)


def test_prosecutor_alone_is_likely_and_suspected() -> None:
    verdict = verdict_at([PROSECUTOR], KHARKIV_RATINGS, AFTER)
    assert verdict.tally == Tally(units=14, supporting=1, weighty_supporting=1)
    assert verdict.assessment == Assessment(
        probability=0.6201, likelihood="likely", status="suspected", model=MODEL_VERSION
    )


def test_prosecutor_and_nsc_confirm() -> None:
    verdict = verdict_at([PROSECUTOR, NSC], KHARKIV_RATINGS, AFTER)
    assert verdict.tally == Tally(units=41, supporting=2, weighty_supporting=2)
    assert verdict.assessment.probability == 0.8077
    assert verdict.assessment.likelihood == "very likely"
    assert verdict.assessment.status == "confirmed"


def test_nsc_not_yet_published_leaves_prosecutor_alone() -> None:
    verdict = verdict_at([PROSECUTOR, NSC], KHARKIV_RATINGS, jan(6, 11))
    assert verdict.tally.units == 14
    assert verdict.assessment.status == "suspected"
    reasons = {j.item.id: j.reason for j in verdict.judgements}
    assert reasons == {"prosecutor-1": None, "nsc-1": "not yet published"}


def test_strong_a_origins_stay_below_ceiling_and_keep_rising() -> None:
    probabilities = []
    for count in range(1, 5):
        items = [
            make(f"a{n}-1", f"a{n}", "supports", "strong", jan(5)) for n in range(1, count + 1)
        ]
        verdict = verdict_at(items, KHARKIV_RATINGS, AFTER)
        assert verdict.tally.units == 30 * count
        probabilities.append(verdict.assessment.probability)
    assert probabilities == sorted(set(probabilities))
    assert probabilities[2] == 0.9589
    assert probabilities[3] == 0.9852
    assert all(p < 0.99 for p in probabilities)


@pytest.mark.parametrize("strength", STRENGTHS)
def test_unjudgeable_source_never_outweighs_fairly_reliable(strength: Strength) -> None:
    assert weight_units("F", strength) <= weight_units("C", strength)
    unrated = make("x", "nobody-rated-this", "supports", strength, jan(5))
    rated_c = make("y", "prosecutor", "supports", strength, jan(5))
    assert verdict_at([unrated], {}, AFTER).tally.units == weight_units("F", strength)
    assert (
        verdict_at([unrated], {}, AFTER).tally.units
        <= verdict_at([rated_c], KHARKIV_RATINGS, AFTER).tally.units
    )


def test_unit_table() -> None:
    table = {r: [weight_units(r, s) for s in STRENGTHS] for r in RELIABILITIES}
    assert table == {
        "A": [10, 20, 30],
        "B": [9, 18, 27],
        "C": [7, 14, 21],
        "D": [5, 10, 15],
        "E": [3, 6, 9],
        "F": [5, 10, 15],
    }
    assert WEIGHTY_UNITS == 14
    assert math.isclose(WEIGHTY_UNITS * LOGODDS_PER_UNIT, 0.49)


def test_source_repeating_itself_is_one_origin() -> None:
    again = make("prosecutor-2", "prosecutor", "supports", "moderate", jan(6))
    verdict = verdict_at([again, PROSECUTOR], KHARKIV_RATINGS, AFTER)
    assert verdict.tally == Tally(units=14, supporting=1, weighty_supporting=1)
    assert [(j.item.id, j.counted, j.reason) for j in verdict.judgements] == [
        ("prosecutor-1", True, None),
        ("prosecutor-2", False, REASON_REPEAT),
    ]


def test_stronger_repeat_replaces_weaker_one() -> None:
    stronger = make("prosecutor-2", "prosecutor", "supports", "strong", jan(6))
    verdict = verdict_at([PROSECUTOR, stronger], KHARKIV_RATINGS, AFTER)
    assert verdict.tally.units == 21
    reasons = {j.item.id: j.reason for j in verdict.judgements}
    assert reasons == {"prosecutor-1": REASON_REPEAT, "prosecutor-2": None}


def test_same_source_on_both_sides_is_two_origins() -> None:
    denial = make("prosecutor-2", "prosecutor", "refutes", "weak", jan(6))
    verdict = verdict_at([PROSECUTOR, denial], KHARKIV_RATINGS, AFTER)
    assert verdict.tally == Tally(units=7, supporting=1, refuting=1, weighty_supporting=1)


def test_retelling_by_higher_rated_source_adds_nothing() -> None:
    retelling = make("wire-1", "wire", "supports", "strong", jan(6), derived_from={"prosecutor-1"})
    alone = verdict_at([PROSECUTOR], KHARKIV_RATINGS, AFTER)
    verdict = verdict_at([PROSECUTOR, retelling], KHARKIV_RATINGS, AFTER)
    assert (verdict.tally, verdict.assessment) == (alone.tally, alone.assessment)
    judgement = verdict.judgements[1]
    assert (judgement.item.id, judgement.units, judgement.counted, judgement.reason) == (
        "wire-1",
        30,
        False,
        "derived",
    )


def test_weighty_origins_on_both_sides_dispute_even_a_confirmation() -> None:
    support = [PROSECUTOR, NSC, make("a1-1", "a1", "supports", "strong", jan(7))]
    assert verdict_at(support, KHARKIV_RATINGS, AFTER).assessment.status == "confirmed"
    denial = make("mod-1", "defence-ministry", "refutes", "moderate", jan(8))
    verdict = verdict_at([*support, denial], KHARKIV_RATINGS, AFTER)
    assert verdict.tally.units == 14 + 27 + 30 - 14
    assert verdict.assessment.probability >= 0.80
    assert verdict.assessment.status == "disputed"


def test_light_refutation_does_not_dispute() -> None:
    support = [PROSECUTOR, NSC, make("a1-1", "a1", "supports", "strong", jan(7))]
    denial = make("mod-1", "defence-ministry", "refutes", "weak", jan(8))
    verdict = verdict_at([*support, denial], KHARKIV_RATINGS, AFTER)
    assert verdict.tally.weighty_refuting == 0
    assert verdict.assessment.status == "confirmed"


def test_two_refuting_origins_refute() -> None:
    items = [
        make("r1", "a1", "refutes", "strong", jan(5)),
        make("r2", "nsc", "refutes", "strong", jan(6)),
    ]
    verdict = verdict_at(items, KHARKIV_RATINGS, AFTER)
    assert verdict.tally == Tally(units=-57, refuting=2, weighty_refuting=2)
    assert verdict.assessment.probability == 0.1197
    assert verdict.assessment.likelihood == "very unlikely"
    assert verdict.assessment.status == "refuted"


def test_one_refuting_origin_is_doubtful() -> None:
    verdict = verdict_at([make("r1", "a1", "refutes", "strong", jan(5))], KHARKIV_RATINGS, AFTER)
    assert verdict.tally.units == -30
    assert verdict.assessment.probability == 0.2592
    assert verdict.assessment.status == "doubtful"


def test_two_light_refuting_origins_are_only_doubtful() -> None:
    items = [
        make("r1", "e1", "refutes", "weak", jan(5)),
        make("r2", "e2", "refutes", "weak", jan(6)),
    ]
    verdict = verdict_at(items, {"e1": "E", "e2": "E"}, AFTER)
    assert verdict.tally.units == -6
    assert verdict.assessment.status == "doubtful"


def test_exact_balance_is_disputed() -> None:
    items = [
        make("s", "d1", "supports", "moderate", jan(5)),
        make("r", "d2", "refutes", "moderate", jan(6)),
    ]
    verdict = verdict_at(items, {"d1": "D", "d2": "D"}, AFTER)
    assert verdict.tally == Tally(units=0, supporting=1, refuting=1)
    assert verdict.assessment == Assessment(0.5, "roughly even chance", "disputed")


@pytest.mark.parametrize(
    ("tally", "expected"),
    [
        (Tally(), "unverified"),
        (Tally(units=100, supporting=1, weighty_supporting=1), "suspected"),
        (Tally(units=100, supporting=2, weighty_supporting=2), "confirmed"),
        (Tally(units=39, supporting=2, weighty_supporting=2), "suspected"),
        (Tally(units=40, supporting=2, weighty_supporting=2), "confirmed"),
        (Tally(units=-39, refuting=2, weighty_refuting=2), "doubtful"),
        (Tally(units=-40, refuting=2, weighty_refuting=2), "refuted"),
        (Tally(units=-100, refuting=1, weighty_refuting=1), "doubtful"),
        (Tally(units=90, supporting=3, refuting=1, weighty_supporting=3), "confirmed"),
        (
            Tally(units=76, supporting=3, refuting=1, weighty_supporting=3, weighty_refuting=1),
            "disputed",
        ),
    ],
)
def test_status_precedence(tally: Tally, expected: str) -> None:
    assert assess(tally).status == expected


def test_nothing_counted_is_unverified() -> None:
    items = [
        make("n", "s1", "neutral", "strong", jan(5)),
        make("d", "s2", "supports", "strong", jan(5), derived_from={"elsewhere"}),
        make("f", "s3", "supports", "strong", jan(25)),
        make("r", "s4", "refutes", "strong", jan(5), retracted_from=jan(10)),
    ]
    verdict = verdict_at(items, {}, AFTER)
    assert verdict.tally == Tally()
    assert verdict.assessment == Assessment(0.5, "roughly even chance", "unverified")
    assert [j.reason for j in verdict.judgements] == [
        "derived",
        "neutral",
        "retracted",
        "not yet published",
    ]
    assert [j.units for j in verdict.judgements] == [15, 0, 15, 15]


def test_reason_precedence() -> None:
    at = jan(10)
    cases = [
        (
            make("a", "s1", "neutral", published_at=jan(11), retracted_from=jan(1)),
            "not yet published",
        ),
        (make("b", "s1", "neutral", published_at=jan(5), retracted_from=jan(9)), "retracted"),
        (make("c", "s1", "neutral", published_at=jan(5), derived_from={"x"}), "neutral"),
        (
            make("d", "s1", published_at=jan(5), derived_from={"x"}, retracted_from=jan(11)),
            "derived",
        ),
    ]
    for item, reason in cases:
        assert verdict_at([item], {}, at).judgements[0].reason == reason


def test_publication_and_retraction_edges_are_inclusive() -> None:
    item = make("p", "prosecutor", published_at=jan(5), retracted_from=jan(8))
    just_before = jan(5) - timedelta(microseconds=1)
    assert verdict_at([item], KHARKIV_RATINGS, just_before).judgements[0].counted is False
    assert verdict_at([item], KHARKIV_RATINGS, jan(5)).judgements[0].counted is True
    assert verdict_at([item], KHARKIV_RATINGS, jan(8) - timedelta(microseconds=1)).tally.units == 14
    assert verdict_at([item], KHARKIV_RATINGS, jan(8)).judgements[0].reason == "retracted"


def test_judgements_cover_every_item_sorted_by_time_then_id() -> None:
    items = [
        make("b", "s1", published_at=jan(6)),
        make("c", "s2", published_at=jan(5)),
        make("a", "s3", published_at=jan(6)),
        make("z", "s4", "neutral", published_at=jan(30)),
    ]
    verdict = verdict_at(items, {}, AFTER)
    assert [j.item.id for j in verdict.judgements] == ["c", "a", "b", "z"]


@pytest.mark.parametrize(
    ("probability", "phrase"),
    [
        (0.01, "almost no chance"),
        (0.0499, "almost no chance"),
        (0.05, "very unlikely"),
        (0.1999, "very unlikely"),
        (0.20, "unlikely"),
        (0.4499, "unlikely"),
        (0.45, "roughly even chance"),
        (0.5, "roughly even chance"),
        (0.5499, "roughly even chance"),
        (0.55, "likely"),
        (0.7999, "likely"),
        (0.80, "very likely"),
        (0.9499, "very likely"),
        (0.95, "almost certain"),
        (0.99, "almost certain"),
    ],
)
def test_icd_203_bands(probability: float, phrase: str) -> None:
    assert likelihood(probability) == phrase


@pytest.mark.parametrize("probability", [0.0, 0.0099, 0.9901, 1.0, math.nan])
def test_likelihood_outside_model_range_is_rejected(probability: float) -> None:
    with pytest.raises(ValueError, match="outside"):
        likelihood(probability)


def test_band_table_is_contiguous() -> None:
    assert LIKELIHOOD_BANDS[0][0] == 0.01
    assert LIKELIHOOD_BANDS[-1][1] == 0.99
    for (_, high, _), (low, _, _) in pairwise(LIKELIHOOD_BANDS):
        assert high == low


def test_clamp_at_the_top() -> None:
    items = [make(f"a{n}-1", f"a{n}", "supports", "strong", jan(5)) for n in range(1, 6)]
    verdict = verdict_at(items, KHARKIV_RATINGS, AFTER)
    assert verdict.tally.units == 150
    assert verdict.assessment.probability == 0.99
    assert verdict.assessment.likelihood == "almost certain"
    assert probability_of(131) == 0.9899
    assert probability_of(132) == 0.99
    assert probability_of(10**6) == 0.99


def test_clamp_at_the_bottom() -> None:
    items = [make(f"a{n}-1", f"a{n}", "refutes", "strong", jan(5)) for n in range(1, 6)]
    verdict = verdict_at(items, KHARKIV_RATINGS, AFTER)
    assert verdict.tally.units == -150
    assert verdict.assessment.probability == 0.01
    assert verdict.assessment.likelihood == "almost no chance"
    assert verdict.assessment.status == "refuted"
    assert probability_of(-131) == 0.0101
    assert probability_of(-132) == 0.01
    assert probability_of(-(10**6)) == 0.01


@PROPERTY
@given(st.integers(min_value=-400, max_value=400))
def test_probability_is_clamped_and_monotonic(units: int) -> None:
    p = probability_of(units)
    assert 0.01 <= p <= 0.99
    assert probability_of(units + 1) >= p
    assert likelihood(p) in {phrase for _, _, phrase in LIKELIHOOD_BANDS}


def test_tally_arithmetic() -> None:
    a = Tally(14, 1, 0, 1, 0)
    b = Tally(-30, 0, 1, 0, 1)
    assert (a + b).as_tuple() == (-16, 1, 1, 1, 1)
    assert (a + b - b) == a
    assert (Tally() - a).as_tuple() == (-14, -1, 0, -1, 0)


def test_origin_tally() -> None:
    assert origin_tally("supports", 0) == Tally()
    assert origin_tally("refutes", 0) == Tally()
    assert origin_tally("supports", 14) == Tally(14, 1, 0, 1, 0)
    assert origin_tally("supports", 10) == Tally(10, 1, 0, 0, 0)
    assert origin_tally("refutes", 27) == Tally(-27, 0, 1, 0, 1)
    with pytest.raises(ValueError, match="never counted"):
        origin_tally("neutral", 14)
    with pytest.raises(ValueError, match="negative"):
        origin_tally("supports", -1)


def test_origin_steps_example() -> None:
    items = [
        make("x1", "s1", published_at=day(1), retracted_from=day(7)),
        make("x2", "s1", strength="strong", published_at=day(3), retracted_from=day(5)),
        make("x3", "s1", published_at=day(4)),
    ]
    units = {"x1": 14, "x2": 21, "x3": 14}
    assert origin_steps(items, lambda item: units[item.id]) == [
        (day(1), 14),
        (day(3), 21),
        (day(5), 14),
    ]
    assert origin_steps(items[:2], lambda item: units[item.id]) == [
        (day(1), 14),
        (day(3), 21),
        (day(5), 14),
        (day(7), 0),
    ]


def test_origin_steps_of_item_retracted_before_publication_is_empty() -> None:
    item = make("x", "s1", published_at=day(3), retracted_from=day(2))
    assert origin_steps([item], lambda _: 14) == []
    assert origin_steps([], lambda _: 14) == []


def test_origin_steps_rejects_mixed_or_uncountable_items() -> None:
    with pytest.raises(ValueError, match="one origin"):
        origin_steps([make("a", "s1"), make("b", "s2")], lambda _: 1)
    with pytest.raises(ValueError, match="one origin"):
        origin_steps([make("a", "s1"), make("b", "s1", "refutes")], lambda _: 1)
    with pytest.raises(ValueError, match="no origin weight"):
        origin_steps([make("a", "s1", "neutral")], lambda _: 1)
    with pytest.raises(ValueError, match="no origin weight"):
        origin_steps([make("a", "s1", derived_from={"b"})], lambda _: 1)


def test_invalid_inputs_are_rejected() -> None:
    with pytest.raises(ValueError, match="published_at must be timezone-aware"):
        make("a", "s1", published_at=datetime(2024, 1, 5))
    with pytest.raises(ValueError, match="retracted_from must be timezone-aware"):
        make("a", "s1", retracted_from=datetime(2024, 1, 5))
    with pytest.raises(ValueError, match="unknown stance"):
        make("a", "s1", stance="maybe")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="unknown strength"):
        make("a", "s1", strength="huge")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="at must be timezone-aware"):
        verdict_at([make("a", "s1")], {}, datetime(2024, 1, 5))
    with pytest.raises(ValueError, match="unique"):
        verdict_at([make("a", "s1"), make("a", "s2")], {}, AFTER)
    with pytest.raises(ValueError, match="unknown reliability"):
        verdict_at([make("a", "s1")], {"s1": "G"}, AFTER)  # type: ignore[dict-item]


def test_assessment_carries_model_version() -> None:
    assert MODEL_VERSION == "logodds-admiralty/1"
    assert assess(Tally()).model == MODEL_VERSION
    assert set(RELIABILITY_UNITS) == set(RELIABILITIES)


# Properties

days = st.integers(min_value=0, max_value=9)
instants = st.integers(min_value=-24, max_value=14 * 24).map(
    lambda hours: BASE + timedelta(hours=hours)
)
ratings_st = st.dictionaries(st.sampled_from(SOURCES), st.sampled_from(RELIABILITIES))


@st.composite
def item_lists(draw: st.DrawFn, min_size: int = 0, max_size: int = 8) -> list[Item]:
    items: list[Item] = []
    for index in range(draw(st.integers(min_value=min_size, max_value=max_size))):
        derived_from: frozenset[str] = frozenset()
        if items and draw(st.integers(min_value=0, max_value=3)) == 0:
            derived_from = frozenset({draw(st.sampled_from(items)).id})
        retracted = draw(st.none() | st.integers(min_value=0, max_value=12).map(day))
        items.append(
            Item(
                id=f"i{index}",
                source_id=draw(st.sampled_from(SOURCES)),
                stance=draw(st.sampled_from(STANCES)),
                strength=draw(st.sampled_from(STRENGTHS)),
                published_at=day(draw(days)),
                derived_from=derived_from,
                retracted_from=retracted,
            )
        )
    return items


@PROPERTY
@given(st.data(), item_lists(), ratings_st, instants)
def test_order_independence(
    data: st.DataObject, items: list[Item], ratings: dict[str, Reliability], at: datetime
) -> None:
    shuffled = data.draw(st.permutations(items))
    expected = verdict_at(items, ratings, at)
    assert verdict_at(shuffled, ratings, at) == expected
    assert verdict_at(reversed(items), ratings, at) == expected


@PROPERTY
@given(
    item_lists(),
    ratings_st,
    instants,
    st.sampled_from((*SOURCES, "newcomer")),
    st.sampled_from(STRENGTHS),
    days,
    st.none() | days.map(day),
)
def test_adding_support_never_lowers_probability(
    items: list[Item],
    ratings: dict[str, Reliability],
    at: datetime,
    source: str,
    strength: Strength,
    published: int,
    retracted: datetime | None,
) -> None:
    before = verdict_at(items, ratings, at)
    extra = make("extra", source, "supports", strength, day(published), retracted_from=retracted)
    after = verdict_at([*items, extra], ratings, at)
    assert after.tally.units >= before.tally.units
    assert after.assessment.probability >= before.assessment.probability


@PROPERTY
@given(
    st.data(),
    item_lists(min_size=1),
    ratings_st,
    instants,
    st.sampled_from((*SOURCES, "retold")),
    st.sampled_from(RELIABILITIES),
    st.sampled_from(STANCES),
    st.sampled_from(STRENGTHS),
    days,
)
def test_derived_copy_changes_nothing(
    data: st.DataObject,
    items: list[Item],
    ratings: dict[str, Reliability],
    at: datetime,
    source: str,
    rating: Reliability,
    stance: Stance,
    strength: Strength,
    published: int,
) -> None:
    original = data.draw(st.sampled_from(items))
    if source == "retold":
        ratings = {**ratings, source: rating}
    copy = make("copy", source, stance, strength, day(published), derived_from={original.id})
    assert outcome([*items, copy], ratings, at) == outcome(items, ratings, at)


@PROPERTY
@given(st.data(), item_lists(min_size=1), ratings_st, days)
def test_retraction_removes_item_from_its_valid_time_on(
    data: st.DataObject, items: list[Item], ratings: dict[str, Reliability], retract_day: int
) -> None:
    index = data.draw(st.integers(min_value=0, max_value=len(items) - 1))
    retraction = day(retract_day)
    others = items[:index] + items[index + 1 :]
    retracted = [*items[:index], replace(items[index], retracted_from=retraction), *others[index:]]
    unretracted = [*items[:index], replace(items[index], retracted_from=None), *others[index:]]
    for hours in range(-24, 14 * 24, 6):
        at = BASE + timedelta(hours=hours)
        reference = others if at >= retraction else unretracted
        assert outcome(retracted, ratings, at) == outcome(reference, ratings, at)


@st.composite
def one_origin(draw: st.DrawFn) -> tuple[list[Item], dict[str, int]]:
    stance = draw(st.sampled_from(COUNTED_STANCES))
    count = draw(st.integers(min_value=0, max_value=6))
    items = [
        make(
            f"o{index}",
            "s1",
            stance,
            draw(st.sampled_from(STRENGTHS)),
            day(draw(days)),
            retracted_from=draw(st.none() | st.integers(min_value=0, max_value=12).map(day)),
        )
        for index in range(count)
    ]
    units = {item.id: draw(st.integers(min_value=1, max_value=30)) for item in items}
    return items, units


@PROPERTY
@given(one_origin())
def test_origin_steps_match_brute_force(origin: tuple[list[Item], dict[str, int]]) -> None:
    items, units = origin

    def units_of(item: Item) -> int:
        return units[item.id]

    steps = origin_steps(items, units_of)
    times = [point for point, _ in steps]
    assert times == sorted(set(times))
    values = [0, *(value for _, value in steps)]
    assert all(a != b for a, b in pairwise(values))

    checkpoints = {BASE - timedelta(days=1), BASE + timedelta(days=20)}
    for item in items:
        checkpoints.add(item.published_at)
        if item.retracted_from is not None:
            checkpoints.add(item.retracted_from)
    edges = sorted(checkpoints)
    for earlier, later in pairwise(edges):
        checkpoints.add(earlier + (later - earlier) / 2)
        checkpoints.add(later - timedelta(microseconds=1))
    for at in checkpoints:
        assert value_at(steps, at) == alive_max(items, units_of, at)


@PROPERTY
@given(item_lists(max_size=10), ratings_st, instants)
def test_tally_decomposes_into_origin_steps(
    items: list[Item], ratings: dict[str, Reliability], at: datetime
) -> None:
    def units_of(item: Item) -> int:
        return weight_units(ratings.get(item.source_id, "F"), item.strength)

    origins: dict[tuple[str, Stance], list[Item]] = {}
    for item in items:
        if item.stance != "neutral" and not item.derived_from:
            origins.setdefault((item.source_id, item.stance), []).append(item)
    total = Tally()
    for (_, stance), group in origins.items():
        total += origin_tally(stance, value_at(origin_steps(group, units_of), at))
    assert total == verdict_at(items, ratings, at).tally
