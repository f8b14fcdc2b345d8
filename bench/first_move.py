"""How long the first claim move after a start holds other writes up, on a large log.

    python -m bench.first_move [sqlite|postgresql]

The first correction that moves evidence to another claim reads every link of `derived_from`
in the sources log. A thread registers a source every 10 ms meanwhile; the longest of those
registrations is how long the move kept other writes waiting.
"""

import sys
import tempfile
import threading
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

from bench import bulk
from bench.harness import database
from services.sources.application import SourcesApplication
from shared.storage import parse_storage_url

ITEMS = 100_000


def main() -> None:
    kind = sys.argv[1] if len(sys.argv) > 1 else "sqlite"
    with (
        tempfile.TemporaryDirectory() as tmp,
        database(kind, "sources", Path(tmp)) as sources_db,
        database(kind, "claims", Path(tmp)) as claims_db,
    ):
        loaded = bulk.fill(sources_db, claims_db, [ITEMS])
        storage = parse_storage_url("SOURCES_DATABASE_URL", sources_db)
        application = SourcesApplication(storage, bulk.EveryClaim())
        try:
            source = application.register_source("wire", "wire").id
            published = datetime(2024, 1, 5, tzinfo=UTC)
            evidence = application.submit_evidence(
                source, uuid.uuid4(), "supports", "weak", published, "to be moved"
            ).id
            waits: list[float] = []
            stopping = threading.Event()

            def register() -> None:
                while not stopping.is_set():
                    began = time.perf_counter()
                    application.register_source("meanwhile", "wire")
                    waits.append(time.perf_counter() - began)
                    stopping.wait(0.01)

            writer = threading.Thread(target=register)
            writer.start()
            time.sleep(0.3)
            began = time.perf_counter()
            application.correct_evidence(evidence, {"claim_id": uuid.uuid4()}, "moved")
            moved = time.perf_counter() - began
            time.sleep(0.3)
            stopping.set()
            writer.join()
        finally:
            application.close()
    print(
        f"{kind}: {loaded.events:,} events; first move {moved:.2f} s; longest registration "
        f"meanwhile {max(waits) * 1000:.0f} ms of {len(waits)}"
    )


if __name__ == "__main__":
    main()
