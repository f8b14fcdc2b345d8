"""Fill the stores before the services start: claims, rated sources, and many evidence items.

The events are recorded by the services' own applications, with the same hash chain, so the
services start on a store that is indistinguishable from one filled over HTTP; only faster,
because a thousand items share one transaction.
"""

import random
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from uuid import UUID

from services.claims.application import ClaimsApplication
from services.sources.application import SourcesApplication
from services.sources.domain import Evidence, Source
from shared.sources_feed import RELIABILITIES
from shared.storage import parse_storage_url

LOADER = {"actor": "benchmark-loader"}
BATCH = 1000
SOURCES = 50
YEAR_START = datetime(2024, 1, 1, tzinfo=UTC)


class EveryClaim:
    """The loader's claim directory: the claims were registered a moment ago."""

    def exists(self, claim_id: UUID) -> bool:
        return True


@dataclass(frozen=True)
class Loaded:
    claims: dict[int, UUID]
    """Claim id by the number of evidence items it was given."""
    events: int
    """Events now in the sources store."""


def fill(sources_database: str, claims_database: str, sizes: list[int], seed: int = 7) -> Loaded:
    """Register one claim per size, then record that many evidence items about each."""
    rng = random.Random(seed)
    claims_storage = parse_storage_url("CLAIMS_DATABASE_URL", claims_database)
    claims_storage.prepare()
    claims_app = ClaimsApplication(claims_storage)
    try:
        claims = {
            size: claims_app.register_claim(f"a claim with {size} items", metadata=LOADER).id
            for size in sizes
        }
    finally:
        claims_app.close()
    storage = parse_storage_url("SOURCES_DATABASE_URL", sources_database)
    storage.prepare()
    sources_app = SourcesApplication(storage, EveryClaim())
    try:
        with sources_app.recording(LOADER) as write:
            sources = [
                Source(name=f"source {n}", kind="benchmark", url=None, country=None, notes=None)
                for n in range(SOURCES)
            ]
            for n, source in enumerate(sources):
                source.rate(reliability=RELIABILITIES[n % 6], rationale="benchmark", rater="bench")
            write.add(*sources)
        for size, claim_id in claims.items():
            for start in range(0, size, BATCH):
                with sources_app.recording(LOADER) as write:
                    write.add(
                        *(
                            evidence_about(claim_id, rng.choice(sources).id, rng, n)
                            for n in range(start, min(size, start + BATCH))
                        )
                    )
        return Loaded(claims=claims, events=sources_app.head())
    finally:
        sources_app.close()


def evidence_about(claim_id: UUID, source_id: UUID, rng: random.Random, n: int) -> Evidence:
    return Evidence(
        source_id=source_id,
        claim_id=claim_id,
        stance=rng.choice(["supports", "supports", "refutes", "neutral"]),
        strength=rng.choice(["weak", "moderate", "strong"]),
        published_at=YEAR_START + timedelta(minutes=rng.randrange(0, 60 * 24 * 365)),
        url=None,
        quote=None,
        summary=f"item {n}",
        derived_from=[],
    )
