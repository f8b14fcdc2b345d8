"""What an auditor does: verify both logs, export them, replay offline, read ClaimReview."""

import json
import re
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI
from fastapi.responses import HTMLResponse
from typer.testing import CliRunner

from services.claims.bootstrap import create_app as create_claims_app
from services.claims.claimreview import RATINGS
from shared.cli import app as cli
from shared.client import FactcheckClient
from shared.scenario import load, read_scenario
from shared.settings import ClaimsSettings
from tests.conftest import Services, coming_and_going
from tests.newsroom import new_claim, new_source, post_evidence, rate, verdict
from tests.servers import free_port, serving
from tests.test_audit import run_sql
from tests.test_scenario import SCENARIO
from tests.test_sources_rejections import assert_problem


@pytest.fixture
def history(services: Services) -> dict:
    """The Kharkiv scenario plus a second claim whose evidence is refuted, retracted, corrected."""
    client = FactcheckClient(services.claims_url, services.sources_url)
    loaded = load(client, read_scenario(SCENARIO))
    client.close()
    other = new_claim(services, "The debris came from a Ukrainian air-defence missile.")
    agency = new_source(services, "agency", "B")
    denial = post_evidence(services, agency, other, "2024-01-05T08:00:00Z", stance="refutes")
    support = post_evidence(services, agency, other, "2024-01-03T08:00:00Z", strength="weak")
    services.sources.post(
        f"/evidence/{denial['id']}/retraction",
        json={"published_at": "2024-01-06T00:00:00Z", "reason": "withdrawn"},
    )
    services.sources.post(
        f"/evidence/{support['id']}/correction",
        json={"changes": {"strength": "strong"}, "reason": "typo"},
    )
    rate(services, agency, "D")
    services.claims.post(
        f"/claims/{other}/rulings",
        json={"status": "doubtful", "rationale": "editor", "effective_at": "2024-01-04T00:00:00Z"},
    )
    latest = verdict(services, other)["basis"]["known_at"]
    return {
        "claims": [loaded.claim_id, other],
        "known": [step.known_at.isoformat() for step in loaded.steps] + [latest],
    }


def test_replay_from_exports_gives_the_live_verdicts(
    services: Services, history: dict, tmp_path: Path
) -> None:
    runner = CliRunner()
    urls = ["--claims-url", services.claims_url, "--sources-url", services.sources_url]
    exported = runner.invoke(cli, ["export", "--out", str(tmp_path), *urls])
    assert exported.exit_code == 0, exported.output
    files = [str(tmp_path / "sources.ndjson"), str(tmp_path / "claims.ndjson")]
    compared = 0
    for known_at in history["known"]:
        for at in ("2024-01-04T12:00:00Z", "2024-01-05T12:00:00Z", "2024-01-07"):
            result = runner.invoke(
                cli, ["replay", *files, "--known-at", known_at, "--at", at, "--json"]
            )
            assert result.exit_code == 0, result.output
            offline = {row["claim_id"]: row for row in json.loads(result.output)["claims"]}
            for claim in history["claims"]:
                if claim not in offline:
                    early = services.claims.get(
                        f"/claims/{claim}/verdict", params={"at": at, "known_at": known_at}
                    )
                    assert early.status_code == 422, "not registered yet, online or offline"
                    continue
                live = verdict(services, claim, at=at, known_at=known_at)
                row = offline[claim]
                assert (row["status"], row["probability"], row["supporting_origins"]) == (
                    live["status"],
                    live["probability"],
                    live["supporting_origins"],
                ), (claim, at, known_at)
                assert row["refuting_origins"] == live["refuting_origins"]
                assert row["ruling"] == live["ruling"]
                compared += 1
    assert compared == 12, "both claims at the latest known_at, the first at each step"
    today = datetime.now(UTC).date().isoformat()
    by_today = runner.invoke(cli, ["replay", *files, "--known-at", today, "--json"])
    assert by_today.exit_code == 0, by_today.output
    now = json.loads(by_today.output)
    assert now["at"] == now["known_at"], "one now for both axes, as the service gives"
    latest = runner.invoke(cli, ["replay", *files, "--known-at", history["known"][-1], "--json"])
    assert json.loads(by_today.output)["claims"] == json.loads(latest.output)["claims"]
    live = {
        "sources": services.sources.get("/audit/verify").json(),
        "claims": services.claims.get("/audit/verify").json(),
    }
    assert now["verified"] == live, "each log checked whole, as the service checks it"
    shown = runner.invoke(cli, ["replay", *files, "--known-at", today])
    assert shown.exit_code == 0, shown.output
    assert "Both exported logs, each verified from its first event:" in shown.output
    assert "\u2026" in shown.output, "the Kharkiv claim's text, cut and marked so"
    for name, checked in live.items():
        assert (
            f"{name}: ok, {checked['count']} events, "
            f"head {checked['head_hash']} at position {checked['head_position']}"
        ) in shown.output


