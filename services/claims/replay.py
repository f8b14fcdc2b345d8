"""From-scratch replay: a claim's verdict computed straight from sources-feed items.

This is the reference the projection must equal for every (`at`, `known_at`): no indexes, no
read models, just the events recorded by `known_at` folded into evidence and ratings.
"""

from collections import defaultdict
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


@dataclass(frozen=True)
class SourcesKnown:
    """What the sources feed had recorded by a time: each claim's evidence items, by id, and
    each source's latest rating."""

    evidence: Mapping[str, Mapping[str, Mapping[str, Any]]]
    ratings: Mapping[str, Reliability]

    def items_on(self, claim_id: str) -> list[Item]:
        """The evidence items on `claim_id`, as the confidence model takes them."""
        return [
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
            for evidence_id, state in self.evidence.get(claim_id, {}).items()
        ]

    def verdict_on(self, claim_id: str, at: datetime) -> Verdict:
        """The verdict on `claim_id` at valid time `at`."""
        return verdict_at(self.items_on(claim_id), self.ratings, at)


def sources_known_at(items: Iterable[Mapping[str, Any]], known_at: datetime) -> SourcesKnown:
    """The sources feed items recorded by `known_at`, folded in recorded order."""
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
    by_claim: dict[str, dict[str, Mapping[str, Any]]] = defaultdict(dict)
    for evidence_id, state in evidence.items():
        by_claim[str(state["claim_id"])][evidence_id] = state
    return SourcesKnown(by_claim, ratings)


def replay_verdict(
    items: Iterable[Mapping[str, Any]], claim_id: str, at: datetime, known_at: datetime
) -> Verdict:
    """The verdict on `claim_id` at `at` from the feed items recorded by `known_at`."""
    return sources_known_at(items, known_at).verdict_on(claim_id, at)


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
    """Every claim registered by `known_at`, with its verdict at `at` as known at `known_at`;
    the sources feed is folded once for them all."""
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
    known = sources_known_at(sources_items, known_at)
    return [
        ReplayedClaim(
            claim_id=claim_id,
            text=text,
            verdict=known.verdict_on(claim_id, at),
            ruling=rulings.get(claim_id),
        )
        for claim_id, text in texts.items()
    ]
