"""Turn one `python -m bench` run into docs/benchmarks.md."""

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

HISTORY = Path(__file__).with_name("history.md")


def verdict_mark(holds: bool) -> str:
    return "meets the target" if holds else "**misses the target**"


def render(report: dict[str, Any]) -> str:
    machine = report["machine"]
    runs: dict[str, dict[str, Any]] = report["runs"]
    kinds = list(runs)
    lines = [
        "# Benchmarks",
        "",
        "Written by `make bench` (`python -m bench`) on "
        f"{datetime.now(UTC).strftime('%Y-%m-%d %H:%M')} UTC, in {report['seconds']:.0f} s. "
        "Every figure is a ratio against a baseline measured in the same run, because the "
        "absolute times move with whatever else the machine is doing.",
        "",
        "## Machine",
        "",
        "| | |",
        "|---|---|",
        f"| cores | {machine['cores']} |",
        f"| CPU | {machine['cpu']} |",
        f"| memory | {machine['memory_gib']} GiB |",
        f"| system | {machine['system']} |",
        f"| Python | {machine['python']} |",
        f"| SQLite | {machine['sqlite']} |",
        f"| PostgreSQL | {machine['postgresql'] or 'not reachable: not measured'} |",
        "",
        "Both services run as uvicorn processes on loopback, each on a fresh store: a SQLite "
        "file, or a schema of its own in PostgreSQL. The load comes from the benchmark process "
        "on the same machine.",
        "",
        "## Summary",
        "",
        "| figure | target | " + " | ".join(kinds) + " |",
        "|---|---|" + "---|" * len(kinds),
    ]

    def row(name: str, target: str, cell: Any) -> None:
        lines.append(f"| {name} | {target} | " + " | ".join(cell(runs[k]) for k in kinds) + " |")

    row(
        "1. evidence appends / bare aggregate saves",
        ">= 0.7",
        lambda r: f"{r['append']['ratio']:.2f} ({verdict_mark(r['append']['ratio'] >= 0.7)})",
    )
    row(
        "2. verdict p50 at 100,000 items / at 10",
        "<= 2",
        lambda r: (
            f"{r['verdicts']['p50_ratio_largest_to_smallest']:.2f} "
            f"({verdict_mark(r['verdicts']['p50_ratio_largest_to_smallest'] <= 2)})"
        ),
    )
    row(
        "2. verdict p50 at 10 items / `GET /health`",
        "reported",
        lambda r: f"{r['verdicts']['p50_ratio_smallest_to_health']:.2f}",
    )
    row(
        "3. claims rebuild rate / raw notification read rate",
        ">= 0.3",
        lambda r: (
            f"{r['verdicts']['rebuild_ratio_to_raw']:.3f} "
            f"({verdict_mark(r['verdicts']['rebuild_ratio_to_raw'] >= 0.3)})"
        ),
    )
    row(
        "3. sources read models rebuilt (filled in the database) / raw notification read rate",
        ">= 0.3",
        lambda r: (
            f"{r['verdicts']['read_models_ratio_to_raw']:.3f} "
            f"({verdict_mark(r['verdicts']['read_models_ratio_to_raw'] >= 0.3)})"
        ),
    )
    row(
        "3. sources rebuild with its log verified first / raw notification read rate",
        "reported",
        lambda r: f"{r['verdicts']['sources_rebuild_ratio_to_raw']:.3f}",
    )
    row(
        "3. reading the feed over HTTP, on the first events / raw read of them (no rebuild "
        "over the feed goes faster)",
        "reported",
        lambda r: f"{r['verdicts']['feed_ratio_to_raw']:.3f}",
    )
    row(
        "3. parsing feed pages and checking each item's hash, on the first events / raw read "
        "of them (nothing fetched or stored)",
        "reported",
        lambda r: f"{r['verdicts']['checked_ratio_to_raw']:.2f}",
    )
    row(
        "4. follower lag p99 at 200 evidence/s",
        "< 1,000 ms",
        lambda r: (
            f"{r['lag']['lag_p99_ms']:.0f} ms ({verdict_mark(r['lag']['lag_p99_ms'] < 1000)})"
        ),
    )
    row(
        "4. follower lag p99 at half the evidence append rate of figure 1",
        "reported",
        lambda r: (
            f"{r['lag_share']['lag_p99_ms']:.0f} ms at {r['lag_share']['rate_per_second']} "
            "evidence/s"
        ),
    )
    row(
        "5. peak RSS, sources / claims, after the 100,000-item claim",
        "reported",
        lambda r: (
            f"{r['verdicts']['peak_rss_mib']['sources']:.0f} MiB / "
            f"{r['verdicts']['peak_rss_mib']['claims']:.0f} MiB"
        ),
    )
    for kind in kinds:
        lines += details(kind, runs[kind])
    if HISTORY.exists():
        lines += ["", HISTORY.read_text().strip()]
    return "\n".join(lines) + "\n"


