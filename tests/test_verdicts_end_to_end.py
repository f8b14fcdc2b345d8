"""Both services on real servers: the verdict moves as evidence arrives, on both time axes."""

from typing import Any

from tests.conftest import Services
from tests.newsroom import new_claim, new_source, post_evidence, rate, verdict
from tests.test_sources_rejections import assert_problem


def test_kharkiv_moves_from_suspicion_to_confirmation(services: Services) -> None:
    claim = new_claim(services)
    prosecutor = new_source(services, "Kharkiv Region Prosecutor's Office", "C")
    examination = post_evidence(services, prosecutor, claim, "2024-01-05T12:00:00+02:00")
    debris = post_evidence(services, prosecutor, claim, "2024-01-06T12:00:00+02:00")

    before = verdict(services, claim, at="2024-01-07")
    assert before["status"] == "suspected"
    assert before["likelihood"] == "likely"
    assert before["supporting_origins"] == 1, "one prosecutor, two items: one origin"
    assert before["evidence"]["items"][0]["evidence_id"] == examination["id"]
    assert before["basis"]["known_at"] >= debris["recorded_at"]

    white_house = new_source(services, "White House National Security Council", "B")
    kirby = post_evidence(
        services, white_house, claim, "2024-01-04T20:00:00+02:00", strength="strong"
    )
    after = verdict(services, claim, at="2024-01-07")
    assert after["status"] == "confirmed"
    assert after["independent_origins"] == 2
    assert after["probability"] > before["probability"]
    assert after["basis"]["position"] >= kirby["position"]
    assert [item["evidence_id"] for item in after["evidence"]["items"]] == [
        kirby["id"],
        examination["id"],
    ], "strongest first"
    for limit in (1, 0):
        limited = verdict(services, claim, at="2024-01-07", evidence_limit=limit)
        assert limited["evidence"]["items"] == after["evidence"]["items"][:limit]
        assert limited["evidence"]["counted_origins"] == 2
        assert limited["probability"] == after["probability"]

    as_known_before = verdict(services, claim, at="2024-01-07", known_at=debris["recorded_at"])
    assert as_known_before["status"] == "suspected"
    assert as_known_before["probability"] == before["probability"]
    assert as_known_before["basis"]["position"] == debris["position"]

    registered = services.claims.get(f"/claims/{claim}").json()["registered_at"]
    too_early = services.claims.get(
        f"/claims/{claim}/verdict", params={"known_at": _just_before(registered)}
    )
    assert too_early.status_code == 422
    assert too_early.json()["errors"][0]["field"] == "known_at"


def test_late_and_out_of_order_evidence(services: Services) -> None:
    claim = new_claim(services)
    early = new_source(services, "early", "B")
    late = new_source(services, "late", "B")
    first = post_evidence(services, early, claim, "2024-01-06T00:00:00Z")
    second = post_evidence(services, late, claim, "2024-01-03T00:00:00Z", strength="strong")

    now = verdict(services, claim, at="2024-01-04")
    assert now["supporting_origins"] == 1
    assert now["evidence"]["items"][0]["evidence_id"] == second["id"]
    then = verdict(services, claim, at="2024-01-04", known_at=first["recorded_at"])
    assert then["status"] == "unverified"
    assert then["independent_origins"] == 0
    both = verdict(services, claim, at="2024-01-07")
    assert both["independent_origins"] == 2
    assert (
        verdict(services, claim, at="2024-01-07", known_at=first["recorded_at"])[
            "independent_origins"
        ]
        == 1
    )


def test_rerating_moves_the_verdict_only_from_its_recording(services: Services) -> None:
    claim = new_claim(services)
    source = new_source(services, "agency", "C")
    post_evidence(services, source, claim, "2024-01-05T00:00:00Z")
    before = verdict(services, claim, at="2024-01-07")
    rerated = rate(services, source, "A")
    after = verdict(services, claim, at="2024-01-07")
    assert after["probability"] > before["probability"]
    assert after["evidence"]["items"][0]["reliability"] == "A"
    then = verdict(services, claim, at="2024-01-07", known_at=_just_before(rerated["recorded_at"]))
    assert then["probability"] == before["probability"]
    assert then["evidence"]["items"][0]["reliability"] == "C"


