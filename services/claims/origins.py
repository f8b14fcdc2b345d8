"""Step functions of independent origins over valid time, the unit a projection stores.

An origin is one source speaking with one stance on one claim. At each valid time its
contribution is its strongest live item (a source repeating itself counts once); a step
function records which item that is from each change point on. Ratings scale the level into
weight units without changing the steps, because every item of an origin shares one source.
"""

import heapq
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from services.claims.confidence import RELIABILITY_UNITS, STRENGTH_UNITS, origin_tally
from shared.sources_feed import Reliability, Stance, Strength

Vector = tuple[int, int, int, int, int, int]
"""Summable verdict state: units, supporting, refuting, weighty supporting/refuting, items."""
ZERO: Vector = (0, 0, 0, 0, 0, 0)
ITEM: Vector = (0, 0, 0, 0, 0, 1)


@dataclass(frozen=True)
class Member:
    """An item that can count for its origin: not derived, not neutral."""

    id: str
    level: int
    published: int
    retracted: int | None

    @property
    def rank(self) -> tuple[int, int, str]:
        """Sort key of the item that counts: strongest, then earliest, then smallest id."""
        return (-self.level, self.published, self.id)


@dataclass(frozen=True)
class Step:
    """From valid time `at` on, the origin counts item `item` at strength `level` (0: none)."""

    at: int
    level: int
    item: str | None
    published: int

    @property
    def rank(self) -> tuple[int, int, str]:
        return (-self.level, self.published, self.item or "")


Steps = tuple[Step, ...]


def level_of(strength: Strength) -> int:
    return STRENGTH_UNITS[strength]


def steps_of(members: Iterable[Member]) -> Steps:
    """The origin's step function from all its members, by a sweep over valid time."""
    events: list[tuple[int, int, Member]] = []
    for member in members:
        events.append((member.published, 1, member))
        if member.retracted is not None:
            events.append((member.retracted, 0, member))
    events.sort(key=lambda event: (event[0], event[1], event[2].id))
    alive: list[tuple[tuple[int, int, str], Member]] = []
    gone: set[str] = set()
    steps: list[Step] = []
    index = 0
    while index < len(events):
        at = events[index][0]
        while index < len(events) and events[index][0] == at:
            _, kind, member = events[index]
            if kind == 1:
                if member.retracted is None or member.retracted > member.published:
                    heapq.heappush(alive, (member.rank, member))
            else:
                gone.add(member.id)
            index += 1
        while alive and alive[0][1].id in gone:
            heapq.heappop(alive)
        best = alive[0][1] if alive else None
        steps.append(
            Step(at, best.level, best.id, best.published) if best else Step(at, 0, None, 0)
        )
    return _collapse(steps)


def with_new_member(steps: Steps, member: Member) -> Steps:
    """The step function once `member`, live from its publication on, joins the origin."""
    if member.retracted is not None:
        raise ValueError("a new member is not yet retracted")
    joined = Step(member.published, member.level, member.id, member.published)
    result: list[Step] = []
    before = Step(member.published, 0, None, 0)
    for step in steps:
        if step.at <= member.published:
            before = step
        if step.at < member.published:
            result.append(step)
    result.append(_better(_moved(before, member.published), joined))
    for step in steps:
        if step.at > member.published:
            result.append(_better(step, _moved(joined, step.at)))
    return _collapse(result)


def value_at(steps: Sequence[Step], at: int) -> Step | None:
    """The step in force at valid time `at`, or None before the first."""
    low, high = 0, len(steps)
    while low < high:
        middle = (low + high) // 2
        if steps[middle].at <= at:
            low = middle + 1
        else:
            high = middle
    return steps[low - 1] if low else None


def vector_of(stance: Stance, reliability: Reliability, level: int) -> Vector:
    """The summable contribution of an origin counting an item of strength `level`."""
    if level == 0:
        return ZERO
    tally = origin_tally(stance, RELIABILITY_UNITS[reliability] * level)
    return (*tally.as_tuple(), 0)


def vector_steps(
    steps: Steps, stance: Stance, reliability: Reliability
) -> list[tuple[int, Vector]]:
    return [(step.at, vector_of(stance, reliability, step.level)) for step in steps]


def difference(
    old: Sequence[tuple[int, Vector]], new: Sequence[tuple[int, Vector]]
) -> list[tuple[int, Vector]]:
    """Point deltas turning step function `old` into `new` (both 0 before their first point)."""
    points = sorted({at for at, _ in old} | {at for at, _ in new})
    deltas: list[tuple[int, Vector]] = []
    old_value, new_value = ZERO, ZERO
    old_index = new_index = 0
    previous = ZERO
    for at in points:
        while old_index < len(old) and old[old_index][0] <= at:
            old_value = old[old_index][1]
            old_index += 1
        while new_index < len(new) and new[new_index][0] <= at:
            new_value = new[new_index][1]
            new_index += 1
        current = subtract(new_value, old_value)
        delta = subtract(current, previous)
        if delta != ZERO:
            deltas.append((at, delta))
        previous = current
    return deltas


def add(left: Vector, right: Vector) -> Vector:
    return tuple(a + b for a, b in zip(left, right, strict=True))  # type: ignore[return-value]


def subtract(left: Vector, right: Vector) -> Vector:
    return tuple(a - b for a, b in zip(left, right, strict=True))  # type: ignore[return-value]


def _moved(step: Step, at: int) -> Step:
    return Step(at, step.level, step.item, step.published)


def _better(left: Step, right: Step) -> Step:
    if left.level == 0:
        return right
    if right.level == 0:
        return left
    return left if left.rank <= right.rank else right


def _collapse(steps: Iterable[Step]) -> Steps:
    collapsed: list[Step] = []
    for step in steps:
        previous_level = collapsed[-1].level if collapsed else 0
        previous_item = collapsed[-1].item if collapsed else None
        if (step.level, step.item) != (previous_level, previous_item):
            collapsed.append(step)
    return tuple(collapsed)
