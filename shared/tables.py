"""Readable terminal tables for verdicts, timelines and histories."""

from collections.abc import Mapping
from typing import Any

from rich.table import Table

from shared.timeaxes import format_instant, parse_instant


def shortened(text: str, width: int) -> str:
    """`text` cut to `width` characters, the cut marked with an ellipsis."""
    return text if len(text) <= width else f"{text[: width - 1]}\u2026"


def _when(value: str) -> str:
    return format_instant(parse_instant(value)).replace("T", " ").removesuffix("Z")[:16] + "Z"


def _percent(probability: float) -> str:
    return f"{probability * 100:.1f}%"


def timeline_table(timeline: Mapping[str, Any], labels: Mapping[str, str], title: str) -> Table:
    """The change points over valid time, with the evidence that moved the verdict at each."""
    table = Table(title=title, title_justify="left")
    for column in ("at (UTC)", "probability", "status", "for/against"):
        table.add_column(column, no_wrap=True)
    table.add_column("evidence that moved it")
    for point in timeline["points"]:
        moved = [f"+ {labels.get(item, item)}" for item in point["published"]]
        moved += [f"- {labels.get(item, item)} (retracted)" for item in point["retracted"]]
        table.add_row(
            _when(point["at"]),
            f"{_percent(point['probability'])} {point['likelihood']}",
            point["status"],
            f"{point['supporting_origins']}/{point['refuting_origins']}",
            "\n".join(moved),
        )
    basis = timeline["basis"]
    table.caption = f"as known at {basis['known_at']} (sources feed position {basis['position']})"
    return table


def verdict_table(verdict: Mapping[str, Any], labels: Mapping[str, str]) -> Table:
    """One verdict with the evidence that decides it, its ruling and its basis."""
    basis = verdict["basis"]
    table = Table(
        title=f"Verdict at {basis['at']}, as known at {basis['known_at']}", title_justify="left"
    )
    table.add_column("field", no_wrap=True)
    table.add_column("value")
    table.add_row("status", verdict["status"])
    table.add_row("probability", _percent(verdict["probability"]))
    table.add_row("likelihood", verdict["likelihood"])
    table.add_row(
        "origins",
        f"{verdict['supporting_origins']} supporting, {verdict['refuting_origins']} refuting",
    )
    for item in verdict["evidence"]["items"]:
        label = labels.get(item["evidence_id"], item["evidence_id"])
        table.add_row(
            "  counted",
            f"{label}: {item['stance']}, {item['strength']}, {item['reliability']}-rated, "
            f"weight {item['weight']}",
        )
    ruling = verdict["ruling"]
    table.add_row(
        "ruling",
        f"{ruling['status']} from {_when(ruling['effective_at'])}: {ruling['rationale']}"
        if ruling
        else "none",
    )
    table.add_row("model", verdict["model"])
    table.add_row("basis", f"sources feed position {basis['position']}")
    return table


def history_table(history: Mapping[str, Any]) -> Table:
    """Every recorded event that shaped the claim, in recorded order, each with its recording
    time whole, as `--known-at` takes it."""
    table = Table(title="History, in recorded order", title_justify="left")
    for column in ("recorded at", "service", "event", "of", "valid time (UTC)", "actor"):
        table.add_column(column, no_wrap=True)
    table.add_column("data")
    for event in history["events"]:
        gist = _gist(event["data"])
        table.add_row(
            format_instant(parse_instant(event["recorded_at"])),
            event["service"],
            event["type"],
            str(event["stream_id"])[:8],
            _when(event["at"]) if event["at"] else "",
            str(event["metadata"].get("actor", "")),
            shortened(gist, 80),
        )
    basis = history["basis"]
    table.caption = (
        f"as known at {basis['known_at']} (sources feed position {basis['position']}); "
        "of: the start of the id of the claim, source or evidence item"
    )
    return table


def _gist(data: Mapping[str, Any]) -> str:
    """What an event recorded, in a line: a correction's changes, a rating's or a ruling's
    grade and rationale, or the text, name or reason it carries."""
    if "changes" in data:
        changes = ", ".join(f"{name} = {value}" for name, value in data["changes"].items())
        return f"{changes} ({data.get('reason', '')})"
    for grade in ("reliability", "status"):
        if grade in data:
            return f"{data[grade]}: {data.get('rationale', '')}"
    return str(
        data.get("summary") or data.get("text") or data.get("name") or data.get("reason") or ""
    )