def test_retraction_holds_only_from_its_own_date(services: Services) -> None:
    claim = new_claim(services)
    source = new_source(services, "ministry", "B")
    item = post_evidence(services, source, claim, "2024-01-05T00:00:00Z", strength="strong")
    response = services.sources.post(
        f"/evidence/{item['id']}/retraction",
        json={"published_at": "2024-01-10T00:00:00Z", "reason": "withdrawn"},
    )
    assert response.status_code == 201
    assert verdict(services, claim, at="2024-01-09T23:59:59Z")["supporting_origins"] == 1
    assert verdict(services, claim, at="2024-01-10T00:00:00Z")["status"] == "unverified"
    assert verdict(services, claim, at="2024-01-20")["status"] == "unverified"
    listing = services.claims.get(f"/claims/{claim}/evidence", params={"at": "2024-01-20"})
    assert listing.json()["items"][0]["reason"] == "retracted"


def test_a_corrected_retraction_holds_from_the_correction(services: Services) -> None:
    claim = new_claim(services)
    source = new_source(services, "ministry", "B")
    item = post_evidence(services, source, claim, "2024-01-05T00:00:00Z", strength="strong")
    path = f"/evidence/{item['id']}"

    def correct(retracted_from: str | None) -> dict[str, Any]:
        response = services.sources.post(
            f"{path}/correction",
            json={"changes": {"retracted_from": retracted_from}, "reason": "date mistyped"},
        )
        assert response.status_code == 201, response.text
        return response.json()

    head = services.sources.get("/feed").json()["head"]
    assert_problem(
        services.sources.post(
            f"{path}/correction", json={"changes": {"retracted_from": None}, "reason": "x"}
        ),
        422,
        "changes.retracted_from",
    )
    retracted = services.sources.post(
        f"{path}/retraction",
        json={"published_at": "2024-01-06T00:00:00Z", "reason": "withdrawn"},
    )
    assert retracted.status_code == 201, retracted.text
    assert retracted.json()["position"] == head + 1, "the refused correction recorded nothing"
    for refused in (
        {"retracted_from": "2024-01-04T23:59:59Z"},
        {"retracted_from": "2024-01-06T00:00:00Z"},
        {"retracted_from": "2024-01-11T00:00:00Z", "published_at": "2024-01-12T00:00:00Z"},
    ):
        assert_problem(
            services.sources.post(f"{path}/correction", json={"changes": refused, "reason": "x"}),
            422,
            "changes.retracted_from",
        )
    assert verdict(services, claim, at="2024-01-08")["status"] == "unverified"

    moved = correct("2024-01-10T00:00:00Z")
    assert verdict(services, claim, at="2024-01-08")["supporting_origins"] == 1
    assert verdict(services, claim, at="2024-01-10")["status"] == "unverified"
    before_move = _just_before(moved["recorded_at"])
    assert verdict(services, claim, at="2024-01-08", known_at=before_move)["status"] == (
        "unverified"
    ), "a correction holds only from its recording"
    assert services.sources.get(path).json()["retraction"]["published_at"] == (
        "2024-01-10T00:00:00Z"
    )

    keyed = {"Idempotency-Key": "withdraw-once"}
    withdrawal = {"changes": {"retracted_from": None, "strength": "weak"}, "reason": "r"}
    other = {"changes": {"strength": "weak"}, "reason": "r"}
    first = services.sources.post(f"{path}/correction", json=withdrawal, headers=keyed)
    assert first.status_code == 201, first.text
    assert_problem(
        services.sources.post(f"{path}/correction", json=other, headers=keyed),
        422,
        "Idempotency-Key",
    )
    withdrawn = first.json()
    assert verdict(services, claim, at="2024-01-20")["supporting_origins"] == 1
    before_withdrawal = _just_before(withdrawn["recorded_at"])
    assert verdict(services, claim, at="2024-01-20", known_at=before_withdrawal)["status"] == (
        "unverified"
    )
    shown = services.sources.get(path).json()
    assert shown["retraction"] is None
    assert [c["changes"] for c in shown["corrections"]] == [
        {"retracted_from": "2024-01-10T00:00:00Z"},
        {"retracted_from": None, "strength": "weak"},
    ]
    again = services.sources.post(
        f"{path}/retraction",
        json={"published_at": "2024-01-15T00:00:00Z", "reason": "withdrawn after all"},
    )
    assert again.status_code == 201, again.text
    assert verdict(services, claim, at="2024-01-15")["status"] == "unverified"


