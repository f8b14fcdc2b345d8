"""Follower lag: from an evidence POST returning to the claim's verdict reflecting it.

Evidence is posted open-loop at a fixed rate (each POST starts on schedule, whether or not the
ones before it have returned): RATE items per second, the issue's figure, then SHARE of the
append rate the same run measured, a load that means the same on a slower or faster machine.
For every WATCHED-th item, as soon as its POST returns, the client asks the claims service for
the verdict with `min_position` set to the item's feed position: the answer comes once the
verdict includes the item, so the time to it is the lag as a client sees it, including one
request's own latency.
"""

import asyncio
import json
import statistics
from typing import Any

from bench.append import evidence_body, prepare
from bench.harness import Connections, Request, Services, cpu_between, percentile

RATE = 200
SHARE = 0.5
WATCHED = 4


async def measure(running: Services, warmup: float, duration: float, rate: int) -> dict[str, Any]:
    ids = prepare(running)
    lags: list[float] = []
    posted: list[float] = []
    errors = 0
    sources, claims = Connections(running.sources_url), Connections(running.claims_url)
    loop = asyncio.get_running_loop()
    start = loop.time()
    measured_from = start + warmup
    total = int((warmup + duration) * rate)
    verdict_path = f"/claims/{ids['claim_id']}/verdict?min_position="

    async def one(n: int) -> None:
        nonlocal errors
        await asyncio.sleep(start + n / rate - loop.time())
        began = loop.time()
        body = json.dumps(evidence_body(ids, n)).encode()
        status, answer = await sources.send(Request("POST", "/evidence", body))
        returned = loop.time()
        if status != 201:
            errors += 1
            return
        if began >= measured_from:
            posted.append(returned - began)
        if n % WATCHED or began < measured_from:
            return
        position = json.loads(answer)["position"]
        status, _ = await claims.send(Request("GET", f"{verdict_path}{position}"))
        if status != 200:
            errors += 1
            return
        lags.append(loop.time() - returned)

    cpu: dict[str, float] = {}

    async def meter() -> None:
        """Each service's CPU use over the measured window, in cores."""
        names = {running.pid(name): name for name in running.processes}
        used = await cpu_between(names, measured_from, measured_from + duration)
        cpu.update({names[pid]: round(cores, 2) for pid, cores in used.items()})

    try:
        await asyncio.gather(meter(), *(one(n) for n in range(total)))
    finally:
        sources.close()
        claims.close()
    return {
        "rate_per_second": rate,
        "achieved_per_second": round(len(posted) / duration, 1),
        "warmup_seconds": warmup,
        "run_seconds": duration,
        "samples": len(lags),
        "errors": errors,
        "lag_p50_ms": round(statistics.median(lags) * 1000, 1),
        "lag_p99_ms": round(percentile(lags, 0.99) * 1000, 1),
        "lag_max_ms": round(max(lags) * 1000, 1),
        "post_p50_ms": round(statistics.median(posted) * 1000, 1),
        "cpu": cpu,
    }


def run(
    running: Services, warmup: float = 2, duration: float = 10, rate: int = RATE
) -> dict[str, Any]:
    return asyncio.run(measure(running, warmup, duration, rate))
