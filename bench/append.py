"""Evidence append throughput over HTTP against a bare endpoint saving one aggregate."""

import asyncio
import json
import statistics
from typing import Any

import httpx

from bench.harness import Load, Request, Services, combined, drive, percentile

CONCURRENCY = 16
PHASES = ("baseline", "evidence", "evidence", "baseline") * 2
"""The order of the measured phases: each target is measured as often early as late, so a
machine that slows or speeds up during the run moves both alike."""
PHASE_WARMUP_SECONDS = 0.5
NOOP_SECONDS = 3.0
"""The no-op route only shows that the driver outpaces the baseline: a short run will do."""


def prepare(running: Services) -> dict[str, str]:
    """One claim and one rated source to post evidence about."""
    with (
        httpx.Client(base_url=running.claims_url, timeout=30) as claims,
        httpx.Client(base_url=running.sources_url, timeout=30) as sources,
    ):
        claim = claims.post("/claims", json={"text": "append benchmark"}).json()["id"]
        source = sources.post("/sources", json={"name": "wire", "kind": "agency"}).json()["id"]
        sources.post(
            f"/sources/{source}/ratings", json={"reliability": "B", "rationale": "bench"}
        ).raise_for_status()
    return {"claim_id": claim, "source_id": source}


def evidence_body(ids: dict[str, str], n: int) -> dict[str, Any]:
    return {
        **ids,
        "stance": ("supports", "refutes", "neutral")[n % 3],
        "strength": ("weak", "moderate", "strong")[n % 3],
        "published_at": f"2024-01-{1 + n % 28:02d}T{n % 24:02d}:00:00Z",
        "summary": f"benchmark item {n}",
    }


def summary(load: Load, running: Services) -> dict[str, Any]:
    return {
        "cpu": {name: round(load.cpu[running.pid(name)], 2) for name in running.processes},
        "per_second": round(load.rate, 1),
        "requests": load.requests,
        "errors": load.errors,
        "p50_ms": round(statistics.median(load.latencies_ms), 2),
        "p99_ms": round(percentile(load.latencies_ms, 0.99), 2),
    }


async def measure(running: Services, warmup: float, duration: float) -> dict[str, Any]:
    """`duration` is the measured time of each target, split over its phases."""
    ids = prepare(running)

    def post_evidence(n: int) -> Request:
        return Request("POST", "/evidence", json.dumps(evidence_body(ids, n)).encode())

    def post_note(n: int) -> Request:
        return Request("POST", "/baseline/notes", json.dumps({"text": f"item {n}"}).encode())

    def noop(n: int) -> Request:
        return Request("GET", "/baseline/noop")

    url = running.sources_url
    watch = tuple(process.pid for process in running.processes.values())
    driver = await drive(url, noop, CONCURRENCY, PHASE_WARMUP_SECONDS, NOOP_SECONDS, watch)
    targets = {"baseline": post_note, "evidence": post_evidence}
    phase_seconds = duration / PHASES.count("evidence")
    loads: list[tuple[str, Load]] = []
    for n, name in enumerate(PHASES):
        phase_warmup = warmup if n == 0 else PHASE_WARMUP_SECONDS
        load = await drive(url, targets[name], CONCURRENCY, phase_warmup, phase_seconds, watch)
        loads.append((name, load))
    baseline = combined([load for name, load in loads if name == "baseline"])
    evidence = combined([load for name, load in loads if name == "evidence"])
    pairs = [dict(loads[n : n + 2]) for n in range(0, len(loads), 2)]
    return {
        "concurrency": CONCURRENCY,
        "warmup_seconds": warmup,
        "run_seconds": duration,
        "phases": len(PHASES),
        "phase_warmup_seconds": PHASE_WARMUP_SECONDS,
        "noop_seconds": NOOP_SECONDS,
        "phase_seconds": phase_seconds,
        "driver_noop": summary(driver, running),
        "baseline": summary(baseline, running),
        "evidence": summary(evidence, running),
        "ratio": round(evidence.rate / baseline.rate, 3),
        "pair_ratios": [round(pair["evidence"].rate / pair["baseline"].rate, 2) for pair in pairs],
        "driver_headroom": round(driver.rate / baseline.rate, 2),
    }


def run(running: Services, warmup: float = 3, duration: float = 10) -> dict[str, Any]:
    return asyncio.run(measure(running, warmup, duration))
