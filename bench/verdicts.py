"""Verdict latency by claim size, rebuild rate against raw reads, and memory, in one run.

Three claims get 10, 1,000 and 100,000 evidence items (recorded before the services start,
see bench.bulk). Once the claims service has followed the whole feed, verdicts are asked at
random `at` and `known_at`, round-robin over the three claims and `GET /health`, so that all
four see the same machine conditions. Then the rebuilds: the sources read models from the
store, and the claims read models over the feed, against reading the same notifications raw,
decoded, over `GET /feed`, and parsed and hash-checked with nothing stored; and against the
least a rebuild of the evidence read model must do, written with the database driver alone.
"""

import json
import random
import statistics
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from eventsourcing.persistence import ApplicationRecorder, Notification
from eventsourcing.utils import get_topic
from sqlalchemy import Column, Engine, MetaData, Table

from bench import bulk
from bench.harness import Services, database, percentile, services
from services.sources.application import SourcesApplication
from services.sources.domain import Evidence
from services.sources.projections import EvidenceView, SourcesProjection
from shared.chain import event_hash
from shared.feed import FEED_MAX_LIMIT, FeedPage
from shared.storage import parse_storage_url

SIZES = [10, 1_000, 100_000]
PAGE = 500
SAMPLE = 20_000
"""The ceilings that only explain the rebuild rates (decoding, the feed, hash checks, the
driver's own writes) are measured on the first this many events: a rate, not a total."""
SUBMITTED = get_topic(Evidence.Submitted)
EVIDENCE: Table = EvidenceView.__table__  # type: ignore[attr-defined]
SUBMITTED_COLUMNS = tuple(
    column.name for column in EVIDENCE.columns if not column.name.startswith("retract")
)
"""The evidence read model's columns that a submission sets, in the table's order."""


def wait_followed(claims: httpx.Client, head: int) -> None:
    while claims.get("/health").json()["follower"]["position"] < head:
        time.sleep(0.05)


def latencies(
    running: Services, claims: dict[int, Any], warmup: int, requests: int, seed: int = 11
) -> dict[str, list[float]]:
    """Milliseconds per request for each claim size and for `GET /health`."""
    rng = random.Random(seed)
    with httpx.Client(base_url=running.claims_url, timeout=30) as client:
        registered = {
            size: datetime.fromisoformat(client.get(f"/claims/{claim}").json()["registered_at"])
            for size, claim in claims.items()
        }
        now = datetime.now(UTC)
        timings: dict[str, list[float]] = {str(size): [] for size in claims} | {"health": []}
        for n in range(warmup + requests):
            for name in timings:
                if name == "health":
                    path, params = "/health", {}
                else:
                    size = int(name)
                    at = bulk.YEAR_START + timedelta(days=rng.uniform(0, 366))
                    known = registered[size] + (now - registered[size]) * rng.random()
                    path = f"/claims/{claims[size]}/verdict"
                    params = {"at": at.isoformat(), "known_at": known.isoformat()}
                began = time.perf_counter()
                client.get(path, params=params).raise_for_status()
                if n >= warmup:
                    timings[name].append((time.perf_counter() - began) * 1000)
    return timings


def raw_read_rate(sources_database: str) -> dict[str, float]:
    """Events per second read from the sources store: every notification raw; then the first
    SAMPLE raw, and decoded, to compare the ceilings measured on them with."""
    storage = parse_storage_url("SOURCES_DATABASE_URL", sources_database)
    application = SourcesApplication(storage, bulk.EveryClaim())
    try:
        count, raw = _raw_read(application.recorder)
        _, raw_sample = _raw_read(application.recorder, SAMPLE)
        began, after, decoded = time.perf_counter(), 0, 0
        while events := application.events_after(after, PAGE, SAMPLE):
            after, decoded = events[-1][0], decoded + len(events)
        decoded_rate = decoded / (time.perf_counter() - began)
    finally:
        application.close()
    return {
        "events": count,
        "raw_per_second": round(raw),
        "sample": decoded,
        "raw_sample_per_second": round(raw_sample),
        "decoded_per_second": round(decoded_rate),
    }


def _raw_read(recorder: ApplicationRecorder, stop: int | None = None) -> tuple[int, float]:
    """How many notifications the store holds up to `stop`, and how many a second it reads."""
    began, after, count = time.perf_counter(), 0, 0
    while page := recorder.select_notifications(after, PAGE, stop=stop, inclusive_of_start=False):
        after, count = page[-1].id, count + len(page)
    return count, count / (time.perf_counter() - began)


