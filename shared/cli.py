"""The `factcheck` command line: run the services, load a scenario, ask them questions."""

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer
from fastapi import FastAPI
from rich.console import Console
from rich.progress import Progress
from rich.table import Table

from services.claims.replay import replay_claims
from shared.auth import ROLES, digest, key_name_fault, new_key
from shared.chain import Verification, hash_in_page, witness_fault
from shared.chain import verify as verify_chain
from shared.client import FactcheckClient, ServiceError
from shared.feed import FeedItem
from shared.scenario import (
    Loaded,
    Scenario,
    ScenarioConflict,
    load,
    read_scenario,
    writes_needed,
)
from shared.schemas import DIGITS
from shared.server import serve as serve_app
from shared.settings import (
    DEFAULT_CLAIMS_URL,
    DEFAULT_SOURCES_URL,
    ClaimsSettings,
    SettingError,
    SourcesSettings,
    service_url,
)
from shared.storage import StorageConfigError
from shared.tables import history_table, shortened, timeline_table, verdict_table
from shared.timeaxes import TimeParseError, format_instant, is_today, parse_instant

app = typer.Typer(
    help="factcheck: event-sourced claims, evidence and verdicts.", no_args_is_help=True
)
console = Console(width=None if sys.stdout.isatty() else 120)


def _checked_url(name: str) -> Callable[[str], str]:
    """A check of a service URL option, as the services check their own settings."""

    def check(value: str) -> str:
        try:
            return service_url(name, value.strip())
        except SettingError as error:
            raise typer.BadParameter(str(error)) from None

    return check


ClaimsUrl = Annotated[
    str,
    typer.Option(
        envvar="CLAIMS_URL", help="The claims service.", callback=_checked_url("CLAIMS_URL")
    ),
]
SourcesUrl = Annotated[
    str,
    typer.Option(
        envvar="SOURCES_URL", help="The sources service.", callback=_checked_url("SOURCES_URL")
    ),
]
AsJson = Annotated[bool, typer.Option("--json", help="Print JSON for machines.")]


def _whole_number(value: str | int) -> int:
    """A position given on the command line: digits alone, as the services take it."""
    if isinstance(value, int):
        return value
    if not DIGITS.fullmatch(value):
        raise typer.BadParameter(f"{value!r} is not a whole number in digits alone, such as 10")
    return int(value)


MinPosition = Annotated[
    int | None,
    typer.Option(
        help="A sources-feed position the answer must include, such as one `load` printed; "
        "the claims service waits for its follower to pass it.",
        parser=_whole_number,
    ),
]
ApiKeyOption = Annotated[
    str | None,
    typer.Option(
        "--api-key",
        envvar="FACTCHECK_API_KEY",
        help="The API key to present: writes and audits need one, and so do reads where they "
        "are not public.",
    ),
]


@app.callback()
def main() -> None:
    """factcheck: event-sourced claims, evidence and verdicts."""


class Service(StrEnum):
    all = "all"
    sources = "sources"
    claims = "claims"


PORTS = {Service.sources: 8001, Service.claims: 8000}
STOP_SECONDS = 20
"""How long `serve` waits for a stopped service to end before it kills it."""


def _build(service: Service) -> FastAPI:
    if service is Service.sources:
        from services.sources.bootstrap import create_app as create_sources

        return create_sources(SourcesSettings.from_env())
    from services.claims.bootstrap import create_app as create_claims

    return create_claims(ClaimsSettings.from_env())


def _serve_one(service: Service, host: str, port: int) -> None:
    try:
        api = _build(service)
    except (StorageConfigError, SettingError) as error:
        typer.echo(f"factcheck {service}: {error}", err=True)
        raise typer.Exit(2) from None
    serve_app(api, host, port, "info", api.state.stopping)


