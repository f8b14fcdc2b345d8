"""A verdict as schema.org ClaimReview JSON-LD, the markup fact-check readers understand."""

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from services.claims.confidence import LIKELIHOOD_BANDS, Assessment
from shared.timeaxes import format_instant

RATINGS = {phrase: index + 1 for index, (_, _, phrase) in enumerate(LIKELIHOOD_BANDS)}
"""ICD 203 phrases on a 1 to 7 scale: 1 almost no chance ... 7 almost certain."""


@dataclass(frozen=True)
class Appearance:
    """Where the claim appeared: one evidence item's publication."""

    url: str | None
    published_at: datetime
    source_name: str
    summary: str


@dataclass(frozen=True)
class EditorsRuling:
    """The editor's ruling in force, told beside the computed rating, never in its place."""

    status: str
    rationale: str
    effective_at: datetime


def claim_review(
    *,
    url: str,
    claim_text: str,
    assessment: Assessment,
    known_at: datetime,
    publisher: str,
    appearances: Sequence[Appearance],
    ruling: EditorsRuling | None = None,
) -> dict[str, Any]:
    """The ClaimReview for a verdict as known at `known_at`."""
    review: dict[str, Any] = {
        "@context": "https://schema.org",
        "@type": "ClaimReview",
        "url": url,
        "claimReviewed": claim_text,
        "datePublished": known_at.date().isoformat(),
        "author": {"@type": "Organization", "name": publisher},
        "reviewRating": {
            "@type": "Rating",
            "ratingValue": RATINGS[assessment.likelihood],
            "bestRating": len(RATINGS),
            "worstRating": 1,
            "alternateName": f"{assessment.likelihood} ({assessment.status})",
            "ratingExplanation": _explanation(assessment, ruling),
        },
    }
    item: dict[str, Any] = {"@type": "Claim"}
    if appearances:
        item["datePublished"] = min(entry.published_at for entry in appearances).date().isoformat()
        item["appearance"] = [
            {
                "@type": "CreativeWork",
                **({"url": entry.url} if entry.url else {}),
                "datePublished": entry.published_at.date().isoformat(),
                "author": {"@type": "Organization", "name": entry.source_name},
                "headline": entry.summary,
            }
            for entry in appearances
        ]
    review["itemReviewed"] = item
    return review


def _explanation(assessment: Assessment, ruling: EditorsRuling | None) -> str:
    if assessment.status == "unverified":
        computed = f"No independent source counts for or against yet (model {assessment.model})."
    else:
        computed = (
            f"Probability {assessment.probability:.0%} from independent sources, "
            f"{assessment.status} (model {assessment.model})."
        )
    if ruling is None:
        return computed
    return (
        f"{computed} Editor's ruling, effective {format_instant(ruling.effective_at)}: "
        f"{ruling.status}. {ruling.rationale}"
    )
