"""The Kharkiv scenario through the loader and the command line, against both real services."""

import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from rich.console import Console
from typer.testing import CliRunner

from services.claims.confidence import REASON_REPEAT
from shared.cli import _load_and_show
from shared.cli import app as cli
from shared.client import FactcheckClient
from shared.scenario import ScenarioConflict, load, read_scenario
from shared.tables import history_table
from shared.timeaxes import parse_instant
from tests.conftest import Services
from tests.newsroom import new_claim, new_source, post_evidence
from tests.servers import free_port

SCENARIO = Path(__file__).parent.parent / "scenarios" / "kharkiv-2024-01.json"


@pytest.fixture
def client(services: Services) -> Iterator[FactcheckClient]:
    client = FactcheckClient(services.claims_url, services.sources_url)
    yield client
    client.close()


def test_kharkiv_is_suspected_as_known_on_6_january_and_confirmed_after(
    client: FactcheckClient,
) -> None:
    scenario = read_scenario(SCENARIO)
    loaded = load(client, scenario)
    assert [step.label for step in loaded.steps] == [
        "as known on 6 January",
        "once the White House statement is recorded",
    ]
    first, second = loaded.steps
    assert first.known_at < second.known_at
    suspected = client.claim_answer(
        loaded.claim_id, "verdict", at="2024-01-07", known_at=first.known_at.isoformat()
    )
    assert suspected["status"] == "suspected"
    assert suspected["supporting_origins"] == 1, "examination and presentation: one origin"
    confirmed = client.claim_answer(
        loaded.claim_id, "verdict", at="2024-01-07", known_at=second.known_at.isoformat()
    )
    assert confirmed["status"] == "confirmed"
    assert confirmed["supporting_origins"] == 3

    listing = client.claim_answer(loaded.claim_id, "evidence", at="2024-01-07")
    reasons = {item["evidence_id"]: item["reason"] for item in listing["items"]}
    ids = loaded.evidence_ids
    assert reasons[ids["reuters"]] == "derived"
    assert reasons[ids["report"]] == "derived"
    assert reasons[ids["attack"]] == "neutral"
    assert reasons[ids["examination"]] == REASON_REPEAT
    assert reasons[ids["presentation"]] is None


def test_loading_twice_records_nothing_new(client: FactcheckClient, services: Services) -> None:
    scenario = read_scenario(SCENARIO)
    first = load(client, scenario)
    head = services.sources.get("/feed", params={"limit": 1}).json()["head"]
    claims_head = services.claims.get("/feed", params={"limit": 1}).json()["head"]
    again = load(client, scenario)
    assert again.recorded == 0
    assert first.recorded == 18
    assert again.claim_id == first.claim_id
    assert again.evidence_ids == first.evidence_ids
    assert again.steps == first.steps
    assert services.sources.get("/feed", params={"limit": 1}).json()["head"] == head
    assert services.claims.get("/feed", params={"limit": 1}).json()["head"] == claims_head


def test_a_scenario_edited_after_loading_is_refused_and_a_corrected_item_is_found(
    client: FactcheckClient, services: Services, tmp_path: Path
) -> None:
    """An item recorded from the scenario, then given another summary in the file, is not
    recorded a second time; one whose summary was corrected through the API is still found."""
    scenario = read_scenario(SCENARIO)
    first = load(client, scenario)
    edited = json.loads(SCENARIO.read_text(encoding="utf-8"))
    kirby = next(item for item in edited["evidence"] if item["key"] == "kirby")
    kirby["summary"] += " (edited)"
    path = tmp_path / "edited.json"
    path.write_text(json.dumps(edited), encoding="utf-8")
    heads = [
        service.get("/feed", params={"limit": 1}).json()["head"]
        for service in (services.sources, services.claims)
    ]
    with pytest.raises(ScenarioConflict, match="'kirby' was recorded from this scenario"):
        load(client, read_scenario(path))
    result = CliRunner().invoke(
        cli,
        [
            "load",
            str(path),
            "--claims-url",
            services.claims_url,
            "--sources-url",
            services.sources_url,
        ],
    )
    assert result.exit_code == 1
    assert "kirby" in result.output
    assert heads == [
        service.get("/feed", params={"limit": 1}).json()["head"]
        for service in (services.sources, services.claims)
    ]
    corrected = services.sources.post(
        f"/evidence/{first.evidence_ids['kirby']}/correction",
        json={"changes": {"summary": "Kirby's statement, reworded"}, "reason": "reworded"},
    )
    assert corrected.status_code == 201, corrected.text
    again = load(client, scenario)
    assert again.recorded == 0
    assert again.evidence_ids == first.evidence_ids

    elsewhere = new_claim(services, "another claim")
    moved = services.sources.post(
        f"/evidence/{first.evidence_ids['attack']}/correction",
        json={"changes": {"claim_id": elsewhere}, "reason": "about another claim"},
    )
    assert moved.status_code == 201, moved.text
    head = services.sources.get("/feed", params={"limit": 1}).json()["head"]
    assert load(client, scenario).recorded == 0, "found by its key, nothing recorded"
    assert services.sources.get("/feed", params={"limit": 1}).json()["head"] == head


