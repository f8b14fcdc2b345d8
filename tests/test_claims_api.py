"""The claims service's own endpoints, its checks on the sources service, and its follower."""

import socket
import threading
import time
import uuid
from collections.abc import Callable
from contextlib import ExitStack
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from eventsourcing.domain import event
from sqlmodel import Session
from typer.testing import CliRunner

from services.claims.bootstrap import create_app as create_claims_app
from services.claims.projections import digest_rows
from services.claims.verdicts import history
from services.sources.bootstrap import create_app as create_sources_app
from services.sources.claims import ANSWERED_WITHIN, HttpClaimDirectory
from services.sources.domain import Evidence
from shared.cli import app as cli
from shared.eventstore import FactcheckAggregate
from shared.settings import ClaimsSettings, SourcesSettings
from shared.timeaxes import parse_instant, recording_clock
from tests.conftest import KnownClaims, Services, read_connections_held
from tests.newsroom import KHARKIV_CLAIM, new_claim, new_source, post_evidence, rate, verdict
from tests.servers import free_port, serving
from tests.test_projection_replay import DECLARED_INDEXES, verdict_indexes
from tests.test_sources_rejections import UNKNOWN, assert_problem


def test_claims_are_registered_reworded_ruled_and_listed(services: Services) -> None:
    claims = services.claims
    created = claims.post(
        "/claims", json={"text": KHARKIV_CLAIM, "context": "Reuters, 6 Jan", "tags": ["ukraine"]}
    )
    assert created.status_code == 201
    claim = created.json()
    assert {"id", "position", "recorded_at", "version"} <= set(claim)
    reworded = claims.post(
        f"/claims/{claim['id']}/rewording",
        json={"text": KHARKIV_CLAIM.replace("struck", "hit"), "reason": "house style"},
    )
    assert reworded.status_code == 201
    ruled = claims.post(
        f"/claims/{claim['id']}/rulings",
        json={
            "status": "suspected",
            "rationale": "one official source so far",
            "effective_at": "2024-01-06T12:00:00Z",
        },
    )
    assert ruled.status_code == 201, ruled.text
    assert ruled.json()["version"] == 3

    one = claims.get(f"/claims/{claim['id']}").json()
    assert one["text"].startswith("Russia hit Kharkiv")
    assert one["tags"] == ["ukraine"]
    assert [ruling["status"] for ruling in one["rulings"]] == ["suspected"]
    page = claims.get("/claims").json()
    assert [item["id"] for item in page["items"]] == [claim["id"]]
    feed = claims.get("/feed").json()
    assert [item["type"] for item in feed["items"]] == [
        "ClaimRegistered",
        "ClaimReworded",
        "ClaimRuled",
    ]
    history = claims.get(f"/claims/{claim['id']}/history").json()["events"]
    assert [event["type"] for event in history] == [item["type"] for item in feed["items"]]
    assert history[2]["at"] == "2024-01-06T12:00:00Z"
    assert history[0]["metadata"]["actor"] == "anonymous"


def test_a_history_says_how_far_the_sources_feed_in_it_reaches(services: Services) -> None:
    """A follower behind the sources service leaves their newest events out of the history,
    and its basis says which are in."""
    claim = new_claim(services)
    source = new_source(services, "agency", "B")
    first = post_evidence(services, source, claim, "2024-01-05T00:00:00Z")
    verdict(services, claim)
    path = f"/claims/{claim}/history"
    followed = services.claims.get(path).json()
    services.claims_app.state.follower.stop()
    later = post_evidence(services, source, claim, "2024-01-06T00:00:00Z")
    behind = services.claims.get(path).json()

    def sources_events(history: dict[str, Any]) -> list[int]:
        return [event["position"] for event in history["events"] if event["service"] == "sources"]

    assert followed["basis"]["position"] == first["position"]
    assert behind["basis"] == followed["basis"]
    assert sources_events(behind) == sources_events(followed)
    assert first["position"] in sources_events(behind)
    assert later["position"] > behind["basis"]["position"]
    assert behind["basis"]["known_at"] < later["recorded_at"]


def test_a_history_holds_no_sources_event_past_its_basis(services: Services) -> None:
    """The basis is taken before the history is read, and the follower may apply more events
    meanwhile: they are left out, so that the basis says what the answer holds."""
    claim = new_claim(services)
    source = new_source(services, "agency", "B")
    first = post_evidence(services, source, claim, "2024-01-05T00:00:00Z")
    second = post_evidence(services, source, claim, "2024-01-06T00:00:00Z")
    verdict(services, claim)
    with Session(services.claims_app.state.engine) as session:
        held = history(
            session, uuid.UUID(claim), parse_instant(first["recorded_at"]), first["position"]
        )
    positions = [entry.position for entry in held if entry.service == "sources"]
    assert max(positions) == first["position"] < second["position"], positions


