"""Follower lag: from an evidence POST returning to the claim's verdict reflecting it.

Evidence is posted open-loop at RATE items per second (each POST starts on schedule, whether
or not the ones before it have returned). For every WATCHED-th item, as soon as its POST
returns, the client asks the claims service for the verdict with `min_position` set to the
item's feed position: the answer comes once the verdict includes the item, so the time to
it is the lag as a client sees it, including one request's own latency.
"""

import asyncio
import statistics
from typing import Any

import httpx

from bench.append import evidence_body, prepare
from bench.harness import Services, percentile

RATE = 200
WATCHED = 4


async def measure(running: Services, warmup: float, duration: float) -> dict[str, Any]:
    ids = prepare(running)
    lags: list[float] = []
    posted: list[float] = []
    errors = 0
    limits = httpx.Limits(max_connections=256, max_keepalive_connections=256)
    async with (
        httpx.AsyncClient(base_url=running.sources_url, limits=limits, timeout=30) as sources,
        httpx.AsyncClient(base_url=running.claims_url, limits=limits, timeout=30) as claims,
    ):
        loop = asyncio.get_running_loop()
        start = loop.time()
        measured_from = start + warmup
        total = int((warmup + duration) * RATE)

        async def one(n: int) -> None:
            nonlocal errors
            await asyncio.sleep(start + n / RATE - loop.time())
            began = loop.time()
            answer = await sources.post("/evidence", json=evidence_body(ids, n))
            returned = loop.time()
            if answer.status_code != 201:
                errors += 1
                return
            if began >= measured_from:
                posted.append(returned - began)
            if n % WATCHED or began < measured_from:
                return
            verdict = await claims.get(
                f"/claims/{ids['claim_id']}/verdict",
                params={"min_position": answer.json()["position"]},
            )
            if verdict.status_code != 200:
                errors += 1
                return
            lags.append(loop.time() - returned)

        await asyncio.gather(*(one(n) for n in range(total)))
        achieved = len(posted) / duration
    return {
        "rate_per_second": RATE,
        "achieved_per_second": round(achieved, 1),
        "warmup_seconds": warmup,
        "run_seconds": duration,
        "samples": len(lags),
        "errors": errors,
        "lag_p50_ms": round(statistics.median(lags) * 1000, 1),
        "lag_p99_ms": round(percentile(lags, 0.99) * 1000, 1),
        "lag_max_ms": round(max(lags) * 1000, 1),
        "post_p50_ms": round(statistics.median(posted) * 1000, 1),
    }


def run(running: Services, warmup: float = 2, duration: float = 10) -> dict[str, Any]:
    return asyncio.run(measure(running, warmup, duration))
