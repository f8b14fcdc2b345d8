"""From-scratch replay: a claim's verdict computed straight from sources-feed items.

This is the reference the projection must equal for every (`at`, `known_at`): no indexes, no
read models, just the events recorded by `known_at` folded into evidence and ratings.
"""

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from services.claims.confidence import Item, Verdict, verdict_at
from services.claims.domain import WORDING_TYPES
from shared.sources_feed import Reliability, SubmittedData
from shared.timeaxes import parse_instant

EVIDENCE_FIELDS = tuple(SubmittedData.model_fields)
"""The fields of a submission that decide whether and how it counts."""


def replay_verdict(
    items: Iterable[Mapping[str, Any]], claim_id: str, at: datetime, known_at: datetime
) -> Verdict:
    """The verdict on `claim_id` at `at` from the feed items recorded by `known_at`."""
    evidence: dict[str, dict[str, Any]] = {}
    ratings: dict[str, Reliability] = {}
    for item in sorted(items, key=lambda entry: entry["position"]):
        if parse_instant(item["recorded_at"]) > known_at:
            continue
        kind, stream, data = item["type"], str(item["stream_id"]), item["data"]
        if kind == "SourceRated":
            ratings[stream] = data["reliability"]
        elif kind == "EvidenceSubmitted":
            evidence[stream] = {field: data.get(field) for field in EVIDENCE_FIELDS}
            evidence[stream]["retracted_from"] = None
        elif kind == "EvidenceRetracted" and stream in evidence:
            evidence[stream]["retracted_from"] = data["published_at"]
        elif kind == "EvidenceCorrected" and stream in evidence:
            evidence[stream].update(
                {
                    key: value
                    for key, value in data["changes"].items()
                    if key in EVIDENCE_FIELDS or key == "retracted_from"
                }
            )
    on_claim = [
        Item(
            id=evidence_id,
            source_id=str(state["source_id"]),
            stance=state["stance"],
            strength=state["strength"],
            published_at=parse_instant(state["published_at"]),
            derived_from=frozenset(str(parent) for parent in state["derived_from"] or ()),
            retracted_from=(
                parse_instant(state["retracted_from"]) if state["retracted_from"] else None
            ),
        )
        for evidence_id, state in evidence.items()
        if str(state["claim_id"]) == claim_id
    ]
    return verdict_at(on_claim, ratings, at)


@dataclass(frozen=True)
class ReplayedClaim:
    """One claim's verdict and ruling, rebuilt from exported events alone; the ruling has the
    fields a verdict's has."""

    claim_id: str
    text: str
    verdict: Verdict
    ruling: dict[str, Any] | None


def replay_claims(
    sources_items: Sequence[Mapping[str, Any]],
    claims_items: Sequence[Mapping[str, Any]],
    at: datetime,
    known_at: datetime,
) -> list[ReplayedClaim]:
    """Every claim registered by `known_at`, with its verdict at `at` as known at `known_at`."""
    texts: dict[str, str] = {}
    rulings: dict[str, dict[str, Any]] = {}
    for item in sorted(claims_items, key=lambda entry: entry["position"]):
        if parse_instant(item["recorded_at"]) > known_at:
            continue
        claim_id, data = str(item["stream_id"]), item["data"]
        if item["type"] in WORDING_TYPES:
            texts[claim_id] = data["text"]
        elif item["type"] == "ClaimRuled" and parse_instant(data["effective_at"]) <= at:
            rulings[claim_id] = {
                "status": data["status"],
                "rationale": data["rationale"],
                "effective_at": data["effective_at"],
                "recorded_at": item["recorded_at"],
                "actor": str(item["metadata"].get("actor", "anonymous")),
            }
    return [
        ReplayedClaim(
            claim_id=claim_id,
            text=text,
            verdict=replay_verdict(sources_items, claim_id, at, known_at),
            ruling=rulings.get(claim_id),
        )
        for claim_id, text in texts.items()
    ]