def test_a_history_before_the_sources_feed_is_read_is_refused_503(
    claims_database_url: str,
) -> None:
    """It would hold none of the sources service's events, and could not say so."""
    claims_app = create_claims_app(
        ClaimsSettings(database_url=claims_database_url, follow=False, read_wait=0.5)
    )
    with serving(claims_app) as claims_url, httpx.Client(base_url=claims_url) as claims:
        claim = claims.post("/claims", json={"text": KHARKIV_CLAIM}).json()["id"]
        unread = claims.get(f"/claims/{claim}/history")
        unknown = claims.get(f"/claims/{UNKNOWN}/history")
    assert_problem(unread, 503)
    assert "has not been read yet" in unread.json()["detail"]
    assert unread.headers["retry-after"] == "1"
    assert_problem(unknown, 404)


def test_a_history_asked_on_its_basis_is_the_same_and_known_at_bounds_both_services(
    services: Services,
) -> None:
    claim = new_claim(services)
    source = new_source(services, "agency", "B")
    first = post_evidence(services, source, claim, "2024-01-05T00:00:00Z")
    path = f"/claims/{claim}/history"
    then = services.claims.get(path, params={"min_position": first["position"]}).json()
    ruling = services.claims.post(
        f"/claims/{claim}/rulings",
        json={"status": "confirmed", "rationale": "editor", "effective_at": "2024-01-06T00:00:00Z"},
    ).json()
    second = post_evidence(services, source, claim, "2024-01-06T00:00:00Z")
    now = services.claims.get(path, params={"min_position": second["position"]}).json()
    again = services.claims.get(path, params={"known_at": then["basis"]["known_at"]}).json()

    def events(history: dict[str, Any]) -> set[tuple[str, int]]:
        return {(event["service"], event["position"]) for event in history["events"]}

    assert again == then
    assert events(now) - events(then) == {
        ("claims", ruling["position"]),
        ("sources", second["position"]),
    }
    assert now["basis"]["position"] >= second["position"] > then["basis"]["position"]
    before = services.claims.get(path, params={"known_at": "2020-01-01"})
    assert_problem(before, 422, "known_at")


def test_the_ruling_is_shown_beside_the_verdict_on_both_axes(services: Services) -> None:
    claim = new_claim(services)
    source = new_source(services, "prosecutor", "C")
    post_evidence(services, source, claim, "2024-01-05T00:00:00Z")
    ruling = services.claims.post(
        f"/claims/{claim}/rulings",
        json={"status": "confirmed", "rationale": "editor", "effective_at": "2024-01-06T00:00:00Z"},
    ).json()
    after = verdict(services, claim, at="2024-01-07")
    assert after["status"] == "suspected", "a ruling never replaces the computed verdict"
    assert after["ruling"]["status"] == "confirmed"
    assert verdict(services, claim, at="2024-01-05T12:00:00Z")["ruling"] is None
    assert verdict(services, claim, at="2024-01-07", known_at=ruling["recorded_at"])["ruling"]


def test_bad_claims_input_is_rejected_and_not_recorded(services: Services) -> None:
    claims = services.claims
    claim = new_claim(services)
    before = claims.get("/feed").json()["head"]
    assert_problem(claims.post("/claims", json={"text": ""}), 422, "text")
    assert_problem(claims.post("/claims", json={"text": "x", "tags": [""]}), 422, "tags.0")
    assert_problem(claims.post("/claims", json={"text": "x", "author": "me"}), 422, "author")
    rulings = f"/claims/{claim}/rulings"
    bad_status = {"status": "true", "rationale": "x", "effective_at": "2024-01-06T00:00:00Z"}
    assert_problem(claims.post(rulings, json=bad_status), 422, "status")
    naive = {"status": "refuted", "rationale": "x", "effective_at": "2024-01-06T00:00:00"}
    assert_problem(claims.post(rulings, json=naive), 422, "effective_at")
    assert_problem(
        claims.post(f"/claims/{claim}/rewording", json={"text": KHARKIV_CLAIM, "reason": "x"}),
        422,
        "text",
    )
    ruling = {"status": "refuted", "rationale": "x", "effective_at": "2024-01-06T00:00:00Z"}
    assert_problem(claims.post(f"/claims/{UNKNOWN}/rulings", json=ruling), 404)
    assert claims.get("/feed").json()["head"] == before