def test_export_and_replay_keep_text_with_unicode_line_breaks(
    services: Services, tmp_path: Path
) -> None:
    """NDJSON ends lines with "\\n" alone: U+2028 and U+2029 are text inside an event."""
    text = "Kharkiv\u2028struck\u2029on 2 January by a North Korean missile"
    claim = new_claim(services, text)
    new_source(services, "agency")
    runner = CliRunner()
    urls = ["--claims-url", services.claims_url, "--sources-url", services.sources_url]
    exported = runner.invoke(cli, ["export", "--out", str(tmp_path), *urls])
    assert exported.exit_code == 0, exported.output
    served = services.claims.get("/audit/export")
    assert (tmp_path / "claims.ndjson").read_bytes() == served.content
    lines = served.content.count(b"\n")
    assert f"claims.ndjson:{lines}events" in re.sub(r"\s", "", exported.output)
    files = [str(tmp_path / "sources.ndjson"), str(tmp_path / "claims.ndjson")]
    known_at = verdict(services, claim)["basis"]["known_at"]
    result = runner.invoke(cli, ["replay", *files, "--known-at", known_at, "--json"])
    assert result.exit_code == 0, result.output
    assert [row["text"] for row in json.loads(result.output)["claims"]] == [text]


def test_replay_refuses_a_tampered_export(
    services: Services, history: dict, tmp_path: Path
) -> None:
    runner = CliRunner()
    urls = ["--claims-url", services.claims_url, "--sources-url", services.sources_url]
    runner.invoke(cli, ["export", "--out", str(tmp_path), *urls])
    path = tmp_path / "sources.ndjson"
    original = path.read_text()
    tampered = original.replace('"strength": "weak"', '"strength": "strong"', 1)
    assert tampered != original
    path.write_text(tampered)
    result = runner.invoke(
        cli, ["replay", str(path), str(tmp_path / "claims.ndjson"), "--known-at", "2024-06-01"]
    )
    assert result.exit_code == 1
    assert "fails verification at position" in result.output
    assert result.output.rstrip().endswith("does not match its recorded hash: it was altered")


def test_verify_command_reports_both_chains(
    services: Services, history: dict, database_url: str
) -> None:
    runner = CliRunner()
    urls = ["--claims-url", services.claims_url, "--sources-url", services.sources_url]
    ok = runner.invoke(cli, ["verify", *urls, "--json"])
    assert ok.exit_code == 0, ok.output
    results = json.loads(ok.output)
    assert results["sources"]["ok"] and results["claims"]["ok"]
    assert results["sources"]["count"] == services.sources.get("/feed").json()["head"]
    run_sql(
        database_url,
        "UPDATE stored_events SET state = CAST(replace(CAST(state AS TEXT), 'agency', 'agenzy')"
        " AS BLOB)",
        "UPDATE {schema}.sources_events SET state = convert_to(replace(convert_from(state,"
        " 'UTF8'), 'agency', 'agenzy'), 'UTF8')",
    )
    broken = runner.invoke(cli, ["verify", *urls])
    assert broken.exit_code == 1
    assert "sources: BROKEN at position" in broken.output


def test_verify_command_tells_a_log_it_could_not_check_from_a_broken_one(
    services: Services, history: dict
) -> None:
    runner = CliRunner()
    with serving(a_sign_in_page()) as web_page:
        for elsewhere in (f"http://127.0.0.1:{free_port()}", web_page):
            result = runner.invoke(
                cli, ["verify", "--claims-url", services.claims_url, "--sources-url", elsewhere]
            )
            assert result.exit_code == 2, result.output
            assert "BROKEN" not in result.output