@app.command()
def serve(
    service: Annotated[Service, typer.Option(help="Which service to run.")] = Service.all,
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[
        int | None,
        typer.Option(
            min=1, max=65535, help="Port for one --service; default 8000 claims, 8001 sources."
        ),
    ] = None,
    scenario: Annotated[
        Path | None,
        typer.Option("--load", help="Load this scenario once both are up, and show its timeline."),
    ] = None,
) -> None:
    """Run the services (SQLite under ./var by default); Ctrl-C stops them."""
    if service is not Service.all:
        if scenario is not None:
            _fail("serve: --load needs both services; leave out --service")
        _serve_one(service, host, port or PORTS[service])
        return
    if port is not None:
        ports = " and ".join(f"{one} on {number}" for one, number in PORTS.items())
        _fail(f"serve: --port takes one --service; run together, {ports}")
    taken = [f"{one} port {number}" for one, number in PORTS.items() if not _free(host, number)]
    if taken:
        typer.echo(f"factcheck serve: {', '.join(taken)} on {host} is in use", err=True)
        raise typer.Exit(2)
    env, development_key = _development_access(os.environ)
    _interrupt_on(signal.SIGTERM, signal.SIGHUP)
    children = [
        subprocess.Popen(
            [sys.executable, "-m", "shared.cli", "serve", "--service", str(one), "--host", host],
            env=env,
        )
        for one in PORTS
    ]
    try:
        client = FactcheckClient(
            f"http://{host}:{PORTS[Service.claims]}",
            f"http://{host}:{PORTS[Service.sources]}",
            api_key=development_key or os.environ.get("FACTCHECK_API_KEY"),
        )
        try:
            client.wait_until_up()
            if scenario is not None:
                _load_and_show(client, read_scenario(scenario), console)
        except (ServiceError, ScenarioConflict) as error:
            console.print(f"[red]{error}[/red]", soft_wrap=True)
        finally:
            client.close()
        for one, one_port in PORTS.items():
            console.print(f"{one}: http://{host}:{one_port}  (API docs at /docs)")
        if development_key:
            console.print(
                f"development API key (role admin): {development_key}\n"
                f"  curl -H 'Authorization: Bearer {development_key}' ...   "
                f"or export FACTCHECK_API_KEY={development_key}",
                soft_wrap=True,
            )
        else:
            console.print(
                "API keys: those of FACTCHECK_API_KEYS or FACTCHECK_API_KEYS_FILE; "
                "no development key was made for this run",
                soft_wrap=True,
            )
        console.print("Ctrl-C stops both services.")
        while all(child.poll() is None for child in children):
            time.sleep(0.5)
        for one, child in zip(PORTS, children, strict=True):
            if child.poll() is not None:
                console.print(f"{one} service exited with code {child.returncode}; stopping")
    except KeyboardInterrupt:
        pass
    finally:
        for child in children:
            if child.poll() is None:
                child.terminate()
        for child in children:
            try:
                child.wait(timeout=STOP_SECONDS)
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait()
    failed = [child.returncode for child in children if child.returncode not in (0, None, -2, -15)]
    raise typer.Exit(failed[0] if failed else 0)


def _interrupt_on(*signals: signal.Signals) -> None:
    """Take these signals (kill, docker stop, a closed terminal) as Ctrl-C, so that the
    services started here are stopped with this process rather than left running."""

    def interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    for one in signals:
        signal.signal(one, interrupt)


def _development_access(environ: Mapping[str, str]) -> tuple[dict[str, str], str | None]:
    """With no keys configured, a fresh admin key for this run, so the demo works as is."""
    env = dict(environ)
    if env.get("FACTCHECK_API_KEYS") or env.get("FACTCHECK_API_KEYS_FILE"):
        return env, None
    key = new_key()
    env["FACTCHECK_API_KEYS"] = f"development:admin:{digest(key)}"
    env.setdefault("CLAIMS_API_KEY", key)
    env.setdefault("SOURCES_API_KEY", key)
    return env, key


@app.command("new-key")
def new_key_command(
    name: Annotated[str, typer.Argument(help="Who holds the key; recorded as the actor.")],
    role: Annotated[str, typer.Argument(help="submitter, editor, auditor or admin.")],
) -> None:
    """Make an API key: give the key to its holder, put the line in FACTCHECK_API_KEYS."""
    fault = key_name_fault(name)
    if fault is not None:
        _fail(f"new-key: {fault}")
    if role not in ROLES:
        _fail(f"new-key: role must be one of {', '.join(ROLES)}")
    key = new_key()
    typer.echo(f"key (give it to {name}; it is not stored): {key}")
    typer.echo(f"FACTCHECK_API_KEYS entry: {name}:{role}:{digest(key)}")