def test_bad_verdict_questions_are_rejected(services: Services) -> None:
    claim = new_claim(services)
    claims = services.claims
    assert_problem(claims.get(f"/claims/{UNKNOWN}/verdict"), 404)
    assert_problem(claims.get(f"/claims/{UNKNOWN}/timeline"), 404)
    assert_problem(claims.get(f"/claims/{UNKNOWN}/history"), 404)
    path = f"/claims/{claim}/verdict"
    assert_problem(claims.get(path, params={"at": "2024-01-07T00:00:00"}), 422, "at")
    assert_problem(claims.get(path, params={"at": "soon"}), 422, "at")
    both = claims.get(path, params={"at": "soon", "known_at": "later"})
    assert [error["field"] for error in both.json()["errors"]] == ["at", "known_at"]
    assert_problem(claims.get(path, params={"known_at": "2999-01-01"}), 422, "known_at")
    assert_problem(claims.get(path, params={"min_position": -1}), 422, "min_position")
    twice = [("at", "2024-01-03"), ("at", "2024-01-07")]
    assert_problem(claims.get(path, params=twice), 422, "at")
    assert_problem(claims.get(path, params={"evidence_limit": 5000}), 422, "evidence_limit")
    assert_problem(claims.get("/claims/not-a-uuid/verdict"), 422, "claim_id")


def test_an_after_past_every_position_is_an_empty_page_on_every_store(services: Services) -> None:
    new_claim(services, KHARKIV_CLAIM)
    for after in (2**31 - 1, 2**31, 2**63 - 1):
        pages = [
            services.claims.get("/claims", params={"after": after}),
            services.sources.get("/evidence", params={"after": after}),
        ]
        for page in pages:
            assert page.status_code == 200, page.text
            assert page.json()["items"] == []
        rejected = services.claims.get("/follower/rejected", params={"after": after})
        assert rejected.status_code == 200, rejected.text
        assert rejected.json() == []


def test_min_position_past_the_feed_answers_503_with_retry_after(services: Services) -> None:
    claim = new_claim(services)
    response = services.claims.get(f"/claims/{claim}/verdict", params={"min_position": 10**9})
    assert_problem(response, 503)
    assert int(response.headers["Retry-After"]) >= 1


def test_min_position_recorded_after_known_at_is_refused(services: Services) -> None:
    """The answer must include `min_position`; one as known before it was recorded cannot."""
    claim = new_claim(services)
    source = new_source(services, "agency", "B")
    early = post_evidence(services, source, claim, "2024-01-05T00:00:00Z")
    late = post_evidence(services, source, claim, "2024-01-05T00:00:00Z", stance="refutes")
    path = f"/claims/{claim}/verdict"
    pinned = {"known_at": early["recorded_at"]}
    refused = services.claims.get(path, params={**pinned, "min_position": late["position"]})
    assert_problem(refused, 422, "min_position")
    taken = services.claims.get(path, params={**pinned, "min_position": early["position"]})
    assert taken.status_code == 200, taken.text
    assert taken.json()["basis"]["position"] == early["position"]


def test_a_min_position_not_yet_applied_is_refused_at_once_for_a_past_known_at(
    services: Services,
) -> None:
    """Whatever is recorded at a position the follower has not applied yet is recorded after
    everything it has: as known before an item it has applied, waiting cannot help, so the
    answer is 422 at once, or 422 on `known_at` first when that is before the claim was
    registered."""
    claim = new_claim(services)
    source = new_source(services, "agency", "B")
    early = post_evidence(services, source, claim, "2024-01-05T00:00:00Z")
    item = post_evidence(services, source, claim, "2024-01-05T00:00:00Z")
    path = f"/claims/{claim}/verdict"
    caught_up = services.claims.get(path, params={"min_position": item["position"]})
    assert caught_up.status_code == 200, caught_up.text
    beyond = {"min_position": item["position"] + 1}
    for known_at, field in ((early["recorded_at"], "min_position"), ("2000-01-01", "known_at")):
        began = time.monotonic()
        refused = services.claims.get(path, params={**beyond, "known_at": known_at})
        assert time.monotonic() - began < 1.0, "no wait for the follower (READ_WAIT is 2 s)"
        assert_problem(refused, 422, field)
    recent = services.claims.get(path, params=beyond)
    assert_problem(recent, 503)


def test_a_basis_asked_again_after_concurrent_rulings_gives_the_same_answer(
    services: Services,
) -> None:
    """Rulings and rewordings recorded while verdicts are answered: each answer, asked again
    with its basis once the writes are over, is the same, ClaimReview's wording included."""
    claim = new_claim(services)
    stop = threading.Event()
    written: list[tuple[str, int]] = []

    def write(path: str, body: Callable[[int], dict[str, str]]) -> None:
        with httpx.Client(base_url=services.claims_url, timeout=30) as own:
            n = 0
            while not stop.is_set():
                answer = own.post(f"/claims/{claim}/{path}", json=body(n))
                written.append((path, answer.status_code))
                n += 1

    writers = [
        threading.Thread(
            target=write,
            args=(
                "rulings",
                lambda n: {
                    "status": "suspected",
                    "rationale": f"ruling {n}",
                    "effective_at": "2024-01-01T00:00:00Z",
                },
            ),
        ),
        threading.Thread(
            target=write, args=("rewording", lambda n: {"text": f"wording {n}", "reason": "r"})
        ),
    ]
    for writer in writers:
        writer.start()
    answered: list[tuple[str, httpx.Response]] = []
    try:
        for n in range(120):
            path = f"/claims/{claim}/" + ("verdict" if n % 2 else "claimreview")
            answered.append((path, services.claims.get(path, params={"at": "2024-01-02"})))
    finally:
        stop.set()
        for writer in writers:
            writer.join(timeout=30)
    assert {path for path, _ in written} == {"rulings", "rewording"}
    assert {status for _, status in written} == {201}
    differing = 0
    for path, first in answered:
        assert first.status_code == 200, first.text
        if path.endswith("verdict"):
            basis = first.json()["basis"]
            again = services.claims.get(
                path, params={"at": basis["at"], "known_at": basis["known_at"]}
            )
        else:
            again = services.claims.get(first.headers["Content-Location"])
        differing += again.json() != first.json()
    assert differing == 0, f"{differing} of {len(answered)} answers changed on their basis"


