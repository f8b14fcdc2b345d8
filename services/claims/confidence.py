"""Confidence model for claims: Admiralty-weighted evidence summed in log-odds.

Every function here is pure. Weights are integer units, so a verdict is an exact,
order-independent sum that a projection can maintain incrementally. See docs/confidence.md.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime

from shared.sources_feed import (
    STANCES,
    STRENGTHS,
    Reliability,
    Stance,
    Strength,
)

MODEL_VERSION = "logodds-admiralty/1"

RELIABILITY_UNITS: Mapping[Reliability, int] = {
    "A": 10,
    "B": 9,
    "C": 7,
    "D": 5,
    "E": 3,
    "F": 5,
}
STRENGTH_UNITS: Mapping[Strength, int] = {"weak": 1, "moderate": 2, "strong": 3}
LOGODDS_PER_UNIT = 0.035
UNRATED: Reliability = "F"

PROBABILITY_FLOOR = 0.01
PROBABILITY_CEILING = 0.99
# Past this bound the clamp decides the probability anyway; bounding keeps exp() finite.
_LOGODDS_BOUND = 40.0
CONFIRMED_AT = 0.80
REFUTED_AT = 0.20

REASON_NOT_YET_PUBLISHED = "not yet published"
REASON_RETRACTED = "retracted"
REASON_NEUTRAL = "neutral"
REASON_DERIVED = "derived"
REASON_REPEAT = "repeat: the same source and stance count once"

LIKELIHOOD_BANDS: tuple[tuple[float, float, str], ...] = (
    (0.01, 0.05, "almost no chance"),
    (0.05, 0.20, "very unlikely"),
    (0.20, 0.45, "unlikely"),
    (0.45, 0.55, "roughly even chance"),
    (0.55, 0.80, "likely"),
    (0.80, 0.95, "very likely"),
    (0.95, 0.99, "almost certain"),
)


def weight_units(reliability: Reliability, strength: Strength) -> int:
    """Weight of one item in integer units: reliability factor times strength factor."""
    if reliability not in RELIABILITY_UNITS:
        raise ValueError(f"unknown reliability {reliability!r}")
    if strength not in STRENGTH_UNITS:
        raise ValueError(f"unknown strength {strength!r}")
    return RELIABILITY_UNITS[reliability] * STRENGTH_UNITS[strength]


WEIGHTY_UNITS = weight_units("C", "moderate")


def _require_aware(value: datetime, name: str) -> None:
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{name} must be timezone-aware")


@dataclass(frozen=True)
class Item:
    """One piece of evidence about a claim, as seen by the model."""

    id: str
    source_id: str
    stance: Stance
    strength: Strength
    published_at: datetime
    derived_from: frozenset[str] = field(default_factory=frozenset)
    retracted_from: datetime | None = None

    def __post_init__(self) -> None:
        if self.stance not in STANCES:
            raise ValueError(f"unknown stance {self.stance!r}")
        if self.strength not in STRENGTHS:
            raise ValueError(f"unknown strength {self.strength!r}")
        _require_aware(self.published_at, "published_at")
        if self.retracted_from is not None:
            _require_aware(self.retracted_from, "retracted_from")
        if not isinstance(self.derived_from, frozenset):
            object.__setattr__(self, "derived_from", frozenset(self.derived_from))

    @property
    def origin(self) -> tuple[str, Stance]:
        """The independent origin this item speaks for: its source and its stance."""
        return (self.source_id, self.stance)

    def is_published(self, at: datetime) -> bool:
        return self.published_at <= at

    def is_retracted(self, at: datetime) -> bool:
        return self.retracted_from is not None and at >= self.retracted_from

    def is_alive(self, at: datetime) -> bool:
        """Published and not retracted at valid time `at`."""
        return self.is_published(at) and not self.is_retracted(at)


@dataclass(frozen=True)
class Tally:
    """Integer state of a verdict: the sum of the contributions of its counted origins."""

    units: int = 0
    supporting: int = 0
    refuting: int = 0
    weighty_supporting: int = 0
    weighty_refuting: int = 0

    def __add__(self, other: Tally) -> Tally:
        return Tally(*(a + b for a, b in zip(self.as_tuple(), other.as_tuple(), strict=True)))

    def __sub__(self, other: Tally) -> Tally:
        return Tally(*(a - b for a, b in zip(self.as_tuple(), other.as_tuple(), strict=True)))

    def as_tuple(self) -> tuple[int, int, int, int, int]:
        return (
            self.units,
            self.supporting,
            self.refuting,
            self.weighty_supporting,
            self.weighty_refuting,
        )

    @property
    def origins(self) -> int:
        """Number of counted origins on either side."""
        return self.supporting + self.refuting


def origin_tally(stance: Stance, units: int) -> Tally:
    """Contribution of one origin whose counted item weighs `units` (zero Tally when 0)."""
    if units < 0:
        raise ValueError("an origin's weight cannot be negative")
    if units == 0:
        return Tally()
    weighty = 1 if units >= WEIGHTY_UNITS else 0
    if stance == "supports":
        return Tally(units=units, supporting=1, weighty_supporting=weighty)
    if stance == "refutes":
        return Tally(units=-units, refuting=1, weighty_refuting=weighty)
    raise ValueError(f"a {stance!r} origin is never counted")


@dataclass(frozen=True)
class Assessment:
    probability: float
    likelihood: str
    status: str
    model: str = MODEL_VERSION


def probability_of(units: int) -> float:
    """Posterior from signed units: logistic of the log-odds, clamped and rounded to 4 places."""
    logodds = min(max(units * LOGODDS_PER_UNIT, -_LOGODDS_BOUND), _LOGODDS_BOUND)
    p = 1.0 / (1.0 + math.exp(-logodds))
    return round(min(max(p, PROBABILITY_FLOOR), PROBABILITY_CEILING), 4)


def likelihood(probability: float) -> str:
    """ICD 203 expression of likelihood for a probability in [0.01, 0.99]."""
    if not PROBABILITY_FLOOR <= probability <= PROBABILITY_CEILING:
        raise ValueError(f"probability {probability!r} outside [0.01, 0.99]")
    for low, high, phrase in LIKELIHOOD_BANDS:
        if low <= probability < high:
            return phrase
    return LIKELIHOOD_BANDS[-1][2]


def status(tally: Tally, probability: float) -> str:
    """Verdict status from the tally and its (rounded, clamped) probability."""
    if tally.origins == 0:
        return "unverified"
    if tally.weighty_supporting >= 1 and tally.weighty_refuting >= 1:
        return "disputed"
    if probability >= CONFIRMED_AT and tally.supporting >= 2:
        return "confirmed"
    if probability <= REFUTED_AT and tally.refuting >= 2:
        return "refuted"
    if tally.units > 0:
        return "suspected"
    if tally.units < 0:
        return "doubtful"
    return "disputed"


def assess(tally: Tally) -> Assessment:
    p = probability_of(tally.units)
    return Assessment(probability=p, likelihood=likelihood(p), status=status(tally, p))


@dataclass(frozen=True)
class Judgement:
    """One item's fate at a valid time."""

    item: Item
    units: int
    counted: bool
    reason: str | None