def test_a_source_of_the_same_name_is_never_taken_for_the_scenarios_own(
    client: FactcheckClient, services: Services
) -> None:
    """Sources of the scenario's names, registered by others before and after its first load,
    are neither rated nor given evidence by it, and a second load still records nothing."""
    scenario = read_scenario(SCENARIO)
    before = new_source(services, "Reuters")
    first = load(client, scenario)
    after = new_source(services, "Reuters")
    head = services.sources.get("/feed", params={"limit": 1}).json()["head"]
    again = load(client, scenario)
    assert (again.recorded, first.recorded) == (0, 18)
    assert again.evidence_ids == first.evidence_ids and again.steps == first.steps
    assert services.sources.get("/feed", params={"limit": 1}).json()["head"] == head
    for other in (before, after):
        assert services.sources.get(f"/sources/{other}").json()["ratings"] == []
    evidence = services.sources.get("/evidence", params={"limit": 1000}).json()["items"]
    assert len(evidence) == len(scenario.evidence)
    assert not {item["source_id"] for item in evidence} & {before, after}


def test_the_run_report_shows_suspicion_then_confirmation(client: FactcheckClient) -> None:
    out = Console(record=True, width=200)
    _load_and_show(client, read_scenario(SCENARIO), out)
    text = out.export_text()
    assert "Timeline as known on 6 January" in text
    assert "Timeline as known now" in text
    assert "Verdict at 2024-01-06, as known on 6 January: suspected, 62.0% (likely)" in text
    assert "once the White House statement is recorded: confirmed" in text
    assert "+ kirby (White House National Security Council)" in text