def test_a_recording_clock_ahead_of_the_wall_clock_answers_with_the_latest_ruling(
    services: Services,
) -> None:
    """After the wall clock steps back, the recording clock stays ahead of it: a claim and a
    ruling recorded then are still answered at once, on a basis that can be asked again."""
    ahead = datetime.now(UTC) + timedelta(seconds=1)
    recording_clock.not_before(ahead)
    try:
        claim = new_claim(services)
        path = f"/claims/{claim}/verdict"
        first = services.claims.get(path)
        assert first.status_code == 200, first.text
        ruling = {"status": "suspected", "rationale": "x", "effective_at": "2024-01-06T00:00:00Z"}
        ruled = services.claims.post(f"/claims/{claim}/rulings", json=ruling)
        assert ruled.status_code == 201, ruled.text
        answer = services.claims.get(path)
        assert answer.status_code == 200, answer.text
        assert answer.json()["ruling"]["status"] == "suspected"
        basis = answer.json()["basis"]
        again = services.claims.get(path, params={"at": basis["at"], "known_at": basis["known_at"]})
        assert again.json() == answer.json()
    finally:
        time.sleep(max(0.0, (ahead - datetime.now(UTC)).total_seconds()))


def test_sources_checks_claims_over_http(services: Services) -> None:
    claim = new_claim(services)
    source = new_source(services, "agency", "B")
    before = services.sources.get("/feed").json()["head"]
    body = {
        "source_id": source,
        "claim_id": UNKNOWN,
        "stance": "supports",
        "strength": "weak",
        "published_at": "2024-01-05T00:00:00Z",
        "summary": "x",
    }
    assert_problem(services.sources.post("/evidence", json=body), 422, "claim_id")
    assert services.sources.get("/feed").json()["head"] == before
    assert post_evidence(services, source, claim, "2024-01-05T00:00:00Z")["position"] > before


def test_claims_service_down_means_503_and_nothing_recorded(database_url: str) -> None:
    from services.sources.bootstrap import create_app
    from shared.settings import SourcesSettings
    from tests.servers import free_port

    nowhere = f"http://127.0.0.1:{free_port()}"
    app = create_app(SourcesSettings(database_url=database_url, claims_url=nowhere))
    with serving(app) as base_url:
        import httpx

        with httpx.Client(base_url=base_url) as client:
            source = client.post("/sources", json={"name": "x", "kind": "y"}).json()
            body = {
                "source_id": source["id"],
                "claim_id": str(uuid.uuid4()),
                "stance": "supports",
                "strength": "weak",
                "published_at": "2024-01-05T00:00:00Z",
                "summary": "x",
            }
            response = client.post("/evidence", json=body)
            assert_problem(response, 503)
            assert "Retry-After" in response.headers
            assert client.get("/feed").json()["head"] == source["position"]


def follower_health(claims_url: str, reached: Callable[[dict[str, Any]], bool]) -> dict[str, Any]:
    """The claims service's follower status, once `reached` holds of it (within 10 s)."""
    deadline = time.monotonic() + 10
    while True:
        follower = httpx.get(f"{claims_url}/health").json()["follower"]
        if reached(follower) or time.monotonic() > deadline:
            return follower
        time.sleep(0.05)