@dataclass(frozen=True)
class Verdict:
    tally: Tally
    assessment: Assessment
    judgements: tuple[Judgement, ...]


def _exclusion(item: Item, at: datetime) -> str | None:
    if not item.is_published(at):
        return REASON_NOT_YET_PUBLISHED
    if item.is_retracted(at):
        return REASON_RETRACTED
    if item.stance == "neutral":
        return REASON_NEUTRAL
    if item.derived_from:
        return REASON_DERIVED
    return None


def verdict_at(items: Iterable[Item], ratings: Mapping[str, Reliability], at: datetime) -> Verdict:
    """Reference computation of a claim's verdict at valid time `at` from all its items."""
    _require_aware(at, "at")
    ordered = sorted(items, key=lambda item: (item.published_at, item.id))
    ids = [item.id for item in ordered]
    if len(set(ids)) != len(ids):
        raise ValueError("item ids must be unique")

    def units_of(item: Item) -> int:
        if item.stance == "neutral":
            return 0
        return weight_units(ratings.get(item.source_id, UNRATED), item.strength)

    reasons: dict[str, str | None] = {}
    candidates: dict[tuple[str, Stance], list[Item]] = {}
    for item in ordered:
        reason = _exclusion(item, at)
        reasons[item.id] = reason
        if reason is None:
            candidates.setdefault(item.origin, []).append(item)

    tally = Tally()
    for (_, stance), group in candidates.items():
        best = min(group, key=lambda item: (-units_of(item), item.published_at, item.id))
        tally += origin_tally(stance, units_of(best))
        for item in group:
            if item is not best:
                reasons[item.id] = REASON_REPEAT

    judgements = tuple(
        Judgement(
            item=item,
            units=units_of(item),
            counted=reasons[item.id] is None,
            reason=reasons[item.id],
        )
        for item in ordered
    )
    return Verdict(tally=tally, assessment=assess(tally), judgements=judgements)


def origin_steps(
    items: Iterable[Item], units_of: Callable[[Item], int]
) -> list[tuple[datetime, int]]:
    """Change points (at_from, units) of the max weight alive in one origin; 0 before the first."""
    group = list(items)
    if len({item.origin for item in group}) > 1:
        raise ValueError("items must share one origin (source and stance)")
    for item in group:
        if item.stance == "neutral" or item.derived_from:
            raise ValueError("neutral and derived items have no origin weight")

    weights = [(item, units_of(item)) for item in group]
    points = {item.published_at for item in group}
    points.update(item.retracted_from for item in group if item.retracted_from is not None)

    steps: list[tuple[datetime, int]] = []
    current = 0
    for at in sorted(points):
        value = max((units for item, units in weights if item.is_alive(at)), default=0)
        if value != current:
            steps.append((at, value))
            current = value
    return steps
