"""Run every benchmark on SQLite, and on PostgreSQL when reachable; write docs/benchmarks.md.

    python -m bench [--quick] [--output docs/benchmarks.md] [--json results.json]

`--quick` shrinks every run (100,000 items become 5,000) to check the scripts, not the figures.
"""

import argparse
import json
import time
from pathlib import Path
from typing import Any

from bench import append, lag, verdicts
from bench.harness import postgres_reachable, services
from bench.machine import describe
from bench.report import render


def measure(kind: str, quick: bool) -> dict[str, Any]:
    began = time.perf_counter()
    results: dict[str, Any] = {}
    warmup = 1 if quick else 2
    with services(kind) as running:
        results["append"] = append.run(running, warmup, duration=2 if quick else 8)
        results["lag"] = lag.run(running, warmup, duration=2 if quick else 10)
        shared = round(lag.SHARE * results["append"]["evidence"]["per_second"])
        results["lag_share"] = lag.run(running, warmup, duration=2 if quick else 10, rate=shared)
    sizes = [10, 1_000, 5_000] if quick else verdicts.SIZES
    results["verdicts"] = verdicts.run(
        kind, warmup=20 if quick else 100, requests=100 if quick else 500, sizes=sizes
    )
    results["seconds"] = round(time.perf_counter() - began, 1)
    print(f"{kind}: {json.dumps(results)}", flush=True)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--output", type=Path, default=Path("docs/benchmarks.md"))
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    began = time.perf_counter()
    kinds = ["sqlite"] + (["postgresql"] if postgres_reachable() else [])
    runs = {kind: measure(kind, args.quick) for kind in kinds}
    total = time.perf_counter() - began
    report = {"machine": describe(), "runs": runs, "seconds": round(total, 1)}
    if args.json is not None:
        args.json.write_text(json.dumps(report, indent=2) + "\n")
    if not args.quick:
        args.output.write_text(render(report))
        print(f"wrote {args.output} after {total:.0f} s")


if __name__ == "__main__":
    main()