def test_the_command_line_answers_in_tables_and_json(services: Services) -> None:
    runner = CliRunner()
    urls = ["--claims-url", services.claims_url]
    loaded = runner.invoke(
        cli, ["load", str(SCENARIO), *urls, "--sources-url", services.sources_url, "--json"]
    )
    assert loaded.exit_code == 0, loaded.output
    result = json.loads(loaded.output)
    claim = result["claim_id"]
    known = result["steps"][0]["known_at"]
    again = runner.invoke(
        cli, ["load", str(SCENARIO), *urls, "--sources-url", services.sources_url]
    )
    assert again.exit_code == 0, again.output
    printed = re.findall(r"known at (\S+),", again.output)
    assert printed == [step["known_at"] for step in result["steps"]]
    for known_at in printed:
        pasted = services.claims.get(f"/claims/{claim}/verdict?at=2024-01-07&known_at={known_at}")
        assert pasted.status_code == 200, "a printed time works pasted into a URL as it is"

    as_json = runner.invoke(
        cli, ["verdict", claim, "--at", "2024-01-07", "--known-at", known, *urls, "--json"]
    )
    assert as_json.exit_code == 0, as_json.output
    assert json.loads(as_json.output)["status"] == "suspected"
    last = str(result["steps"][-1]["position"])
    both = [*urls, "--sources-url", services.sources_url]
    table = runner.invoke(
        cli, ["verdict", claim, "--at", "2024-01-07", "--min-position", last, *both]
    )
    assert table.exit_code == 0, table.output
    assert "confirmed" in table.output
    kirby = result["evidence"]["kirby"]
    assert f"{kirby[:8]} (White House National Security Council)" in table.output
    timeline_table = runner.invoke(cli, ["timeline", claim, "--min-position", last, *both])
    assert f"+ {kirby[:8]} (White House National Security Council)" in timeline_table.output
    unreachable = [*urls, "--sources-url", f"http://127.0.0.1:{free_port()}"]
    bare = runner.invoke(cli, ["timeline", claim, "--min-position", last, *unreachable])
    assert bare.exit_code == 0, bare.output
    assert f"+ {kirby} " in bare.output
    assert "evidence without a label is shown by its id" in bare.output

    timeline_args = ["timeline", claim, "--min-position", last, *urls, "--json"]
    timeline = json.loads(runner.invoke(cli, timeline_args).output)
    assert [point["status"] for point in timeline["points"]][-1] == "confirmed"
    history = json.loads(runner.invoke(cli, ["history", claim, *urls, "--json"]).output)
    assert len(history["events"]) >= 18
    registered = next(e for e in history["events"] if e["type"] == "ClaimRegistered")
    as_registered = ["history", claim, "--known-at", registered["recorded_at"], *urls, "--json"]
    early = json.loads(runner.invoke(cli, as_registered).output)
    known = parse_instant(registered["recorded_at"])
    assert registered in early["events"]
    assert 0 < len(early["events"]) < len(history["events"])
    assert all(parse_instant(event["recorded_at"]) <= known for event in early["events"])
    assert "EvidenceSubmitted" in runner.invoke(cli, ["history", claim, *urls]).output

    missing = runner.invoke(cli, ["verdict", "00000000-0000-4000-8000-000000000000", *urls])
    assert missing.exit_code == 1
    assert "404" in missing.output


def test_the_history_table_says_what_each_event_changed(services: Services) -> None:
    claim = new_claim(services)
    source = new_source(services, "agency", "B")
    evidence = post_evidence(services, source, claim, "2024-01-05T00:00:00Z")
    for path, body in (
        (
            f"/evidence/{evidence['id']}/correction",
            {"changes": {"strength": "strong"}, "reason": "mistyped"},
        ),
        (
            f"/evidence/{evidence['id']}/retraction",
            {"published_at": "2024-01-07T00:00:00Z", "reason": "withdrawn by the agency"},
        ),
    ):
        assert services.sources.post(path, json=body).status_code == 201
    ruled = services.claims.post(
        f"/claims/{claim}/rulings",
        json={"status": "confirmed", "rationale": "seen", "effective_at": "2024-01-08T00:00:00Z"},
    )
    assert ruled.status_code == 201, ruled.text
    head = services.sources.get("/feed").json()["head"]
    client = FactcheckClient(services.claims_url, services.sources_url)
    try:
        client.claim_answer(claim, "verdict", min_position=head)
        history = client.claim_answer(claim, "history")
    finally:
        client.close()
    out = Console(record=True, width=250)
    out.print(history_table(history))
    text = out.export_text()
    assert re.search(rf"EvidenceCorrected +│ {evidence['id'][:8]} +│", text), text
    assert "strength = strong (mistyped)" in text
    assert "withdrawn by the agency" in text
    assert "confirmed: seen" in text
    assert ruled.json()["recorded_at"] in text, "a recording time whole, for --known-at"
    assert "B: test" in text
    assert f"sources feed position {head})" in text


def test_a_position_on_the_command_line_is_digits_alone() -> None:
    claim = "00000000-0000-4000-8000-000000000000"
    for command in (
        ["verdict", claim, "--min-position", "1_0"],
        ["timeline", claim, "--min-position", "+5"],
        ["export", "--after", " 5"],
        ["export", "--until", "1.0"],
    ):
        refused = CliRunner().invoke(cli, command)
        assert refused.exit_code == 2, (command, refused.output)
        assert "is not a whole number in digits" in refused.output, refused.output
