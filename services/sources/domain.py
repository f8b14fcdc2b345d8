"""Sources and evidence: the aggregates and their events."""

from datetime import datetime
from typing import Any
from uuid import UUID

from eventsourcing.domain import event

from shared.eventstore import FactcheckAggregate
from shared.sources_feed import Reliability, Stance, Strength

CORRECTABLE_FIELDS = frozenset(
    {
        "source_id",
        "claim_id",
        "stance",
        "strength",
        "published_at",
        "url",
        "quote",
        "summary",
        "derived_from",
    }
)


class Source(FactcheckAggregate):
    """Who speaks: an office, an agency, a newspaper; with a history of reliability ratings."""

    @event("Registered")
    def __init__(
        self,
        name: str,
        kind: str,
        url: str | None,
        country: str | None,
        notes: str | None,
    ) -> None:
        self.name = name
        self.kind = kind
        self.url = url
        self.country = country
        self.notes = notes
        self.reliabilities: list[Reliability] = []

    @event("Rated")
    def rate(self, reliability: Reliability, rationale: str, rater: str) -> None:
        """Rate the source on the Admiralty scale; earlier ratings stay in the history."""
        self.reliabilities.append(reliability)

    @property
    def reliability(self) -> Reliability:
        """The rating in force: the latest, or F (cannot be judged) before any."""
        return self.reliabilities[-1] if self.reliabilities else "F"


class Evidence(FactcheckAggregate):
    """What a source said or showed about a claim, and when it became public."""

    @event("Submitted")
    def __init__(
        self,
        source_id: UUID,
        claim_id: UUID,
        stance: Stance,
        strength: Strength,
        published_at: datetime,
        url: str | None,
        quote: str | None,
        summary: str,
        derived_from: list[UUID],
    ) -> None:
        self.source_id = source_id
        self.claim_id = claim_id
        self.stance = stance
        self.strength = strength
        self.published_at = published_at
        self.url = url
        self.quote = quote
        self.summary = summary
        self.derived_from = list(derived_from)
        self.retracted_from: datetime | None = None

    @event("Retracted")
    def retract(self, published_at: datetime, reason: str) -> None:
        """The source withdrew its statement, publicly, at `published_at` (valid time)."""
        self.retracted_from = published_at

    @event("Corrected")
    def correct(self, changes: dict[str, Any], reason: str) -> None:
        """Fix a mistyped record; holds from the moment it is recorded (transaction time)."""
        for field, value in changes.items():
            setattr(self, field, list(value) if field == "derived_from" else value)
