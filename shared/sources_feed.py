"""What the sources feed carries: the terms of its evidence and ratings, and the data of each
item type, as the sources service records them and the claims service reads them."""

from typing import Any, Literal, get_args
from uuid import UUID

from pydantic import BaseModel, ConfigDict

from shared.timeaxes import UtcDatetime

Reliability = Literal["A", "B", "C", "D", "E", "F"]
"""The Admiralty grade of a source's reliability, A (completely reliable) to F (cannot be
judged)."""
Stance = Literal["supports", "refutes", "neutral"]
Strength = Literal["weak", "moderate", "strong"]

RELIABILITIES: tuple[Reliability, ...] = get_args(Reliability)
STANCES: tuple[Stance, ...] = get_args(Stance)
STRENGTHS: tuple[Strength, ...] = get_args(Strength)


class ItemData(BaseModel):
    """A feed item's data as a reader needs it; fields it does not use are let through."""

    model_config = ConfigDict(extra="allow")


class SubmittedData(ItemData):
    """An `EvidenceSubmitted` item: what decides whether and how the evidence counts."""

    source_id: UUID
    claim_id: UUID
    stance: Stance
    strength: Strength
    published_at: UtcDatetime
    derived_from: list[UUID] = []


class RatedData(ItemData):
    """A `SourceRated` item."""

    reliability: Reliability


class RetractedData(ItemData):
    """An `EvidenceRetracted` item: the evidence no longer counts from `published_at` on."""

    published_at: UtcDatetime


class CorrectedData(ItemData):
    """An `EvidenceCorrected` item: the submitted fields it changes, with their new values."""

    changes: dict[str, Any]


class RetractionChange(ItemData):
    """A correction's new retraction date; None withdraws the retraction."""

    retracted_from: UtcDatetime | None