def _free(host: str, port: int) -> bool:
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError:
            return False
    return True


def _load_with_progress(client: FactcheckClient, scenario: Scenario) -> Loaded:
    with Progress(console=console, transient=True) as progress:
        task = progress.add_task(f"loading {scenario.name}", total=writes_needed(scenario))
        return load(client, scenario, lambda: progress.advance(task))


def _load_and_show(client: FactcheckClient, scenario: Scenario, out: Console) -> None:
    """Load the scenario and show how its verdict moved, step by step and as known now."""
    loaded = _load_with_progress(client, scenario)
    labels = {**_evidence_labels(client, loaded.claim_id), **loaded.labels(scenario)}
    at = max(item.published_at for item in scenario.evidence).date().isoformat()
    out.print(f"\n[bold]{scenario.claim.text}[/bold]  (claim {loaded.claim_id})", soft_wrap=True)
    out.print(
        f"{scenario.name}: {_writes(loaded.recorded)}"
        + ("" if loaded.recorded else " (already loaded)")
        + "\n"
    )
    for step in loaded.steps[:-1]:
        timeline = client.claim_answer(
            loaded.claim_id, "timeline", known_at=format_instant(step.known_at)
        )
        out.print(timeline_table(timeline, labels, f"Timeline {step.label}"))
    head = loaded.steps[-1].position
    now = client.claim_answer(loaded.claim_id, "timeline", min_position=head)
    out.print(timeline_table(now, labels, "Timeline as known now"))
    for step in loaded.steps:
        verdict = client.claim_answer(
            loaded.claim_id, "verdict", at=at, known_at=format_instant(step.known_at)
        )
        out.print(
            f"Verdict at {at}, {step.label}: [bold]{verdict['status']}[/bold], "
            f"{verdict['probability'] * 100:.1f}% ({verdict['likelihood']})"
        )
    out.print()


@app.command("load")
def load_command(
    scenario: Annotated[
        Path, typer.Argument(help="A scenario file, e.g. scenarios/kharkiv-2024-01.json.")
    ],
    claims_url: ClaimsUrl = DEFAULT_CLAIMS_URL,
    sources_url: SourcesUrl = DEFAULT_SOURCES_URL,
    api_key: ApiKeyOption = None,
    as_json: AsJson = False,
) -> None:
    """Record a scenario; loading it again records nothing new."""
    try:
        parsed = read_scenario(scenario)
    except OSError as error:
        _fail(f"load: cannot read {scenario}: {error.strerror or error}")
    except ValueError as error:
        _fail(f"load: {scenario} is not a scenario: {str(error).splitlines()[0]}")
    with _client(claims_url, sources_url, api_key) as client:
        try:
            loaded = load(client, parsed) if as_json else _load_with_progress(client, parsed)
        except ScenarioConflict as error:
            _fail(f"load: {error}", 1)
    result = {
        "claim_id": loaded.claim_id,
        "recorded": loaded.recorded,
        "evidence": loaded.evidence_ids,
        "steps": [
            {
                "label": step.label,
                "known_at": format_instant(step.known_at),
                "position": step.position,
            }
            for step in loaded.steps
        ],
    }
    if as_json:
        typer.echo(json.dumps(result, indent=2))
        return
    console.print(f"claim {loaded.claim_id}: {_writes(loaded.recorded)}", soft_wrap=True)
    for step in result["steps"]:
        console.print(
            f"  {step['label']}: known at {step['known_at']}, position {step['position']}",
            soft_wrap=True,
        )


@app.command()
def verdict(
    claim: Annotated[str, typer.Argument(help="The claim's id.")],
    at: Annotated[str | None, typer.Option(help="Valid time; a date means its end, UTC.")] = None,
    known_at: Annotated[str | None, typer.Option(help="Transaction time.")] = None,
    min_position: MinPosition = None,
    claims_url: ClaimsUrl = DEFAULT_CLAIMS_URL,
    sources_url: SourcesUrl = DEFAULT_SOURCES_URL,
    api_key: ApiKeyOption = None,
    as_json: AsJson = False,
) -> None:
    """The verdict on a claim at a date, as known at a time."""
    answer = _ask(
        claims_url, api_key, claim, "verdict", at=at, known_at=known_at, min_position=min_position
    )
    labels = {} if as_json else _labels(claims_url, sources_url, claim, api_key)
    _show(answer, as_json, lambda: verdict_table(answer, labels))