def test_a_claims_service_pointed_at_a_claims_feed_applies_nothing_from_it(
    database_url: str, claims_database_url: str, tmp_path: Path
) -> None:
    """Every feed page names its service, so SOURCES_URL set to a claims service is refused
    as such, and the same store then follows the sources service once the setting is right."""
    other = create_claims_app(
        ClaimsSettings(database_url=f"sqlite:///{tmp_path / 'other.db'}", follow=False)
    )
    sources = create_sources_app(SourcesSettings(database_url=database_url), claims=KnownClaims())
    with serving(other) as other_url, serving(sources) as sources_url:
        assert httpx.post(f"{other_url}/claims", json={"text": KHARKIV_CLAIM}).status_code == 201
        assert httpx.get(f"{other_url}/feed").json()["service"] == "claims"
        wrong = ClaimsSettings(
            database_url=claims_database_url, sources_url=other_url, follower_wait=0.2
        )
        with serving(create_claims_app(wrong)) as claims_url:
            follower = follower_health(claims_url, lambda status: bool(status["last_error"]))
            assert (
                "serves the claims service's feed, not the sources service's"
                in (follower["last_error"])
            )
            assert follower["position"] == 0
            assert httpx.get(f"{claims_url}/follower/rejected").json() == []
            refused = httpx.post(f"{claims_url}/admin/rebuild")
            assert_problem(refused, 503)
            assert "serves the claims service's feed" in refused.json()["detail"]
            assert "retry-after" not in refused.headers
        with_path = ClaimsSettings(
            database_url=claims_database_url, sources_url=f"{sources_url}/api", follower_wait=0.2
        )
        with serving(create_claims_app(with_path)) as claims_url:
            follower = follower_health(claims_url, lambda status: bool(status["last_error"]))
            assert f"{sources_url}/api/feed answered 404" in follower["last_error"]
            assert "not the sources service's base URL" in follower["last_error"]
        source = httpx.post(f"{sources_url}/sources", json={"name": "n", "kind": "k"}).json()
        right = ClaimsSettings(
            database_url=claims_database_url, sources_url=sources_url, follower_wait=0.2
        )
        with serving(create_claims_app(right)) as claims_url:
            follower = follower_health(
                claims_url, lambda status: status["position"] >= source["position"]
            )
            assert follower["position"] == source["position"]
            assert follower["last_error"] is None


def test_tags_are_a_set_kept_in_the_order_first_given(services: Services) -> None:
    created = services.claims.post(
        "/claims", json={"text": KHARKIV_CLAIM, "tags": ["Kharkiv", "missile", "Kharkiv"]}
    )
    assert created.status_code == 201, created.text
    assert created.json()["tags"] == ["Kharkiv", "missile"]
    read = services.claims.get(f"/claims/{created.json()['id']}").json()
    assert read["tags"] == ["Kharkiv", "missile"]


def test_the_tag_limit_counts_each_tag_once(services: Services) -> None:
    twenty = [f"tag {number}" for number in range(20)]
    repeated = services.claims.post("/claims", json={"text": KHARKIV_CLAIM, "tags": twenty * 2})
    assert repeated.status_code == 201, repeated.text
    assert repeated.json()["tags"] == twenty
    assert_problem(
        services.claims.post(
            "/claims", json={"text": KHARKIV_CLAIM, "tags": [*twenty, "one more"]}
        ),
        422,
        "tags",
    )


def weak_support(source_id: str, claim_id: str) -> dict[str, str]:
    """An evidence body that differs only in its claim and source."""
    return {
        "source_id": source_id,
        "claim_id": claim_id,
        "stance": "supports",
        "strength": "weak",
        "published_at": "2024-01-05T00:00:00Z",
        "summary": "x",
    }


def test_a_claim_found_before_is_refused_503_once_the_claims_service_is_down(
    database_url: str, claims_database_url: str
) -> None:
    """A claim once found is taken without asking only while the claims service answers."""
    claims_app = create_claims_app(ClaimsSettings(database_url=claims_database_url, follow=False))
    with ExitStack() as claims_running:
        claims_url = claims_running.enter_context(serving(claims_app))
        claim = httpx.post(f"{claims_url}/claims", json={"text": KHARKIV_CLAIM}).json()["id"]
        sources_app = create_sources_app(
            SourcesSettings(database_url=database_url, claims_url=claims_url)
        )
        with serving(sources_app) as sources_url, httpx.Client(base_url=sources_url) as sources:
            source = sources.post("/sources", json={"name": "x", "kind": "y"}).json()
            body = weak_support(source["id"], claim)
            taken = sources.post("/evidence", json=body)
            assert taken.status_code == 201, taken.text
            with claims_app.state.projection.gate.closed(drain=1.0):
                time.sleep(ANSWERED_WITHIN + 0.1)
                rebuilding = httpx.get(f"{claims_url}/claims/{claim}")
                assert rebuilding.status_code == 503, "the claims service cannot tell now"
                while_rebuilding = sources.post("/evidence", json=body)
                assert while_rebuilding.status_code == 201, "but it answers: the claim stands"
            taken = while_rebuilding
            claims_running.close()
            time.sleep(ANSWERED_WITHIN + 0.1)
            refused = sources.post("/evidence", json=body)
            assert_problem(refused, 503)
            assert "cannot be reached" in refused.json()["detail"]
            assert sources.get("/feed").json()["head"] == taken.json()["position"]


