"""Verdict latency by claim size, rebuild rate against raw reads, and memory, in one run.

Three claims get 10, 1,000 and 100,000 evidence items (recorded before the services start,
see bench.bulk). The claims service's first follow of the whole feed is timed from its
launch; once it has caught up, its `POST /admin/rebuild` is timed on the otherwise idle
service. Then verdicts are asked at random `at` and `known_at`, round-robin over the three
claims and `GET /health`, so that all four see the same machine conditions. Then the sources
rebuild, by its own `POST /admin/rebuild`, which fills its read models from the store inside
its database; against reading the same notifications raw, decoded, over `GET /feed`, and
parsed and hash-checked with nothing stored.
"""

import random
import statistics
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from eventsourcing.persistence import ApplicationRecorder

from bench import bulk
from bench.harness import Services, percentile, services
from services.sources.application import SourcesApplication
from shared.chain import event_hash
from shared.feed import FEED_MAX_LIMIT, FeedPage
from shared.storage import parse_storage_url

SIZES = [10, 1_000, 100_000]
PAGE = 500
SAMPLE = 20_000
"""The ceilings that only explain the rebuild rates (decoding, the feed, hash checks) are
measured on the first this many events: a rate, not a total."""


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


def rebuild(base_url: str, head: int) -> dict[str, float]:
    """Time a service's `POST /admin/rebuild` (verify, then drop and refill the read models);
    its answer says how long each step took."""
    with httpx.Client(base_url=base_url, timeout=600) as client:
        began = time.perf_counter()
        answer = client.post("/admin/rebuild")
        answer.raise_for_status()
        seconds = time.perf_counter() - began
    timings = answer.json()
    return {
        "events": head,
        "seconds": round(seconds, 2),
        "per_second": round(head / seconds),
        "of_which_verify_seconds": round(timings["verify_seconds"], 2),
        "of_which_rebuild_seconds": round(timings["rebuild_seconds"], 2),
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
        with httpx.Client(base_url=running.claims_url, timeout=30) as claims:
            began = time.perf_counter()
            wait_followed(claims, head)
            first_follow = running.started_seconds["claims"] + time.perf_counter() - began
            rebuilt = rebuild(running.claims_url, head)
            wait_followed(claims, head)
        timings = latencies(running, filled["claims"], warmup, requests)
        memory = {name: round(running.peak_rss_mib(name), 1) for name in running.processes}
        raw = raw_read_rate(running.sources_database)
        sources_rebuilt = rebuild(running.sources_url, head)
        feed_rate, bodies = feed_read_rate(running, head)
        raw["feed_per_second"] = round(feed_rate)
        raw["checked_per_second"] = round(check_rate(bodies))
    p50 = {name: statistics.median(values) for name, values in timings.items()}
    p99 = {name: percentile(values, 0.99) for name, values in timings.items()}
    replay_rate = head / (rebuilt["seconds"] - rebuilt["of_which_verify_seconds"])
    read_models_rate = head / sources_rebuilt["of_which_rebuild_seconds"]

    def sampled_ratio(rate: str, digits: int) -> float:
        """A ceiling measured on the first SAMPLE events, against the raw read of those."""
        return round(raw[rate] / raw["raw_sample_per_second"], digits)

    smallest, largest = str(min(sizes)), str(max(sizes))
    return {
        "events": head,
        "load_seconds": round(filled["seconds"], 1),
        "sources_start_seconds": round(sources_start, 1),
        "first_follow_seconds": round(first_follow, 1),
        "first_follow_per_second": round(head / first_follow),
        "warmup_each": warmup,
        "requests_each": requests,
        "p50_ms": {name: round(value, 2) for name, value in p50.items()},
        "p99_ms": {name: round(value, 2) for name, value in p99.items()},
        "p50_ratio_largest_to_smallest": round(p50[largest] / p50[smallest], 2),
        "p50_ratio_smallest_to_health": round(p50[smallest] / p50["health"], 2),
        "peak_rss_mib": memory,
        "raw_read": raw,
        "rebuild": rebuilt,
        "sources_rebuild": sources_rebuilt,
        "rebuild_ratio_to_raw": round(rebuilt["per_second"] / raw["raw_per_second"], 3),
        "read_models_per_second": round(read_models_rate),
        "read_models_ratio_to_raw": round(read_models_rate / raw["raw_per_second"], 3),
        "sources_rebuild_ratio_to_raw": round(
            sources_rebuilt["per_second"] / raw["raw_per_second"], 3
        ),
        "decoded_ratio_to_raw": sampled_ratio("decoded_per_second", 2),
        "feed_ratio_to_raw": sampled_ratio("feed_per_second", 3),
        "checked_ratio_to_raw": sampled_ratio("checked_per_second", 2),
        "replay_ratio_to_feed": round(replay_rate / raw["feed_per_second"], 2),
    }