def details(kind: str, run: dict[str, Any]) -> list[str]:
    append, lag, verdicts = run["append"], run["lag"], run["verdicts"]
    shared = run["lag_share"]
    sizes = [name for name in verdicts["p50_ms"] if name != "health"]
    read = verdicts["raw_read"]
    sample = read["sample"]
    sources = verdicts["sources_rebuild"]
    load = lag["rate_per_second"] / append["evidence"]["per_second"]
    baseline = append["baseline"]
    baseline_cpu_ms = baseline["cpu"]["sources"] * 1000 / baseline["per_second"]
    lines = [
        "",
        f"## {kind}",
        "",
        f"### 1. Evidence append throughput ({append['concurrency']} connections)",
        "",
        f"A closed loop: {append['concurrency']} kept-alive connections, each sending its next "
        "request when the last is answered. The baseline is a bare FastAPI endpoint served by "
        "the same uvicorn process as the sources service, saving one new eventsourcing "
        "aggregate (one field) per POST on the same database. The two alternate in "
        f"{append['phases']} phases (baseline, evidence, evidence, baseline, twice over), each "
        f"{append['phase_warmup_seconds']:g} s unmeasured then {append['phase_seconds']:g} s "
        f"measured ({append['warmup_seconds']:g} s before the first), so that both see the "
        "machine early and late alike; each rate is over all of its phases, "
        f"{append['run_seconds']:g} s measured per target. The no-op route runs first, "
        f"{append['phase_warmup_seconds']:g} s then {append['noop_seconds']:g} s. The claims "
        "service follows the feed throughout, as in production. CPU is the process's CPU "
        "seconds per second of the run (1.0 is one core).",
        "",
        "| target | requests/s | p50 | p99 | sources CPU | claims CPU |",
        "|---|---|---|---|---|---|",
    ]
    for label, key in (
        ("`GET /baseline/noop` (what the driver can push)", "driver_noop"),
        ("baseline", "baseline"),
        ("`POST /evidence`", "evidence"),
    ):
        figures = append[key]
        lines.append(
            f"| {label} | {figures['per_second']:.0f} | {figures['p50_ms']:.1f} ms | "
            f"{figures['p99_ms']:.1f} ms | {figures['cpu']['sources']:.2f} | "
            f"{figures['cpu']['claims']:.2f} |"
        )
    pairs = append["pair_ratios"]
    lines += [
        "",
        f"Evidence / baseline: **{append['ratio']:.2f}** (target at least 0.7). The four "
        "pairs of phases (a baseline and an evidence phase side by side) give "
        f"{', '.join(f'{ratio:.2f}' for ratio in pairs)}, mostly the machine's noise. The "
        "driver answers "
        f"{append['driver_headroom']:.1f} times the baseline's rate on a no-op route, and the "
        "sources process is near one core during the baseline, so the baseline figure is the "
        "server's limit, not the driver's.",
        "",
        "### 2. Verdict at date latency",
        "",
        f"{verdicts['events']:,} events in the sources store. One client, one request at a "
        f"time, round-robin over the claims and `GET /health`; {verdicts['warmup_each']} "
        f"warm-up then {verdicts['requests_each']} measured requests each, with `at` random in "
        "2024 and `known_at` random between the claim's registration and now.",
        "",
        "| target | p50 | p99 |",
        "|---|---|---|",
    ]
    for name in sizes:
        lines.append(
            f"| verdict, claim with {int(name):,} items | {verdicts['p50_ms'][name]:.2f} ms | "
            f"{verdicts['p99_ms'][name]:.2f} ms |"
        )
    lines += [
        f"| `GET /health` (baseline) | {verdicts['p50_ms']['health']:.2f} ms | "
        f"{verdicts['p99_ms']['health']:.2f} ms |",
        "",
        f"p50 at {int(sizes[-1]):,} / p50 at {int(sizes[0]):,}: "
        f"**{verdicts['p50_ratio_largest_to_smallest']:.2f}** (target at most 2). "
        f"p50 at {int(sizes[0]):,} / health: {verdicts['p50_ratio_smallest_to_health']:.2f}.",
        "",
        "### 3. Projection rebuild rate",
        "",
        "Two projections are rebuilt, each by its service's own `POST /admin/rebuild`, which "
        "first verifies the logs while reads still answer, then drops and refills the read "
        "models; its answer gives the time of each step. The sources service fills its read "
        "models from the events inside its own database: one `INSERT ... SELECT` turns every "
        "stored submission into its evidence row, another every idempotency key into its "
        "record, and the few other events (sources, ratings, retractions, corrections) are "
        "applied one by one, all in one transaction, with the tables' indexes built once "
        "the rows are in "
        f"({sources['of_which_rebuild_seconds']:.1f} s after "
        f"{sources['of_which_verify_seconds']:.1f} s of verifying). "
        "The claims service verifies both services' logs and the sources log against what it "
        "last applied "
        f"({verdicts['rebuild']['of_which_verify_seconds']:.1f} s), "
        "drops its read models, follows the whole feed again over HTTP, 1,000 items a "
        "page (the feed's largest, as following takes too), and only then builds the indexes "
        "that serve readers alone. It is "
        "asked once the claims service, started on the filled stores, has followed the whole "
        f"feed a first time ({verdicts['first_follow_seconds']:.1f} s from its launch, "
        f"{verdicts['first_follow_per_second']:,} events/s), so that nothing else runs "
        "beside it. The raw "
        "rate reads the same notifications from the sources store in pages of 500, in the "
        "benchmark process, without decoding them; decoded adds turning each into its domain "
        "event. The ceilings that only explain the claims rebuild's rate (decoding, the feed, "
        f"hash checks) are measured on the first {sample:,} events and compared with the raw "
        "read of those same events "
        f"({verdicts['raw_read']['raw_sample_per_second']:,} events/s).",
        "",
        "| what | events | events/s |",
        "|---|---|---|",
        f"| raw notification read | {verdicts['raw_read']['events']:,} | "
        f"{verdicts['raw_read']['raw_per_second']:,} |",
        f"| read and decoded | {sample:,} | {verdicts['raw_read']['decoded_per_second']:,} |",
        f"| `GET /feed` over HTTP, parsed, nothing applied | {sample:,} | "
        f"{verdicts['raw_read']['feed_per_second']:,} |",
        f"| feed pages already read, parsed and hash-checked, in one process, nothing stored | "
        f"{sample:,} | {verdicts['raw_read']['checked_per_second']:,} |",
        f"| sources read models rebuilt | {verdicts['events']:,} | "
        f"{verdicts['read_models_per_second']:,} |",
        f"| sources rebuild, verifying included | {sources['events']:,} | "
        f"{sources['per_second']:,} |",
        f"| claims service's first follow, from its launch | {verdicts['events']:,} | "
        f"{verdicts['first_follow_per_second']:,} |",
        f"| claims rebuild, verifying included | {verdicts['rebuild']['events']:,} | "
        f"{verdicts['rebuild']['per_second']:,} |",
        "",
        "Sources read models / raw read: "
        f"**{verdicts['read_models_ratio_to_raw']:.3f}**; claims rebuild / raw read: "
        f"**{verdicts['rebuild_ratio_to_raw']:.3f}** (target at least 0.3 for each). "
        "With its log verified first, the sources rebuild runs at "
        f"{verdicts['sources_rebuild_ratio_to_raw']:.3f} of the raw read. "
        "Reading and decoding alone, applying nothing, reaches "
        f"{verdicts['decoded_ratio_to_raw']:.2f} of the raw read; reading the feed alone "
        f"reaches {verdicts['feed_ratio_to_raw']:.3f} of it. The "
        "claims service can only rebuild from the sources service's feed, so no rebuild can "
        "pass that; the rebuild's follow of the feed, after verifying, runs at "
        f"{verdicts['replay_ratio_to_feed']:.2f} of it. Before "
        "it applies an item, the claims projection parses it and checks it against its hash; "
        f"that alone, on pages already read, runs at {verdicts['checked_ratio_to_raw']:.2f} of "
        "the raw read. "
        "Filling the stores took "
        f"{verdicts['load_seconds']:.1f} s; the sources service "
        f"started in {verdicts['sources_start_seconds']:.1f} s, filling its own read models "
        "from the events on the way.",
        "",
        "### 4. Follower lag",
        "",
        f"Open loop: a POST starts every {1000 / lag['rate_per_second']:.0f} ms whatever the "
        f"others are doing; {lag['warmup_seconds']:g} s warm-up then {lag['run_seconds']:g} s "
        f"measured ({lag['achieved_per_second']:.0f} evidence/s achieved). For every fourth "
        "item, the verdict is asked with `min_position` set to the item's position as soon as "
        "its POST returns; the lag is the time until that verdict answers. The rate asked is "
        f"{load:.2f} of the evidence append rate measured in section 1 on the same machine: "
        "from about 1 on, POSTs arrive faster than they are answered and queue, and the "
        "feed's reads, though they have threads of their own, share the CPU, the event loop "
        "and the interpreter lock with them.",
        "",
        "| rate | samples | p50 | p99 | max | POST p50 | errors | sources CPU | claims CPU |",
        "|---|---|---|---|---|---|---|---|---|",
        *(lag_row(measured) for measured in (lag, shared)),
        "",
        f"The second row asks half the append rate of section 1 ({shared['rate_per_second']} "
        "evidence/s), measured the same way right after the first: a load that means the "
        "same on any machine, where 200 evidence/s is a different share of what each machine "
        "can take.",
        "",
        f"How busy the sources process was at {lag['rate_per_second']} evidence/s: it used "
        f"{lag['cpu']['sources'] * 1000 / lag['achieved_per_second']:.1f} ms of CPU per "
        "evidence item, the feed pages it served the claims follower included. The bare "
        f"baseline of section 1 used {baseline_cpu_ms:.1f} ms per save at its full rate, so it "
        f"alone would need about {baseline_cpu_ms * lag['rate_per_second'] / 1000:.2f} of a "
        "core at this rate; the process's Python code runs on one core at a time, under the "
        "interpreter lock. The claims process's CPU includes the verdict reads that measure "
        "the lag.",
        "",
        "### 5. Memory",
        "",
        f"Peak resident set (VmHWM) after the {int(sizes[-1]):,}-item claim was loaded and "
        f"queried: sources {verdicts['peak_rss_mib']['sources']:.0f} MiB, claims "
        f"{verdicts['peak_rss_mib']['claims']:.0f} MiB.",
    ]
    return lines


def lag_row(lag: dict[str, Any]) -> str:
    """One follower-lag run as a row of section 4's table."""
    return (
        f"| {lag['rate_per_second']}/s ({lag['achieved_per_second']:.0f} achieved) | "
        f"{lag['samples']} | {lag['lag_p50_ms']:.0f} ms | **{lag['lag_p99_ms']:.0f} ms** | "
        f"{lag['lag_max_ms']:.0f} ms | {lag['post_p50_ms']:.0f} ms | {lag['errors']} | "
        f"{lag['cpu']['sources']:.2f} | {lag['cpu']['claims']:.2f} |"
    )