def a_sign_in_page() -> FastAPI:
    """An app that answers every GET 200 with an HTML page, as a proxy's sign-in page does."""
    page = FastAPI()

    @page.get("/{path:path}", response_class=HTMLResponse)
    def sign_in(path: str) -> str:
        return "<html><body>sign in</body></html>"

    return page


def test_claimreview_has_the_fields_fact_check_markup_requires(
    services: Services, history: dict
) -> None:
    claim = history["claims"][0]
    response = services.claims.get(
        f"/claims/{claim}/claimreview", params={"at": "2024-01-07", "known_at": history["known"][0]}
    )
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/ld+json")
    review = response.json()
    assert review["@context"] == "https://schema.org"
    assert review["@type"] == "ClaimReview"
    for field in ("claimReviewed", "reviewRating", "url", "author", "datePublished"):
        assert review[field], field
    assert review["claimReviewed"].startswith("Russia struck Kharkiv")
    assert review["author"]["name"] == "factcheck"
    assert review["url"] == f"{services.claims_url}/claims/{claim}", "the claim's page, not a query"
    rating = review["reviewRating"]
    assert rating["alternateName"] == "likely (suspected)"
    assert rating["ratingValue"] == RATINGS["likely"] == 5
    assert (rating["worstRating"], rating["bestRating"]) == (1, 7)
    item = review["itemReviewed"]
    assert item["@type"] == "Claim"
    assert item["datePublished"] == "2024-01-05", "the first item for or against, not context"
    names = {entry["author"]["name"] for entry in item["appearance"]}
    assert "Kharkiv Region Prosecutor's Office" in names
    assert "White House National Security Council" not in names, "not yet known then"
    assert any(entry.get("url") == "https://khar.gp.gov.ua" for entry in item["appearance"])

    now = services.claims.get(f"/claims/{claim}/claimreview", params={"at": "2024-01-07"}).json()
    assert now["reviewRating"]["alternateName"] == "very likely (confirmed)"
    assert now["reviewRating"]["ratingValue"] == 6


def test_claimreview_leaves_out_evidence_retracted_by_at(services: Services, history: dict) -> None:
    path = f"/claims/{history['claims'][1]}/claimreview"

    def listed(at: str) -> list[str]:
        review = services.claims.get(path, params={"at": at}).json()
        return sorted(entry["datePublished"] for entry in review["itemReviewed"]["appearance"])

    assert listed("2024-01-05T12:00:00Z") == ["2024-01-03", "2024-01-05"]
    assert listed("2024-01-07") == ["2024-01-03"], "the denial was retracted on 6 January"


def test_claimreview_gives_its_basis_and_the_ruling_beside_the_rating(
    services: Services, history: dict
) -> None:
    claim = history["claims"][1]
    path = f"/claims/{claim}/claimreview"
    first = services.claims.get(path, params={"at": "2024-01-07"})
    pinned = first.headers["Content-Location"]
    assert pinned.startswith(f"{path}?at=2024-01-07T23%3A59%3A59.999999Z&known_at=")
    known_at = re.fullmatch(r'at="[^"]+", known_at="([^"]+)", position=\d+', first.headers["Basis"])
    assert known_at is not None, first.headers["Basis"]
    computed = verdict(services, claim, at="2024-01-07", known_at=known_at[1])
    same = computed["basis"]
    assert first.headers["Basis"] == (
        f'at="{same["at"]}", known_at="{same["known_at"]}", position={same["position"]}'
    )
    source = new_source(services, "late agency", "A")
    post_evidence(services, source, claim, "2024-01-02T00:00:00Z", strength="strong")
    verdict(services, claim)
    again = services.claims.get(pinned).json()
    assert {**again, "url": ""} == {**first.json(), "url": ""}
    explanation = first.json()["reviewRating"]["ratingExplanation"]
    assert explanation.endswith("Editor's ruling, effective 2024-01-04T00:00:00Z: doubtful. editor")
    rating = first.json()["reviewRating"]["alternateName"]
    assert rating == f"{computed['likelihood']} ({computed['status']})" == "likely (suspected)"
    before = services.claims.get(path, params={"at": "2024-01-03T12:00:00Z"}).json()
    assert "ruling" not in before["reviewRating"]["ratingExplanation"]