def test_a_claim_found_before_is_taken_while_the_claims_service_is_too_busy_to_answer(
    database_url: str, claims_database_url: str
) -> None:
    """Readers hold every pooled connection of the claims service, so its answer about a claim
    times out; its `/health` still answers, and so a claim once found is taken."""
    claims_app = create_claims_app(ClaimsSettings(database_url=claims_database_url, follow=False))
    with serving(claims_app) as claims_url:
        sources_app = create_sources_app(
            SourcesSettings(database_url=database_url, claims_url=claims_url, claims_timeout=0.5)
        )
        with serving(sources_app) as sources_url, httpx.Client(base_url=sources_url) as sources:
            claim = httpx.post(f"{claims_url}/claims", json={"text": KHARKIV_CLAIM}).json()["id"]
            source = sources.post("/sources", json={"name": "x", "kind": "y"}).json()
            body = weak_support(source["id"], claim)
            assert sources.post("/evidence", json=body).status_code == 201
            with read_connections_held(claims_app.state.engine):
                time.sleep(ANSWERED_WITHIN + 0.1)
                with pytest.raises(httpx.TimeoutException):
                    httpx.get(f"{claims_url}/claims/{claim}", timeout=0.5)
                taken = sources.post("/evidence", json=body)
                unknown = sources.post("/evidence", json={**body, "claim_id": str(uuid.uuid4())})
            assert taken.status_code == 201, taken.text
            assert_problem(unknown, 503)
            assert "did not answer within 0.5 s (CLAIMS_TIMEOUT)" in unknown.json()["detail"]
            assert sources.get("/feed").json()["head"] == taken.json()["position"]


def test_a_claim_found_before_is_refused_while_the_claims_service_answers_nothing(
    database_url: str, claims_database_url: str
) -> None:
    """A frozen claims service, or one cut off, answers neither the question nor its
    `/health`. Its port is taken over by a listener that never answers."""
    port = free_port()
    claims_app = create_claims_app(ClaimsSettings(database_url=claims_database_url, follow=False))
    directory = HttpClaimDirectory(f"http://127.0.0.1:{port}", 0.5)
    sources_app = create_sources_app(SourcesSettings(database_url=database_url), directory)
    with serving(sources_app) as sources_url, httpx.Client(base_url=sources_url) as sources:
        source = sources.post("/sources", json={"name": "x", "kind": "y"}).json()
        with serving(claims_app, port) as claims_url:
            claim = httpx.post(f"{claims_url}/claims", json={"text": KHARKIV_CLAIM}).json()["id"]
            body = weak_support(source["id"], claim)
            taken = sources.post("/evidence", json=body)
            assert taken.status_code == 201, taken.text
        with socket.socket() as silent:
            silent.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            silent.bind(("127.0.0.1", port))
            silent.listen(16)
            time.sleep(ANSWERED_WITHIN + 0.1)
            frozen = sources.post("/evidence", json=body)
            assert_problem(frozen, 503)
            assert "did not answer within 0.5 s (CLAIMS_TIMEOUT)" in frozen.json()["detail"]
        refused = sources.post("/evidence", json=body)
        assert_problem(refused, 503)
        assert "cannot be reached" in refused.json()["detail"]
        assert sources.get("/feed").json()["head"] == taken.json()["position"]


def settled_health(sources: httpx.Client, **headers: str) -> dict[str, Any]:
    """The sources service's /health once its check of the claims setting has an answer."""
    deadline = time.monotonic() + 10
    while True:
        health = sources.get("/health", headers=headers).json()
        if health["claims_setting"] is not None or time.monotonic() > deadline:
            return health
        time.sleep(0.05)


def test_a_claims_setting_fault_found_at_start_clears_once_the_claims_service_answers(
    database_url: str, claims_database_url: str, tmp_path: Path
) -> None:
    """What answers at CLAIMS_URL while the claims service starts (here another service) is
    named, then forgotten once the claims service itself answers there."""
    port = free_port()
    claims_url = f"http://127.0.0.1:{port}"
    stand_in = create_sources_app(SourcesSettings(database_url=f"sqlite:///{tmp_path}/other.db"))
    sources_app = create_sources_app(
        SourcesSettings(database_url=database_url, claims_url=claims_url)
    )
    with serving(sources_app) as sources_url, httpx.Client(base_url=sources_url) as sources:
        with serving(stand_in, port):
            assert "answered 404" in str(settled_health(sources)["claims_setting"])
        claims_app = create_claims_app(
            ClaimsSettings(database_url=claims_database_url, follow=False)
        )
        with serving(claims_app, port):
            deadline = time.monotonic() + 10
            while sources.get("/health").json()["claims_setting"] and time.monotonic() < deadline:
                time.sleep(0.1)
            assert sources.get("/health").json()["claims_setting"] is None


