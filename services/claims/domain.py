"""Claims and editorial rulings: the aggregate and its events."""

from datetime import datetime
from typing import Literal, get_args

from eventsourcing.domain import event

from shared.eventstore import FactcheckAggregate

RulingStatus = Literal["unverified", "suspected", "confirmed", "disputed", "doubtful", "refuted"]
RULING_STATUSES: tuple[str, ...] = get_args(RulingStatus)
WORDING_TYPES = ("ClaimRegistered", "ClaimReworded")
"""Feed types of the events that set a claim's wording."""


class Claim(FactcheckAggregate):
    """A statement about the world whose truth the newsroom tracks."""

    @event("Registered")
    def __init__(self, text: str, context: str | None, tags: list[str]) -> None:
        self.text = text
        self.context = context
        self.tags = list(tags)

    @event("Reworded")
    def reword(self, text: str, reason: str) -> None:
        """Change the wording; the earlier wording stays in the history."""
        self.text = text

    @event("Ruled")
    def rule(self, status: RulingStatus, rationale: str, effective_at: datetime) -> None:
        """An editor's ruling, shown beside the computed verdict from `effective_at` on."""