def test_claimreview_gives_the_wording_as_known_at_known_at(services: Services) -> None:
    claim = new_claim(services, "original wording")
    new_source(services, "agency")
    first = verdict(services, claim)["basis"]["known_at"]
    reworded = services.claims.post(
        f"/claims/{claim}/rewording", json={"text": "changed wording", "reason": "clearer"}
    )
    assert reworded.status_code == 201, reworded.text
    path = f"/claims/{claim}/claimreview"
    then = services.claims.get(path, params={"known_at": first}).json()
    assert then["claimReviewed"] == "original wording"
    now = services.claims.get(path).json()
    assert now["claimReviewed"] == "changed wording"


def test_a_tampered_sources_log_is_never_applied(
    services: Services, history: dict, database_url: str, tmp_path: Path
) -> None:
    claim = history["claims"][0]
    before = verdict(services, claim, at="2024-01-07")
    items = services.sources.get("/feed", params={"limit": 1000}).json()["items"]
    target = next(item for item in items if item["data"].get("strength") == "weak")
    run_sql(
        database_url,
        "UPDATE stored_events SET state = CAST(replace(CAST(state AS TEXT), '\"weak\"',"
        " '\"strong\"') AS BLOB) WHERE rowid = ?",
        "UPDATE {schema}.sources_events SET state = convert_to(replace(convert_from(state,"
        " 'UTF8'), '\"weak\"', '\"strong\"'), 'UTF8') WHERE notification_id = %s",
        target["position"],
    )
    refused = services.claims.post("/admin/rebuild")
    assert_problem(refused, 409)
    assert f"position {target['position']}" in refused.json()["detail"]
    after = verdict(services, claim, at="2024-01-07")
    assert after["probability"] == before["probability"], "nothing was rebuilt from it"

    fresh = create_claims_app(
        ClaimsSettings(
            database_url=f"sqlite:///{tmp_path / 'fresh-claims.db'}",
            sources_url=services.sources_url,
            follower_wait=0.2,
        )
    )
    with serving(fresh) as fresh_url, httpx.Client(base_url=fresh_url) as client:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            health = client.get("/health").json()
            if health["follower"]["last_error"]:
                break
            time.sleep(0.1)
        assert health["status"] == "degraded"
        assert (
            f"fails verification at position {target['position']}"
            in (health["follower"]["last_error"])
        )
        assert health["follower"]["position"] < target["position"]


def test_the_command_line_refuses_bad_files_in_one_line(
    services: Services, history: dict, tmp_path: Path
) -> None:
    runner = CliRunner()
    urls = ["--claims-url", services.claims_url, "--sources-url", services.sources_url]
    runner.invoke(cli, ["export", "--out", str(tmp_path), *urls])
    sources_file, claims_file = str(tmp_path / "sources.ndjson"), str(tmp_path / "claims.ndjson")
    garbage = tmp_path / "garbage.ndjson"
    garbage.write_text("not json\n")
    cases = [
        (["load", str(tmp_path / "missing.json"), *urls], "cannot read"),
        (["load", sources_file, *urls], "is not a scenario"),
        (["export", "--out", sources_file, *urls], "cannot write"),
        (["replay", str(tmp_path / "nope.ndjson"), "--known-at", "2024-01-01"], "cannot read"),
        (["replay", str(garbage), "--known-at", "2024-01-01"], "line 1 is not a feed item"),
        (["replay", sources_file, "--known-at", "2024-01-01"], "pass both exports"),
        (
            ["replay", sources_file, claims_file, claims_file, "--known-at", "2024-01-01"],
            "line 1 repeats an event given before",
        ),
        (["replay", sources_file, claims_file, "--known-at", "2999-01-01"], "in the future"),
        (["replay", sources_file, claims_file, "--known-at", "soon"], "not"),
    ]
    for arguments, message in cases:
        result = runner.invoke(cli, arguments)
        assert result.exit_code in (1, 2), (arguments, result.output)
        assert result.exception is None or isinstance(result.exception, SystemExit), arguments
        assert message in result.output, (arguments, result.output)
        assert "Traceback" not in result.output

    runner.invoke(cli, ["export", "--out", str(tmp_path / "slice"), "--after", "3", *urls])
    sliced = runner.invoke(
        cli,
        [
            "replay",
            str(tmp_path / "slice" / "sources.ndjson"),
            claims_file,
            "--known-at",
            "2024-01-01",
        ],
    )
    assert sliced.exit_code == 1
    assert "fails verification at position 4" in sliced.output