@contextmanager
def scratch_read_models(
    kind: str, sources_database: str
) -> Iterator[tuple[SourcesApplication, Engine]]:
    """The sources store, and an empty scratch database of the same kind to write read models
    to, so that the running service is left alone."""
    with tempfile.TemporaryDirectory() as tmp, database(kind, "scratch", Path(tmp)) as scratch:
        target = parse_storage_url("SOURCES_DATABASE_URL", scratch)
        target.prepare()
        application = SourcesApplication(
            parse_storage_url("SOURCES_DATABASE_URL", sources_database), bulk.EveryClaim()
        )
        engine = target.create_engine()
        try:
            yield application, engine
        finally:
            engine.dispose()
            application.close()


def read_model_rebuild_rate(kind: str, sources_database: str, events: int) -> float:
    """Events per second rebuilding the sources service's read models from its store.

    The projection reads the notifications straight from the store, as the raw read does.
    """
    with scratch_read_models(kind, sources_database) as (application, engine):
        projection = SourcesProjection(engine, application)
        projection.create_tables()
        began = time.perf_counter()
        projection.catch_up()
        return events / (time.perf_counter() - began)


def write_floor_rates(kind: str, sources_database: str) -> dict[str, float]:
    """Events per second for the least any sources read-model rebuild must do.

    Each of the first SAMPLE notifications is read raw, a submission's stored JSON is parsed
    with `json` alone (no domain event, no ORM; a value the store tags with its type is taken
    as its text), and its evidence row goes in with the database driver's own `executemany`,
    500 a transaction: once into a bare table of the same columns with no key or index, once
    into the evidence read model's own table, keyed by id and indexed for its queries. Both
    tables stay smaller than a full rebuild's, so these rates bound a full rebuild's from
    above.
    """
    with scratch_read_models(kind, sources_database) as (application, engine):
        metadata = MetaData()
        bare = Table(
            "bare_evidence",
            metadata,
            *(Column(column.name, column.type) for column in EVIDENCE.columns),
        )
        metadata.create_all(engine)
        EVIDENCE.create(engine)
        return {
            "bare_table_per_second": round(_driver_writes(application, engine, bare)),
            "read_model_table_per_second": round(_driver_writes(application, engine, EVIDENCE)),
        }


def _driver_writes(application: SourcesApplication, engine: Engine, table: Table) -> float:
    marker = "?" if engine.dialect.paramstyle == "qmark" else "%s"
    statement = (
        f"INSERT INTO {table.name} ({', '.join(SUBMITTED_COLUMNS)}) "
        f"VALUES ({', '.join([marker] * len(SUBMITTED_COLUMNS))})"
    )
    connection = engine.raw_connection()
    try:
        cursor = connection.cursor()
        began, after, count = time.perf_counter(), 0, 0
        while page := application.recorder.select_notifications(
            after, PAGE, stop=SAMPLE, inclusive_of_start=False
        ):
            after, count = page[-1].id, count + len(page)
            rows = [_floor_row(n) for n in page if n.topic == SUBMITTED]
            cursor.executemany(statement, rows)
            connection.commit()
        return count / (time.perf_counter() - began)
    finally:
        connection.close()


def _untagged(value: Any) -> Any:
    """A stored value as its text: the store tags UUIDs and datetimes with their type."""
    return value["_data_"] if isinstance(value, dict) and "_data_" in value else value


def _floor_row(notification: Notification) -> tuple[Any, ...]:
    """A submission's values for SUBMITTED_COLUMNS, in that order, from its stored JSON."""
    event = json.loads(notification.state)
    return (
        notification.originator_id.hex,
        _untagged(event["source_id"]),
        _untagged(event["claim_id"]),
        event["stance"],
        event["strength"],
        _untagged(event["published_at"]),
        event["url"],
        event["quote"],
        event["summary"],
        json.dumps([_untagged(parent) for parent in event["derived_from"]]),
        _untagged(event["timestamp"]),
        notification.id,
        notification.originator_version,
    )


def feed_read_rate(running: Services, head: int) -> tuple[float, list[bytes]]:
    """Events per second read from `GET /feed` and parsed, in the pages a rebuild reads,
    applying none, over the first SAMPLE events.

    No rebuild over the feed can be faster; its ratio to the raw read is the ceiling. The
    pages' bodies are returned for `check_rate`.
    """
    bodies: list[bytes] = []
    with httpx.Client(base_url=running.sources_url, timeout=600) as sources:
        began, after, end = time.perf_counter(), 0, min(head, SAMPLE)
        while after < end:
            limit = min(FEED_MAX_LIMIT, end - after)
            answer = sources.get("/feed", params={"after": after, "limit": limit})
            bodies.append(answer.raise_for_status().content)
            after = FeedPage.model_validate_json(bodies[-1]).next_after
        return after / (time.perf_counter() - began), bodies