def test_correction_holds_only_from_its_recording(services: Services) -> None:
    claim = new_claim(services)
    source = new_source(services, "paper", "B")
    item = post_evidence(services, source, claim, "2024-01-05T00:00:00Z", stance="refutes")
    refuting = verdict(services, claim, at="2024-01-07")
    assert refuting["refuting_origins"] == 1
    response = services.sources.post(
        f"/evidence/{item['id']}/correction",
        json={"changes": {"stance": "supports"}, "reason": "stance was mistyped"},
    )
    assert response.status_code == 201
    corrected = response.json()
    supporting = verdict(services, claim, at="2024-01-07")
    assert supporting["supporting_origins"] == 1
    assert supporting["refuting_origins"] == 0
    assert supporting["probability"] > 0.5 > refuting["probability"]
    earlier = verdict(
        services, claim, at="2024-01-07", known_at=_just_before(corrected["recorded_at"])
    )
    assert earlier["refuting_origins"] == 1
    assert verdict(services, claim, at="2024-01-01")["status"] == "unverified"


def test_a_derived_copy_changes_nothing(services: Services) -> None:
    claim = new_claim(services)
    prosecutor = new_source(services, "prosecutor", "C")
    reuters = new_source(services, "Reuters", "A")
    statement = post_evidence(services, prosecutor, claim, "2024-01-06T10:00:00Z")
    before = verdict(services, claim, at="2024-01-07")
    report = post_evidence(
        services,
        reuters,
        claim,
        "2024-01-06T14:00:00Z",
        strength="strong",
        derived_from=[statement["id"]],
    )
    after = verdict(services, claim, at="2024-01-07")
    for field in ("probability", "status", "independent_origins", "likelihood"):
        assert after[field] == before[field]
    assert after["evidence"]["items_total"] == 2
    listing = services.claims.get(f"/claims/{claim}/evidence", params={"at": "2024-01-07"})
    reasons = {item["evidence_id"]: item["reason"] for item in listing.json()["items"]}
    assert reasons == {statement["id"]: None, report["id"]: "derived"}


def test_the_evidence_pages_answer_on_the_first_page_basis(services: Services) -> None:
    claim, elsewhere = new_claim(services), new_claim(services, "another claim")
    first, second, third = (new_source(services, name, "B") for name in ("one", "two", "three"))
    moved = post_evidence(services, third, elsewhere, "2024-01-04T00:00:00Z", strength="strong")
    early = post_evidence(services, first, claim, "2024-01-05T00:00:00Z")
    post_evidence(services, second, claim, "2024-01-05T00:00:00Z", strength="weak")
    verdict(services, claim)
    page = services.claims.get(f"/claims/{claim}/evidence", params={"limit": 1}).json()
    assert [item["evidence_id"] for item in page["items"]] == [early["id"]]
    later = post_evidence(services, first, claim, "2024-01-05T00:00:00Z", strength="strong")
    services.sources.post(
        f"/evidence/{moved['id']}/correction", json={"changes": {"claim_id": claim}, "reason": "x"}
    )
    verdict(services, claim)
    listed, basis = page["items"], page["basis"]
    while page["next"] is not None:
        page = services.claims.get(page["next"]).json()
        assert page["basis"] == basis
        assert page["items"], "a next page is given only where items follow"
        listed += page["items"]
    assert later["id"] not in [item["evidence_id"] for item in listed], "recorded after the basis"
    assert moved["id"] not in [item["evidence_id"] for item in listed], "moved after the basis"
    assert [item["counted"] for item in listed] == [True, True]
    now = services.claims.get(f"/claims/{claim}/evidence").json()
    assert {item["evidence_id"] for item in now["items"]} >= {later["id"], moved["id"]}
    assert now["next"] is None


def test_the_timeline_basis_pins_it_without_an_at(services: Services) -> None:
    claim = new_claim(services)
    source = new_source(services, "agency", "B")
    post_evidence(services, source, claim, "2024-01-05T00:00:00Z")
    verdict(services, claim)
    path = f"/claims/{claim}/timeline"
    first = services.claims.get(path).json()
    assert set(first["basis"]) == {"known_at", "position"}, "a timeline spans every at"
    post_evidence(services, new_source(services, "other", "A"), claim, "2024-01-04T00:00:00Z")
    verdict(services, claim)
    again = services.claims.get(path, params={"known_at": first["basis"]["known_at"]}).json()
    assert again == first
    assert services.claims.get(path).json()["points"] != first["points"]


def _just_before(recorded_at: str) -> str:
    """One microsecond before a recording time: before a write's own `recorded_at`."""
    from datetime import timedelta

    from shared.timeaxes import format_instant, parse_instant

    return format_instant(parse_instant(recorded_at) - timedelta(microseconds=1))