@app.command()
def timeline(
    claim: Annotated[str, typer.Argument(help="The claim's id.")],
    known_at: Annotated[str | None, typer.Option(help="Transaction time.")] = None,
    min_position: MinPosition = None,
    claims_url: ClaimsUrl = DEFAULT_CLAIMS_URL,
    sources_url: SourcesUrl = DEFAULT_SOURCES_URL,
    api_key: ApiKeyOption = None,
    as_json: AsJson = False,
) -> None:
    """How the verdict moves over valid time, as known at a time."""
    answer = _ask(
        claims_url, api_key, claim, "timeline", known_at=known_at, min_position=min_position
    )
    labels = {} if as_json else _labels(claims_url, sources_url, claim, api_key)
    _show(answer, as_json, lambda: timeline_table(answer, labels, "Timeline"))


@app.command()
def history(
    claim: Annotated[str, typer.Argument(help="The claim's id.")],
    known_at: Annotated[str | None, typer.Option(help="Transaction time.")] = None,
    min_position: MinPosition = None,
    claims_url: ClaimsUrl = DEFAULT_CLAIMS_URL,
    api_key: ApiKeyOption = None,
    as_json: AsJson = False,
) -> None:
    """Every recorded event that shaped the claim, in recorded order, as recorded by a time."""
    answer = _ask(
        claims_url, api_key, claim, "history", known_at=known_at, min_position=min_position
    )
    _show(answer, as_json, lambda: history_table(answer))


@app.command()
def rebuild(
    service: Annotated[
        Service, typer.Option(help="Whose read models; all rebuilds sources, then claims.")
    ] = Service.claims,
    claims_url: ClaimsUrl = DEFAULT_CLAIMS_URL,
    sources_url: SourcesUrl = DEFAULT_SOURCES_URL,
    api_key: ApiKeyOption = None,
) -> None:
    """Drop a service's read models and rebuild them from the events alone."""
    with _client(claims_url, sources_url, api_key) as client:
        client.check_services(*([] if service is Service.all else [service.value]))
        if service in (Service.sources, Service.all):
            result = client.call(client.sources, "POST", "/admin/rebuild", timeout=600)
            console.print(
                f"rebuilt sources: {result['evidence']} evidence items, "
                f"log applied to {result['position']}{_timings(result)}"
            )
        if service in (Service.claims, Service.all):
            result = client.call(client.claims, "POST", "/admin/rebuild", timeout=600)
            console.print(
                f"rebuilt: {result['claims']} claims, sources feed applied to "
                f"{result['position']}{_timings(result)}"
            )


def _timings(rebuilt: dict[str, Any]) -> str:
    """How long a rebuild verified and then rebuilt, as its answer says, if it says."""
    if "verify_seconds" not in rebuilt or "rebuild_seconds" not in rebuilt:
        return ""
    return (
        f" (verified in {rebuilt['verify_seconds']:.1f} s, "
        f"rebuilt in {rebuilt['rebuild_seconds']:.1f} s)"
    )


@app.command()
def verify(
    claims_url: ClaimsUrl = DEFAULT_CLAIMS_URL,
    sources_url: SourcesUrl = DEFAULT_SOURCES_URL,
    api_key: ApiKeyOption = None,
    as_json: AsJson = False,
) -> None:
    """Recompute both services' hash chains.

    Exits 1 if either is broken, and 2 if one cannot be checked (a service cannot be reached,
    or answers with an error).

    The claims service's follower also witnesses the sources log: if it applied a position past
    the log's head, the newest events were deleted; if the log holds another event at the last
    position it applied, that event was replaced.
    """
    with _client(claims_url, sources_url, api_key, failure_code=2) as client:
        healths = client.check_services()
        results = {
            name: client.call(service, "GET", "/audit/verify")
            for name, service in (("sources", client.sources), ("claims", client.claims))
        }
        applied = healths["claims"]["follower"]
        sources = results["sources"]

        def hash_at(position: int) -> str | None:
            page = client.call(
                client.sources, "GET", "/feed", params={"after": position - 1, "limit": 1}
            )
            return hash_in_page(page, position)

        fault = (
            witness_fault(sources, applied["position"], applied["applied_hash"], hash_at)
            if sources["ok"]
            else None
        )
    if fault is not None:
        sources.update(ok=False, broken_position=fault[0], reason=fault[1])
    if as_json:
        typer.echo(json.dumps(results, indent=2))
    else:
        for name, result in results.items():
            _print_check(name, result)
    if not all(result["ok"] for result in results.values()):
        raise typer.Exit(1)