def check_rate(bodies: list[bytes]) -> float:
    """Events per second parsed from feed pages already read and checked against their hashes.

    The work the claims projection does on every item before it applies anything, in one
    process with nothing fetched or stored: a floor under the cost of any rebuild.
    """
    began, events = time.perf_counter(), 0
    for body in bodies:
        items = FeedPage.model_validate_json(body).items
        for item in items:
            if item.metadata.get("hash") != event_hash(item):
                raise RuntimeError(f"feed item {item.position} does not match its hash")
        events += len(items)
    return events / (time.perf_counter() - began)


def rebuild(running: Services, head: int) -> dict[str, float]:
    """Time `POST /admin/rebuild` on the claims service (verify, drop, follow the whole feed);
    its answer says how long the verifying took."""
    with httpx.Client(base_url=running.claims_url, timeout=600) as claims:
        began = time.perf_counter()
        answer = claims.post("/admin/rebuild")
        answer.raise_for_status()
        seconds = time.perf_counter() - began
    return {
        "events": head,
        "seconds": round(seconds, 2),
        "per_second": round(head / seconds),
        "of_which_verify_seconds": round(answer.json()["verify_seconds"], 2),
    }


def run(kind: str, warmup: int, requests: int, sizes: list[int] = SIZES) -> dict[str, Any]:
    filled: dict[str, Any] = {}

    def fill(sources_database: str, claims_database: str) -> None:
        began = time.perf_counter()
        loaded = bulk.fill(sources_database, claims_database, sizes)
        filled.update(claims=loaded.claims, events=loaded.events)
        filled["seconds"] = time.perf_counter() - began

    with services(kind, before_start=fill) as running:
        head = filled["events"]
        sources_start = running.started_seconds["sources"]
        rebuilt = rebuild(running, head)
        with httpx.Client(base_url=running.claims_url, timeout=30) as claims:
            wait_followed(claims, head)
        timings = latencies(running, filled["claims"], warmup, requests)
        memory = {name: round(running.peak_rss_mib(name), 1) for name in running.processes}
        raw = raw_read_rate(running.sources_database)
        raw["read_models_per_second"] = round(
            read_model_rebuild_rate(kind, running.sources_database, head)
        )
        raw.update(write_floor_rates(kind, running.sources_database))
        feed_rate, bodies = feed_read_rate(running, head)
        raw["feed_per_second"] = round(feed_rate)
        raw["checked_per_second"] = round(check_rate(bodies))
    p50 = {name: statistics.median(values) for name, values in timings.items()}
    p99 = {name: percentile(values, 0.99) for name, values in timings.items()}
    replay_rate = head / (rebuilt["seconds"] - rebuilt["of_which_verify_seconds"])

    def sampled_ratio(rate: str, digits: int) -> float:
        """A ceiling measured on the first SAMPLE events, against the raw read of those."""
        return round(raw[rate] / raw["raw_sample_per_second"], digits)

    smallest, largest = str(min(sizes)), str(max(sizes))
    return {
        "events": head,
        "load_seconds": round(filled["seconds"], 1),
        "sources_start_seconds": round(sources_start, 1),
        "warmup_each": warmup,
        "requests_each": requests,
        "p50_ms": {name: round(value, 2) for name, value in p50.items()},
        "p99_ms": {name: round(value, 2) for name, value in p99.items()},
        "p50_ratio_largest_to_smallest": round(p50[largest] / p50[smallest], 2),
        "p50_ratio_smallest_to_health": round(p50[smallest] / p50["health"], 2),
        "peak_rss_mib": memory,
        "raw_read": raw,
        "rebuild": rebuilt,
        "rebuild_ratio_to_raw": round(rebuilt["per_second"] / raw["raw_per_second"], 3),
        "read_models_ratio_to_raw": round(raw["read_models_per_second"] / raw["raw_per_second"], 3),
        "decoded_ratio_to_raw": sampled_ratio("decoded_per_second", 2),
        "bare_table_ratio_to_raw": sampled_ratio("bare_table_per_second", 2),
        "read_model_table_ratio_to_raw": sampled_ratio("read_model_table_per_second", 2),
        "feed_ratio_to_raw": sampled_ratio("feed_per_second", 3),
        "checked_ratio_to_raw": sampled_ratio("checked_per_second", 2),
        "replay_ratio_to_feed": round(replay_rate / raw["feed_per_second"], 2),
    }
