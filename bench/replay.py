"""How long `factcheck replay` takes over many claims, against replaying one claim.

    python -m bench.replay

`factcheck replay` gives every claim's verdict from the two services' exported feed items
alone. Its baseline, in the same run, is the verdict of one claim from the same items, which
reads and folds the whole sources feed once: a replay of every claim that costs many times
that folds the feed again for each claim.
"""

import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench import bulk
from bench.harness import database
from services.claims.application import ClaimsApplication
from services.claims.replay import replay_claims, replay_verdict
from services.sources.application import SourcesApplication
from shared.eventstore import FactcheckApplication
from shared.routes import every_item
from shared.storage import parse_storage_url

CLAIMS = 200
SIZES = [20 + index for index in range(CLAIMS)]
"""Evidence items on each claim; the filler registers one claim per distinct size."""


def exported(application: FactcheckApplication) -> list[dict[str, Any]]:
    """The application's log as its export holds it: one feed item a line."""
    try:
        return [item.model_dump(mode="json") for item in every_item(application)]
    finally:
        application.close()


def main() -> None:
    with (
        tempfile.TemporaryDirectory() as tmp,
        database("sqlite", "sources", Path(tmp)) as sources_db,
        database("sqlite", "claims", Path(tmp)) as claims_db,
    ):
        bulk.fill(sources_db, claims_db, SIZES)
        sources_items = exported(
            SourcesApplication(
                parse_storage_url("SOURCES_DATABASE_URL", sources_db), bulk.EveryClaim()
            )
        )
        claims_items = exported(
            ClaimsApplication(parse_storage_url("CLAIMS_DATABASE_URL", claims_db))
        )
    now = datetime.now(UTC)
    claim = next(str(item["stream_id"]) for item in claims_items)
    began = time.perf_counter()
    replay_verdict(sources_items, claim, now, now)
    one = time.perf_counter() - began
    began = time.perf_counter()
    replayed = replay_claims(sources_items, claims_items, now, now)
    every = time.perf_counter() - began
    print(
        f"{len(sources_items) + len(claims_items):,} events, {len(replayed)} claims: "
        f"one claim {one:.2f} s, every claim {every:.2f} s = {every / one:.1f} times one claim"
    )


if __name__ == "__main__":
    main()