@pytest.mark.parametrize(
    "wrong", ["claims service with a path", "claims service's own path", "sources service itself"]
)
def test_a_claims_url_that_is_not_the_claims_service_means_503_not_an_unknown_claim(
    database_url: str, claims_database_url: str, wrong: str
) -> None:
    """A 404 that does not name the claim is not "no such claim": nothing is recorded, and the
    answer blames the setting rather than the client's claim id."""
    sources_port, claims_port = free_port(), free_port()
    claims_url = {
        "claims service with a path": f"http://127.0.0.1:{claims_port}/api",
        "claims service's own path": f"http://127.0.0.1:{claims_port}/claims",
        "sources service itself": f"http://127.0.0.1:{sources_port}",
    }[wrong]
    claims_app = create_claims_app(
        ClaimsSettings(
            database_url=claims_database_url, sources_url=f"http://127.0.0.1:{sources_port}"
        )
    )
    sources_app = create_sources_app(
        SourcesSettings(database_url=database_url, claims_url=claims_url)
    )
    with (
        serving(claims_app, claims_port) as claims_base,
        serving(sources_app, sources_port) as sources_base,
        httpx.Client(base_url=claims_base) as claims,
        httpx.Client(base_url=sources_base) as sources,
    ):
        health = settled_health(sources)
        assert health["status"] == "degraded"
        assert f"CLAIMS_URL {claims_url}" in health["claims_setting"], "named before any evidence"
        claim = claims.post("/claims", json={"text": KHARKIV_CLAIM}).json()["id"]
        source = sources.post("/sources", json={"name": "agency", "kind": "test"}).json()["id"]
        head = sources.get("/feed").json()["head"]
        body = {
            "source_id": source,
            "claim_id": claim,
            "stance": "supports",
            "strength": "weak",
            "published_at": "2024-01-05T00:00:00Z",
            "summary": "x",
        }
        response = sources.post("/evidence", json=body)
        assert_problem(response, 503)
        assert f"CLAIMS_URL {claims_url}" in response.json()["detail"]
        assert "retry-after" not in response.headers, "a setting fault outlasts any retry"
        assert sources.get("/feed").json()["head"] == head


def test_unusable_feed_items_are_kept_as_rejected_and_do_not_stall(services: Services) -> None:
    claim = new_claim(services)
    source = new_source(services, "agency", "B")
    sources_app = services.sources_app.state.sources
    stray = Stray(note="not a sources event")
    bad = Evidence(
        source_id=uuid.UUID(source),
        claim_id=uuid.UUID(claim),
        stance="maybe",  # type: ignore[arg-type]
        strength="strong",
        published_at=Evidence.Event.create_timestamp(),
        url=None,
        quote=None,
        summary="invalid stance",
        derived_from=[],
    )
    with sources_app.recording():
        sources_app.save(stray)
        sources_app.save(bad)
    good = post_evidence(services, source, claim, "2024-01-05T00:00:00Z")
    answer = verdict(services, claim, at="2024-01-07", min_position=good["position"])
    assert answer["supporting_origins"] == 1
    rejected = services.claims.get("/follower/rejected").json()
    assert [item["type"] for item in rejected] == ["StrayNoted", "EvidenceSubmitted"]
    assert "unknown event type" in rejected[0]["reason"]
    assert rejected[1]["reason"].startswith("stance")


def test_rebuild_gives_identical_read_models(services: Services) -> None:
    claim = new_claim(services)
    prosecutor = new_source(services, "prosecutor", "C")
    other = new_source(services, "other", "B")
    first = post_evidence(services, prosecutor, claim, "2024-01-05T00:00:00Z")
    post_evidence(services, other, claim, "2024-01-04T00:00:00Z", stance="refutes")
    services.sources.post(
        f"/evidence/{first['id']}/correction",
        json={"changes": {"strength": "strong"}, "reason": "typo"},
    )
    services.sources.post(f"/sources/{other}/ratings", json={"reliability": "D", "rationale": "x"})
    before = verdict(services, claim, at="2024-01-07")
    engine = services.claims_app.state.engine
    with Session(engine) as session:
        digest_before = digest_rows(session)

    asked = time.monotonic()
    rebuilt = services.claims.post("/admin/rebuild")
    took = time.monotonic() - asked
    assert rebuilt.status_code == 200, rebuilt.text
    assert rebuilt.json()["position"] == before["basis"]["position"]
    times = rebuilt.json()["verify_seconds"], rebuilt.json()["rebuild_seconds"]
    assert min(times) > 0 and sum(times) <= took
    with Session(engine) as session:
        assert digest_rows(session) == digest_before
    assert verdict_indexes(engine) == DECLARED_INDEXES
    after = verdict(services, claim, at="2024-01-07")
    assert {key: after[key] for key in ("probability", "status", "evidence")} == {
        key: before[key] for key in ("probability", "status", "evidence")
    }

    result = CliRunner().invoke(cli, ["rebuild", "--claims-url", services.claims_url])
    assert result.exit_code == 0, result.output
    assert f"applied to {before['basis']['position']}" in result.output
    with Session(engine) as session:
        assert digest_rows(session) == digest_before
    urls = ["--claims-url", services.claims_url, "--sources-url", services.sources_url]
    both = CliRunner().invoke(cli, ["rebuild", "--service", "all", *urls])
    assert both.exit_code == 0, both.output
    assert "rebuilt sources: 2 evidence items" in both.output
    assert "verified in " in both.output and "rebuilt in " in both.output
    assert f"sources feed applied to {before['basis']['position']}" in both.output
    assert services.sources.get(f"/evidence/{first['id']}").json()["strength"] == "strong"