@pytest.mark.parametrize(
    ("setting", "value", "reason"),
    [
        ("CLAIMS_URL", "http://", "with a host"),
        ("CLAIMS_URL", "localhost:8000", "with a host"),
        ("SOURCES_URL", "http://editor:secret@127.0.0.1:8001", "no user or password"),
        ("SOURCES_URL", "http://127.0.0.1:8001?x=1", "no query"),
    ],
)
def test_the_command_line_checks_service_urls_as_the_services_do(
    setting: str, value: str, reason: str
) -> None:
    result = CliRunner().invoke(cli, ["verify"], env={setting: value})
    assert result.exit_code == 2, result.output
    told = " ".join(result.output.replace("│", " ").split())
    assert setting in told and reason in told
    assert "secret" not in told


@pytest.mark.parametrize(
    ("command", "code", "told"),
    [
        (["verify"], 2, "is the sources service, not the claims service"),
        (["export", "--out", "{out}"], 1, "is the sources service, not the claims service"),
        (["rebuild", "--service", "sources"], 1, "is the claims service, not the sources service"),
    ],
)
def test_the_command_line_refuses_the_two_urls_swapped(
    services: Services, command: list[str], code: int, told: str, tmp_path: Path
) -> None:
    swapped = ["--claims-url", services.sources_url, "--sources-url", services.claims_url]
    out = tmp_path / "exports"
    asked = [part.format(out=out) for part in command]
    result = CliRunner().invoke(cli, [*asked, *swapped])
    assert result.exit_code == code, result.output
    assert told in " ".join(result.output.split())
    assert "Traceback" not in result.output
    assert not out.exists() or list(out.iterdir()) == []


def test_the_command_line_takes_a_service_url_with_spaces_around_as_the_services_do() -> None:
    nowhere = f"http://127.0.0.1:{free_port()}"
    padded = {"CLAIMS_URL": f" {nowhere} ", "SOURCES_URL": f" {nowhere}\t"}
    result = CliRunner().invoke(cli, ["verify"], env=padded)
    assert result.exit_code == 2, result.output
    assert f"{nowhere}/health" in " ".join(result.output.split())


def test_verify_notices_the_newest_events_deleted(
    services: Services, history: dict, database_url: str
) -> None:
    head = services.sources.get("/feed", params={"limit": 1}).json()["head"]
    verdict(services, history["claims"][1])
    run_sql(
        database_url,
        "DELETE FROM stored_events WHERE rowid = ?",
        "DELETE FROM {schema}.sources_events WHERE notification_id = %s",
        head,
    )
    urls = ["--claims-url", services.claims_url, "--sources-url", services.sources_url]
    result = CliRunner().invoke(cli, ["verify", *urls])
    assert result.exit_code == 1
    assert "events after this head are" in result.output


def test_a_replaced_newest_event_is_noticed_and_rebuild_keeps_the_trace(
    database_url: str, claims_database_url: str
) -> None:
    services = coming_and_going(database_url, claims_database_url)
    with (
        serving(services.claims_app, services.claims_port) as claims_url,
        httpx.Client(base_url=claims_url) as claims,
    ):
        with services.serve_sources() as sources_url:
            for name in ("first", "newest"):
                httpx.post(f"{sources_url}/sources", json={"name": name, "kind": "wire"})
            head = httpx.get(f"{sources_url}/feed").json()["head"]
            wait_until(lambda: claims.get("/health").json()["follower"]["position"] == head)
        run_sql(
            database_url,
            "DELETE FROM stored_events WHERE rowid = ?",
            "DELETE FROM {schema}.sources_events WHERE notification_id = %s",
            head,
        )
        with services.serve_sources() as sources_url:
            missing = "newest events are missing"
            wait_until(lambda: missing in str(claims.get("/health").json()["follower"]))
            assert claims.get("/health").json()["status"] == "degraded"
            refused = claims.post("/admin/rebuild")
            assert refused.status_code == 409, refused.text
            assert "events after this head are missing" in refused.json()["detail"]
            health = httpx.get(f"{sources_url}/health").json()
            assert health["status"] == "degraded"
            assert missing in health["writes_refused"]
            new = {"name": "new", "kind": "wire"}
            refused = httpx.post(f"{sources_url}/sources", json=new)
            assert refused.status_code == 503, refused.text
            assert missing in refused.json()["detail"]
            assert httpx.get(f"{sources_url}/feed").json()["head"] == head - 1
        accept_the_loss(database_url)
        with services.serve_sources() as sources_url:
            written = httpx.post(f"{sources_url}/sources", json={"name": "new", "kind": "wire"})
            assert written.status_code == 201, written.text
            urls = ["--claims-url", claims_url, "--sources-url", sources_url]
            result = CliRunner().invoke(cli, ["verify", *urls])
            assert result.exit_code == 1, result.output
            assert f"sources: BROKEN at position {head}" in result.output
            assert "it was replaced" in result.output
            refused = claims.post("/admin/rebuild")
            assert refused.status_code == 409, refused.text
            assert "it was replaced" in refused.json()["detail"]