@app.command()
def export(
    folder: Annotated[Path, typer.Option("--out", help="Folder for the NDJSON files.")] = Path(),
    after: Annotated[
        int, typer.Option(help="Export events after this position.", parser=_whole_number)
    ] = 0,
    until: Annotated[
        int | None, typer.Option(help="...up to this position.", parser=_whole_number)
    ] = None,
    claims_url: ClaimsUrl = DEFAULT_CLAIMS_URL,
    sources_url: SourcesUrl = DEFAULT_SOURCES_URL,
    api_key: ApiKeyOption = None,
) -> None:
    """Write each service's event log, with hashes, to sources.ndjson and claims.ndjson."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        _fail(f"export: cannot write to {folder}: {error.strerror or error}")
    params = {"after": after} | ({"until": until} if until is not None else {})
    with _client(claims_url, sources_url, api_key) as client:
        client.check_services()
        for name, service in (("sources", client.sources), ("claims", client.claims)):
            path = folder / f"{name}.ndjson"
            try:
                lines = client.export(service, path, params)
            except OSError as error:
                _fail(f"export: cannot write {path}: {error.strerror or error}")
            console.print(f"{path}: {lines} events")


@app.command()
def replay(
    files: Annotated[list[Path], typer.Argument(help="Exported NDJSON files of both services.")],
    known_at: Annotated[str, typer.Option(help="Transaction time to replay up to.")],
    at: Annotated[str | None, typer.Option(help="Valid time; default now.")] = None,
    as_json: AsJson = False,
) -> None:
    """Check both exported logs' hash chains, then rebuild every claim's verdict from them
    alone, with no service running."""
    now = datetime.now(UTC)
    try:
        when = parse_instant(at, allow_date=True) if at else now
        known = parse_instant(known_at, allow_date=True)
    except TimeParseError as error:
        _fail(f"replay: {error}")
    if known > now and is_today(known_at, now):
        known = now
    if known > now:
        _fail("replay: --known-at is in the future; nothing can be known at it yet")
    sources_items, claims_items, verified = _read_exports(files)
    rows = [
        {
            "claim_id": claim.claim_id,
            "text": claim.text,
            "status": claim.verdict.assessment.status,
            "probability": claim.verdict.assessment.probability,
            "likelihood": claim.verdict.assessment.likelihood,
            "supporting_origins": claim.verdict.tally.supporting,
            "refuting_origins": claim.verdict.tally.refuting,
            "model": claim.verdict.assessment.model,
            "ruling": claim.ruling,
        }
        for claim in replay_claims(sources_items, claims_items, when, known)
    ]
    if as_json:
        answer = {
            "at": format_instant(when),
            "known_at": format_instant(known),
            "verified": {name: checked.as_dict() for name, checked in verified.items()},
            "claims": rows,
        }
        typer.echo(json.dumps(answer, indent=2))
        return
    table = Table(title=f"Verdicts at {format_instant(when)}, as known at {format_instant(known)}")
    for column in ("claim", "status", "probability", "for/against", "ruling"):
        table.add_column(column)
    for row in rows:
        table.add_row(
            f"{shortened(row['text'], 60)}\n{row['claim_id']}",
            row["status"],
            f"{row['probability'] * 100:.1f}% {row['likelihood']}",
            f"{row['supporting_origins']}/{row['refuting_origins']}",
            row["ruling"]["status"] if row["ruling"] else "",
        )
    console.print(table)
    console.print("Both exported logs, each verified from its first event:")
    for name, checked in verified.items():
        _print_check(name, checked.as_dict())


def _print_check(name: str, result: Mapping[str, Any]) -> None:
    """One log's hash-chain check, in the form of `GET /audit/verify`, on one line."""
    if result["ok"]:
        console.print(
            f"{name}: ok, {result['count']} events, head {result['head_hash']} "
            f"at position {result['head_position']}",
            soft_wrap=True,
        )
    else:
        console.print(f"{name}: BROKEN at position {result['broken_position']}: {result['reason']}")