def test_health_reports_the_follower(services: Services) -> None:
    assert services.claims.get("/health").json()["follower"]["applied_hash"] is None
    claim = new_claim(services)
    source = new_source(services, "agency", "B")
    written = post_evidence(services, source, claim, "2024-01-05T00:00:00Z")
    verdict(services, claim)
    health = services.claims.get("/health").json()
    assert health["status"] == "ok"
    assert health["follower"]["position"] >= written["position"]
    assert health["follower"]["head"] >= written["position"]
    assert health["follower"]["lag"] == 0
    assert health["follower"]["connected"] is True
    applied = services.sources.get("/feed", params={"after": health["follower"]["position"] - 1})
    assert health["follower"]["applied_hash"] == applied.json()["items"][0]["metadata"]["hash"]


class Stray(FactcheckAggregate):
    """An event type the claims service does not know."""

    @event("Noted")
    def __init__(self, note: str) -> None:
        self.note = note


def test_questions_with_empty_misspelt_or_today_times(services: Services) -> None:
    claim = new_claim(services)
    path = f"/claims/{claim}/verdict"
    assert_problem(services.claims.get(path, params={"at": ""}), 422, "at")
    assert_problem(services.claims.get(path, params={"knwon_at": "2024-01-01"}), 422, "knwon_at")
    assert_problem(services.claims.get(path, params={"at": "9999-12-31T23:59:59-12:00"}), 422, "at")
    today = datetime.now(UTC).date().isoformat()
    answer = services.claims.get(path, params={"known_at": today})
    assert answer.status_code == 200, answer.text
    assert answer.json()["basis"]["known_at"] <= datetime.now(UTC).isoformat()
    future_ruling = {"status": "refuted", "rationale": "x", "effective_at": "2099-01-01T00:00:00Z"}
    assert_problem(
        services.claims.post(f"/claims/{claim}/rulings", json=future_ruling), 422, "effective_at"
    )
    assert_problem(services.claims.post("/claims", json={"text": "nul\u0000"}), 422, "text")


def test_the_history_leaves_out_what_happened_after_evidence_left_the_claim(
    services: Services,
) -> None:
    here, there = new_claim(services), new_claim(services, "another claim")
    mover, stayer = new_source(services, "mover", "B"), new_source(services, "stayer", "C")
    moved = post_evidence(services, mover, here, "2024-01-05T00:00:00Z")["id"]
    post_evidence(services, stayer, here, "2024-01-05T00:00:00Z")

    def correct(changes: dict) -> None:
        answer = services.sources.post(
            f"/evidence/{moved}/correction", json={"changes": changes, "reason": "x"}
        )
        assert answer.status_code == 201, answer.text

    correct({"strength": "strong"})
    correct({"claim_id": there})
    retracted = services.sources.post(
        f"/evidence/{moved}/retraction",
        json={"published_at": "2024-01-06T00:00:00Z", "reason": "x"},
    )
    assert retracted.status_code == 201, retracted.text
    rate(services, mover, "A")
    rate(services, stayer, "B")
    verdict(services, here)

    def events(claim: str) -> list[tuple[str, str]]:
        answer = services.claims.get(f"/claims/{claim}/history").json()["events"]
        names = {mover: "mover", stayer: "stayer", moved: "moved"}
        return [
            (names.get(event["stream_id"], "other"), event["type"])
            for event in answer
            if event["service"] == "sources"
        ]

    assert events(here) == [
        ("mover", "SourceRegistered"),
        ("mover", "SourceRated"),
        ("stayer", "SourceRegistered"),
        ("stayer", "SourceRated"),
        ("moved", "EvidenceSubmitted"),
        ("other", "EvidenceSubmitted"),
        ("moved", "EvidenceCorrected"),
        ("moved", "EvidenceCorrected"),
        ("stayer", "SourceRated"),
    ]
    assert events(there) == [
        ("mover", "SourceRegistered"),
        ("mover", "SourceRated"),
        ("moved", "EvidenceSubmitted"),
        ("moved", "EvidenceCorrected"),
        ("moved", "EvidenceCorrected"),
        ("moved", "EvidenceRetracted"),
        ("mover", "SourceRated"),
    ]
