"""Verdict-at-date latency on a small and a large claim, measured in one run.

Starts both services on SQLite in a temporary folder, loads one claim with SMALL evidence items
and one with LARGE over HTTP, then asks for verdicts at random `at` and `known_at`, alternating
between the claims so that both see the same machine conditions. `GET /health` is the baseline.

    .venv/bin/python bench/verdict_latency.py [--small 10] [--large 10000] [--requests 2000]
"""

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx

SOURCES_PORT, CLAIMS_PORT = 18101, 18100


def start(tmp: Path) -> list[subprocess.Popen[bytes]]:
    env = {
        **os.environ,
        "SOURCES_DATABASE_URL": f"sqlite:///{tmp / 'sources.db'}",
        "CLAIMS_DATABASE_URL": f"sqlite:///{tmp / 'claims.db'}",
        "SOURCES_URL": f"http://127.0.0.1:{SOURCES_PORT}",
        "CLAIMS_URL": f"http://127.0.0.1:{CLAIMS_PORT}",
    }
    processes = [
        subprocess.Popen(
            [sys.executable, "-m", "shared.cli", "serve", "--service", name, "--port", str(port)],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for name, port in (("sources", SOURCES_PORT), ("claims", CLAIMS_PORT))
    ]
    for port in (SOURCES_PORT, CLAIMS_PORT):
        for _ in range(200):
            try:
                httpx.get(f"http://127.0.0.1:{port}/health", timeout=1)
                break
            except httpx.HTTPError:
                time.sleep(0.1)
    return processes


def load(claims: httpx.Client, sources: httpx.Client, count: int, rng: random.Random) -> str:
    claim = claims.post("/claims", json={"text": f"claim with {count} items"}).json()["id"]
    source_ids = []
    for n in range(min(50, count)):
        source = sources.post("/sources", json={"name": f"s{n}", "kind": "bench"}).json()["id"]
        sources.post(
            f"/sources/{source}/ratings", json={"reliability": "ABCDEF"[n % 6], "rationale": "b"}
        )
        source_ids.append(source)
    day0 = datetime(2024, 1, 1, tzinfo=UTC)
    for n in range(count):
        sources.post(
            "/evidence",
            json={
                "source_id": rng.choice(source_ids),
                "claim_id": claim,
                "stance": rng.choice(["supports", "supports", "refutes", "neutral"]),
                "strength": rng.choice(["weak", "moderate", "strong"]),
                "published_at": (
                    day0 + timedelta(minutes=rng.randrange(0, 60 * 24 * 365))
                ).isoformat(),
                "summary": f"item {n}",
            },
        ).raise_for_status()
    return claim


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small", type=int, default=10)
    parser.add_argument("--large", type=int, default=10_000)
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--warmup", type=int, default=200)
    args = parser.parse_args()
    rng = random.Random(7)
    with tempfile.TemporaryDirectory() as folder:
        processes = start(Path(folder))
        try:
            claims = httpx.Client(base_url=f"http://127.0.0.1:{CLAIMS_PORT}", timeout=30)
            sources = httpx.Client(base_url=f"http://127.0.0.1:{SOURCES_PORT}", timeout=30)
            started = time.perf_counter()
            targets = {
                "small": load(claims, sources, args.small, rng),
                "large": load(claims, sources, args.large, rng),
            }
            load_seconds = time.perf_counter() - started
            head = sources.get("/feed", params={"limit": 1}).json()["head"]
            claims.get(f"/claims/{targets['large']}/verdict", params={"min_position": head})
            registered = {
                name: datetime.fromisoformat(claims.get(f"/claims/{claim}").json()["registered_at"])
                for name, claim in targets.items()
            }
            now = datetime.now(UTC)
            timings: dict[str, list[float]] = {"small": [], "large": [], "health": []}
            for n in range(args.warmup + args.requests):
                for name in ("small", "large", "health"):
                    if name == "health":
                        path, params = "/health", {}
                    else:
                        at = datetime(2024, 1, 1, tzinfo=UTC) + timedelta(days=rng.uniform(0, 366))
                        known = registered[name] + (now - registered[name]) * rng.random()
                        path = f"/claims/{targets[name]}/verdict"
                        params = {"at": at.isoformat(), "known_at": known.isoformat()}
                    begin = time.perf_counter()
                    claims.get(path, params=params).raise_for_status()
                    if n >= args.warmup:
                        timings[name].append((time.perf_counter() - begin) * 1000)
        finally:
            for process in processes:
                process.terminate()
                process.wait(timeout=20)
    result = {
        "items": {"small": args.small, "large": args.large},
        "load_seconds": round(load_seconds, 1),
        "requests_each": args.requests,
        "warmup_each": args.warmup,
        "p50_ms": {name: round(statistics.median(values), 3) for name, values in timings.items()},
        "p99_ms": {name: round(percentile(values, 0.99), 3) for name, values in timings.items()},
    }
    result["p50_ratio_large_to_small"] = round(
        result["p50_ms"]["large"] / result["p50_ms"]["small"], 3
    )
    result["p50_ratio_small_to_health"] = round(
        result["p50_ms"]["small"] / result["p50_ms"]["health"], 3
    )
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