def _writes(count: int) -> str:
    return f"{count} new write{'' if count == 1 else 's'}"


def _fail(message: str, code: int = 2) -> NoReturn:
    typer.echo(f"factcheck {message}", err=True)
    raise typer.Exit(code)


def _read_exports(
    files: list[Path],
) -> tuple[list[dict[str, Any]], list[dict[str, Any]], dict[str, Verification]]:
    """Both services' exported items, with each log's check, whole from its first event."""
    items: list[dict[str, Any]] = []
    seen: set[str] = set()
    for path in files:
        try:
            lines = path.read_text(encoding="utf-8").split("\n")
        except OSError as error:
            _fail(f"replay: cannot read {path}: {error.strerror or error}")
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            try:
                item = FeedItem.model_validate_json(line).model_dump(mode="json")
            except ValueError:
                _fail(f"replay: {path} line {number} is not a feed item")
            if item["id"] in seen:
                _fail(
                    f"replay: {path} line {number} repeats an event given before; "
                    "pass each export once"
                )
            seen.add(item["id"])
            items.append(item)
    claims_items = [item for item in items if item["type"].startswith("Claim")]
    sources_items = [item for item in items if not item["type"].startswith("Claim")]
    verified: dict[str, Verification] = {}
    for name, part in (("sources", sources_items), ("claims", claims_items)):
        if not part:
            _fail(f"replay: no {name} events; pass both exports (sources.ndjson, claims.ndjson)")
        checked = verify_chain(FeedItem.model_validate(item) for item in part)
        if not checked.ok:
            _fail(
                f"replay: the {name} export fails verification at position "
                f"{checked.broken_position}: {checked.reason}",
                1,
            )
        verified[name] = checked
    return sources_items, claims_items, verified


class _client:
    """A FactcheckClient that turns service errors into a one-line exit."""

    def __init__(
        self,
        claims_url: str,
        sources_url: str,
        api_key: str | None = None,
        failure_code: int = 1,
    ) -> None:
        self.client = FactcheckClient(claims_url, sources_url, api_key=api_key)
        self.failure_code = failure_code
        """The exit code when a service cannot be reached or answers with an error."""

    def __enter__(self) -> FactcheckClient:
        return self.client

    def __exit__(self, kind: Any, error: Any, trace: Any) -> None:
        self.client.close()
        if isinstance(error, ServiceError):
            typer.echo(f"factcheck: {error}", err=True)
            raise typer.Exit(self.failure_code) from None


def _ask(
    claims_url: str, api_key: str | None, claim: str, what: str, **params: Any
) -> dict[str, Any]:
    with _client(claims_url, DEFAULT_SOURCES_URL, api_key) as client:
        return client.claim_answer(claim, what, **params)


def _labels(claims_url: str, sources_url: str, claim: str, api_key: str | None) -> dict[str, str]:
    """The claim's evidence labels for a table, asked of the sources service."""
    client = FactcheckClient(claims_url, sources_url, api_key=api_key)
    try:
        return _evidence_labels(client, claim)
    finally:
        client.close()


def _evidence_labels(client: FactcheckClient, claim: str) -> dict[str, str]:
    """The claim's evidence labels; if the sources service cannot give them, a warning, and
    the tables show bare ids."""
    try:
        return client.evidence_labels(claim)
    except ServiceError as error:
        reason = str(error)
    except (KeyError, TypeError):
        reason = f"{client.sources.base_url} did not answer as the sources service does"
    typer.echo(f"factcheck: evidence without a label is shown by its id: {reason}", err=True)
    return {}


def _show(answer: dict[str, Any], as_json: bool, table: Any) -> None:
    if as_json:
        typer.echo(json.dumps(answer, indent=2))
    else:
        console.print(table())


if __name__ == "__main__":
    app()
