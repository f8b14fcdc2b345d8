"""Kill the claims service while it follows a long feed; after a restart each item counts once."""

import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta

import httpx
import psycopg
from fastapi import FastAPI

from services.claims.replay import replay_verdict
from services.sources.bootstrap import create_app as create_sources_app
from shared.settings import SourcesSettings
from tests.conftest import KnownClaims
from tests.servers import free_port, serving

ITEMS = 1200


@contextmanager
def claims_process(
    database_url: str, sources_url: str, port: int
) -> Iterator[subprocess.Popen[bytes]]:
    env = {
        **os.environ,
        "CLAIMS_DATABASE_URL": database_url,
        "SOURCES_URL": sources_url,
        "FOLLOWER_PAGE_SIZE": "20",
        "FOLLOWER_WAIT": "0.5",
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "shared.cli", "serve", "--service", "claims", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_until(lambda: _health(port) is not None, "the claims service to start")
        yield process
    finally:
        if process.poll() is None:
            process.terminate()
            process.wait(timeout=20)


def _health(port: int) -> dict | None:
    try:
        return httpx.get(f"http://127.0.0.1:{port}/health", timeout=2).json()
    except httpx.HTTPError:
        return None


def wait_until(condition, what: str, timeout: float = 60.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def _load_evidence(app: FastAPI, claim_id: uuid.UUID) -> None:
    sources = app.state.sources
    source_ids = [sources.register_source(f"source {n}", "test").id for n in range(6)]
    for n, source_id in enumerate(source_ids):
        sources.rate_source(source_id, "ABCDEF"[n], "test", "test")
    day0 = datetime(2024, 1, 1, tzinfo=UTC)
    for n in range(ITEMS):
        sources.submit_evidence(
            source_id=source_ids[n % 6],
            claim_id=claim_id,
            stance="refutes" if n % 5 == 0 else "supports",
            strength=("weak", "moderate", "strong")[n % 3],
            published_at=day0 + timedelta(hours=n),
            summary=f"item {n}",
        )


def _feed(base_url: str) -> list[dict]:
    items, after = [], 0
    while True:
        page = httpx.get(f"{base_url}/feed", params={"after": after, "limit": 1000}).json()
        if not page["items"]:
            return items
        items.extend(page["items"])
        after = page["next_after"]


def test_sigkill_mid_feed_then_restart_counts_every_item_once(
    database_url: str, claims_database_url: str, known_claims: KnownClaims
) -> None:
    sources_app = create_sources_app(
        SourcesSettings(database_url=database_url), claims=known_claims
    )
    port = free_port()
    with serving(sources_app) as sources_url:
        with claims_process(claims_database_url, sources_url, port):
            claim = httpx.post(f"http://127.0.0.1:{port}/claims", json={"text": "a claim"}).json()
        claim_id = uuid.UUID(claim["id"])
        known_claims.ids.add(claim_id)
        _load_evidence(sources_app, claim_id)
        head = sources_app.state.sources.head()

        with claims_process(claims_database_url, sources_url, port) as process:
            wait_until(
                lambda: (_health(port) or {}).get("follower", {}).get("position", 0) >= 300,
                "the follower to be part-way",
            )
            process.send_signal(signal.SIGKILL)
            process.wait(timeout=10)
        killed_at = _applied_positions(claims_database_url)
        assert 300 <= len(killed_at) < head, "killed while following"

        with claims_process(claims_database_url, sources_url, port):
            wait_until(
                lambda: (_health(port) or {}).get("follower", {}).get("position") == head,
                "the follower to catch up",
            )
            answer = httpx.get(
                f"http://127.0.0.1:{port}/claims/{claim_id}/verdict", params={"at": "2025-01-01"}
            ).json()

        feed = _feed(sources_url)
        assert _applied_positions(claims_database_url) == [item["position"] for item in feed]
        expected = replay_verdict(
            feed,
            str(claim_id),
            datetime(2025, 1, 1, 23, 59, 59, 999999, tzinfo=UTC),
            datetime.now(UTC),
        )
        assert answer["evidence"]["items_total"] == ITEMS
        assert answer["probability"] == expected.assessment.probability
        assert answer["status"] == expected.assessment.status
        assert answer["supporting_origins"] == expected.tally.supporting


def _applied_positions(database_url: str) -> list[int]:
    """Every sources-feed position the claims store has applied, read straight from it."""
    if database_url.startswith("sqlite"):
        import sqlite3

        with sqlite3.connect(database_url.removeprefix("sqlite:///")) as connection:
            rows = connection.execute("SELECT position FROM upstream_event ORDER BY position")
            return [row[0] for row in rows]
    base, _, schema = database_url.partition("?schema=")
    with psycopg.connect(base) as connection:
        rows = connection.execute(
            f'SELECT position FROM "{schema}".upstream_event ORDER BY position'
        )
        return [row[0] for row in rows]