def accept_the_loss(database_url: str) -> None:
    """What docs/audit.md tells an operator to do to take writes again after losing events."""
    tables = ("source_view", "rating_view", "evidence_view", "correction_view", "retraction_view")
    for table in tables:
        run_sql(database_url, f"DROP TABLE {table}", f"DROP TABLE {{schema}}.{table}")
    run_sql(database_url, "DROP TABLE idempotency_record", "DROP TABLE {schema}.idempotency_record")
    run_sql(
        database_url,
        "DELETE FROM projection_tracking WHERE name = 'sources'",
        "DELETE FROM {schema}.projection_tracking WHERE name = 'sources'",
    )


def wait_until(condition: Callable[[], bool], seconds: float = 10) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "the condition did not hold in time"
        time.sleep(0.05)


def test_rebuild_refuses_an_altered_claims_log(
    services: Services, history: dict, claims_database_url: str
) -> None:
    claim = history["claims"][0]
    before = services.claims.get(f"/claims/{claim}").json()
    run_sql(
        claims_database_url,
        "UPDATE stored_events SET state = CAST(replace(CAST(state AS TEXT),"
        " 'Kharkiv', 'Kyiv') AS BLOB)",
        "UPDATE {schema}.claims_events SET state = convert_to(replace(convert_from(state, 'UTF8'),"
        " 'Kharkiv', 'Kyiv'), 'UTF8')",
    )
    refused = services.claims.post("/admin/rebuild")
    assert refused.status_code == 409, refused.text
    assert "the claims log fails verification" in refused.json()["detail"]
    assert services.claims.get(f"/claims/{claim}").json() == before


def test_a_claims_log_missing_its_newest_events_takes_no_writes_until_rebuilt(
    database_url: str, claims_database_url: str
) -> None:
    services = coming_and_going(database_url, claims_database_url)
    with services.serve_sources():
        with serving(services.claims_app, services.claims_port) as claims_url:
            for text in ("first", "newest"):
                httpx.post(f"{claims_url}/claims", json={"text": text}).raise_for_status()
            head = httpx.get(f"{claims_url}/feed").json()["head"]
        run_sql(
            claims_database_url,
            "DELETE FROM stored_events WHERE rowid = ?",
            "DELETE FROM {schema}.claims_events WHERE notification_id = %s",
            head,
        )
        settings = ClaimsSettings(
            database_url=claims_database_url,
            sources_url=f"http://127.0.0.1:{services.sources_port}",
            follower_wait=0.3,
        )
        with (
            serving(create_claims_app(settings)) as claims_url,
            httpx.Client(base_url=claims_url, timeout=30) as claims,
        ):
            health = claims.get("/health").json()
            assert health["status"] == "degraded"
            assert "newest events are missing" in health["writes_refused"]
            refused = claims.post("/claims", json={"text": "would take a lost position"})
            assert_problem(refused, 503)
            assert claims.get("/feed").json()["head"] == head - 1
            assert claims.post("/admin/rebuild").status_code == 200
            assert claims.get("/health").json()["writes_refused"] is None
            assert claims.post("/claims", json={"text": "after the rebuild"}).status_code == 201
