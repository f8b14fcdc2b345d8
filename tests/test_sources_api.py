"""The sources service over HTTP: every endpoint, every rejection, the feed's paging."""

import asyncio
import itertools
import uuid
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from anyio import to_thread
from fastapi import FastAPI
from sqlalchemy import event

from services.sources.domain import CORRECTABLE_FIELDS
from shared.feed import FeedPage
from shared.routes import FEED_READERS
from shared.sources_feed import (
    CorrectedData,
    RatedData,
    RetractedData,
    RetractionChange,
    SubmittedData,
)
from tests.conftest import KnownClaims

PROSECUTOR = {
    "name": "Kharkiv Region Prosecutor's Office",
    "kind": "regional prosecutor's office",
    "url": "https://khar.gp.gov.ua",
    "country": "UA",
    "notes": "Ukrainian state body; party to the conflict",
}


async def register(client: httpx.AsyncClient, **fields: Any) -> dict[str, Any]:
    response = await client.post("/sources", json={**PROSECUTOR, **fields})
    assert response.status_code == 201, response.text
    return response.json()


def evidence_body(source_id: str, claim_id: str, **fields: Any) -> dict[str, Any]:
    return {
        "source_id": source_id,
        "claim_id": claim_id,
        "stance": "supports",
        "strength": "moderate",
        "published_at": "2024-01-06T12:00:00+02:00",
        "url": "https://khar.gp.gov.ua/news/debris",
        "quote": "We are leaning towards the version that this may be a North Korean missile.",
        "summary": "Prosecutor's office displays missile debris that differs from Iskander.",
        **fields,
    }


async def submit(client: httpx.AsyncClient, body: dict[str, Any]) -> dict[str, Any]:
    response = await client.post("/evidence", json=body)
    assert response.status_code == 201, response.text
    return response.json()


async def head(client: httpx.AsyncClient) -> int:
    return (await client.get("/feed", params={"limit": 1})).json()["head"]


async def test_register_and_read_a_source(sources: httpx.AsyncClient) -> None:
    written = await register(sources)
    assert written["position"] >= 1
    assert written["recorded_at"].endswith("Z")
    assert written["reliability"] == "F"

    one = (await sources.get(f"/sources/{written['id']}")).json()
    assert one["name"] == PROSECUTOR["name"]
    assert one["country"] == "UA"
    assert one["ratings"] == []
    listed = (await sources.get("/sources")).json()
    assert [source["id"] for source in listed] == [written["id"]]


async def test_rating_history_is_kept_in_order(sources: httpx.AsyncClient) -> None:
    source = await register(sources)
    for letter, rater in (("C", "desk"), ("B", None), ("C", "standards editor")):
        body = {"reliability": letter, "rationale": f"rated {letter}"}
        if rater:
            body["rater"] = rater
        response = await sources.post(f"/sources/{source['id']}/ratings", json=body)
        assert response.status_code == 201, response.text
        assert response.json()["id"] == source["id"]

    one = (await sources.get(f"/sources/{source['id']}")).json()
    assert [rating["reliability"] for rating in one["ratings"]] == ["C", "B", "C"]
    assert [rating["rater"] for rating in one["ratings"]] == [
        "desk",
        "anonymous",
        "standards editor",
    ]
    positions = [rating["position"] for rating in one["ratings"]]
    assert positions == sorted(positions)
    assert one["reliability"] == "C"
    assert one["version"] == 4


async def test_the_list_gives_each_source_as_its_own_read_does(sources: httpx.AsyncClient) -> None:
    first, second, unrated = [await register(sources) for _ in range(3)]
    for source, letter in ((first, "C"), (second, "B"), (first, "A"), (second, "E")):
        body = {"reliability": letter, "rationale": f"rated {letter}"}
        response = await sources.post(f"/sources/{source['id']}/ratings", json=body)
        assert response.status_code == 201, response.text
    listed = (await sources.get("/sources")).json()
    each = [
        (await sources.get(f"/sources/{source['id']}")).json()
        for source in (first, second, unrated)
    ]
    assert listed == each
    assert [[rating["reliability"] for rating in source["ratings"]] for source in listed] == [
        ["C", "A"],
        ["B", "E"],
        [],
    ]


async def test_submit_read_and_list_evidence(
    sources: httpx.AsyncClient, known_claims: KnownClaims
) -> None:
    source = await register(sources)
    claim, other_claim = known_claims.add(), known_claims.add()
    first = await submit(sources, evidence_body(source["id"], claim))
    assert first["published_at"] == "2024-01-06T10:00:00Z"
    derived = await submit(
        sources, evidence_body(source["id"], claim, derived_from=[first["id"], first["id"]])
    )
    assert derived["derived_from"] == [first["id"]]
    await submit(sources, evidence_body(source["id"], other_claim))

    one = (await sources.get(f"/evidence/{first['id']}")).json()
    assert one["summary"].startswith("Prosecutor's office")
    assert one["retraction"] is None
    assert one["corrections"] == []

    page = (await sources.get("/evidence", params={"claim_id": claim})).json()
    assert [item["id"] for item in page["items"]] == [first["id"], derived["id"]]
    first_page = (await sources.get("/evidence", params={"limit": 2})).json()
    rest = (await sources.get("/evidence", params={"after": first_page["next_after"]})).json()
    assert len(first_page["items"]) == 2
    assert len(rest["items"]) == 1


async def test_the_derived_from_limit_counts_each_id_once(
    sources: httpx.AsyncClient, known_claims: KnownClaims
) -> None:
    source = await register(sources)
    claim = known_claims.add()
    first = await submit(sources, evidence_body(source["id"], claim))
    repeated = await submit(
        sources, evidence_body(source["id"], claim, derived_from=[first["id"]] * 60)
    )
    assert repeated["derived_from"] == [first["id"]]
    too_many = await sources.post(
        "/evidence",
        json=evidence_body(
            source["id"], claim, derived_from=[str(uuid.uuid4()) for _ in range(51)]
        ),
    )
    assert too_many.status_code == 422, too_many.text
    assert "derived_from" in too_many.json()["detail"]


async def test_retraction_and_correction_are_new_events(
    sources: httpx.AsyncClient, known_claims: KnownClaims
) -> None:
    source = await register(sources)
    evidence = await submit(sources, evidence_body(source["id"], known_claims.add()))

    corrected = await sources.post(
        f"/evidence/{evidence['id']}/correction",
        json={"changes": {"strength": "strong", "url": None}, "reason": "mistyped strength"},
    )
    assert corrected.status_code == 201, corrected.text
    assert corrected.json()["changes"] == {"strength": "strong", "url": None}
    retracted = await sources.post(
        f"/evidence/{evidence['id']}/retraction",
        json={"published_at": "2024-02-01T00:00:00Z", "reason": "the office withdrew it"},
    )
    assert retracted.status_code == 201, retracted.text

    one = (await sources.get(f"/evidence/{evidence['id']}")).json()
    assert one["strength"] == "strong"
    assert one["url"] is None
    assert one["retraction"] == {
        "published_at": "2024-02-01T00:00:00Z",
        "reason": "the office withdrew it",
        "recorded_at": retracted.json()["recorded_at"],
        "position": retracted.json()["position"],
    }
    assert [c["reason"] for c in one["corrections"]] == ["mistyped strength"]
    assert one["version"] == 3

    feed = (await sources.get("/feed")).json()["items"]
    assert [item["type"] for item in feed] == [
        "SourceRegistered",
        "EvidenceSubmitted",
        "EvidenceCorrected",
        "EvidenceRetracted",
    ]
    submitted = feed[1]
    assert submitted["data"]["strength"] == "moderate", "the original event is never altered"
    assert submitted["data"]["published_at"] == "2024-01-06T10:00:00Z"

    again = await sources.post(
        f"/evidence/{evidence['id']}/retraction",
        json={"published_at": "2024-02-02T00:00:00Z", "reason": "twice"},
    )
    assert again.status_code == 409
    assert again.headers["content-type"] == "application/problem+json"
    assert [error["field"] for error in again.json()["errors"]] == ["evidence_id"]


async def test_every_retraction_stays_on_the_item_once_corrected_or_withdrawn(
    sources: httpx.AsyncClient, known_claims: KnownClaims
) -> None:
    source = await register(sources)
    evidence = await submit(sources, evidence_body(source["id"], known_claims.add()))
    path = f"/evidence/{evidence['id']}"
    first = await sources.post(
        f"{path}/retraction", json={"published_at": "2024-01-07T00:00:00Z", "reason": "withdrew"}
    )
    for change in ("2024-01-08T00:00:00Z", None):
        moved = await sources.post(
            f"{path}/correction", json={"changes": {"retracted_from": change}, "reason": "date"}
        )
        assert moved.status_code == 201, moved.text
    withdrawn = (await sources.get(path)).json()
    assert withdrawn["retraction"] is None
    second = await sources.post(
        f"{path}/retraction", json={"published_at": "2024-01-09T00:00:00Z", "reason": "again"}
    )
    assert second.status_code == 201, second.text
    one = (await sources.get(path)).json()
    recorded = [
        {
            "published_at": answer.json()["published_at"],
            "reason": answer.json()["reason"],
            "recorded_at": answer.json()["recorded_at"],
            "position": answer.json()["position"],
        }
        for answer in (first, second)
    ]
    assert [row["published_at"] for row in recorded] == [
        "2024-01-07T00:00:00Z",
        "2024-01-09T00:00:00Z",
    ]
    assert withdrawn["retractions"] == recorded[:1], "kept once withdrawn, with its first date"
    assert one["retractions"] == recorded
    assert one["retraction"] == recorded[1]
    assert [c["changes"] for c in one["corrections"]] == [
        {"retracted_from": "2024-01-08T00:00:00Z"},
        {"retracted_from": None},
    ]
    listed = (await sources.get("/evidence", params={"claim_id": evidence["claim_id"]})).json()
    assert listed["items"] == [one]


async def test_an_evidence_page_reads_retractions_and_corrections_once_for_all_items(
    sources_app: FastAPI, sources: httpx.AsyncClient, known_claims: KnownClaims
) -> None:
    source = await register(sources)
    claim = known_claims.add()
    for _ in range(20):
        item = await submit(sources, evidence_body(source["id"], claim))
        await sources.post(
            f"/evidence/{item['id']}/correction",
            json={"changes": {"strength": "weak"}, "reason": "r"},
        )
    statements: list[str] = []

    def count(*args: Any) -> None:
        statements.append(args[2])

    engine = sources_app.state.engine
    event.listen(engine, "before_cursor_execute", count)
    try:
        page = (await sources.get("/evidence", params={"claim_id": claim})).json()
    finally:
        event.remove(engine, "before_cursor_execute", count)
    assert [len(item["corrections"]) for item in page["items"]] == [1] * 20
    tables = ("FROM correction_view", "FROM retraction_view")
    reads = [statement for statement in statements if statement.lstrip().startswith("SELECT")]
    assert [sum(table in read for read in reads) for table in tables] == [1, 1]


async def test_feed_items_follow_the_public_contract(
    sources: httpx.AsyncClient, known_claims: KnownClaims
) -> None:
    source = await register(sources)
    await submit(sources, evidence_body(source["id"], known_claims.add()))
    page = (await sources.get("/feed", headers={"X-Request-ID": "req-42"})).json()
    assert set(page) == {"service", "items", "next_after", "head", "head_known_at"}
    assert page["service"] == "sources"
    older = {name: value for name, value in page.items() if name != "service"}
    assert FeedPage.model_validate(older).service is None, "a page from before the field"
    item = page["items"][1]
    assert set(item) == {
        "position",
        "id",
        "type",
        "version",
        "stream_id",
        "stream_version",
        "recorded_at",
        "data",
        "metadata",
    }
    assert item["type"] == "EvidenceSubmitted"
    assert item["version"] == 1
    assert item["stream_version"] == 1
    assert item["data"]["source_id"] == source["id"]
    assert item["metadata"]["actor"] == "anonymous"
    assert "topic" not in str(item)
    assert page["head"] == page["next_after"] == item["position"]
    recorded = [entry["recorded_at"] for entry in page["items"]]
    assert recorded == sorted(recorded)
    assert page["head_known_at"] >= recorded[-1]


async def test_each_item_type_carries_the_data_the_shared_contract_reads(
    sources: httpx.AsyncClient, known_claims: KnownClaims
) -> None:
    """What the claims service reads from each item is what the sources service records."""
    source = await register(sources)
    rated = await sources.post(
        f"/sources/{source['id']}/ratings", json={"reliability": "B", "rationale": "checked"}
    )
    assert rated.status_code == 201, rated.text
    claim = known_claims.add()
    first = await submit(sources, evidence_body(source["id"], claim))
    await submit(sources, evidence_body(source["id"], claim, derived_from=[first["id"]]))
    path = f"/evidence/{first['id']}"
    retraction = {"published_at": "2024-01-07T00:00:00Z", "reason": "withdrawn"}
    assert (await sources.post(f"{path}/retraction", json=retraction)).status_code == 201
    changes = {"strength": "strong", "retracted_from": None}
    correction = {"changes": changes, "reason": "restored"}
    assert (await sources.post(f"{path}/correction", json=correction)).status_code == 201

    read_as = {
        "SourceRated": RatedData,
        "EvidenceSubmitted": SubmittedData,
        "EvidenceRetracted": RetractedData,
        "EvidenceCorrected": CorrectedData,
    }
    items = (await sources.get("/feed")).json()["items"]
    assert [item["type"] for item in items] == [
        "SourceRegistered",
        "SourceRated",
        "EvidenceSubmitted",
        "EvidenceSubmitted",
        "EvidenceRetracted",
        "EvidenceCorrected",
    ]
    read = [read_as[item["type"]].model_validate(item["data"]) for item in items[1:]]
    assert read[0].reliability == "B"
    assert [submitted.derived_from for submitted in read[1:3]] == [[], [uuid.UUID(first["id"])]]
    assert read[3].published_at == datetime(2024, 1, 7, tzinfo=UTC)
    assert read[4].changes == changes
    assert RetractionChange.model_validate(read[4].changes).retracted_from is None
    assert set(SubmittedData.model_fields) <= CORRECTABLE_FIELDS, "a correction can change each"


async def test_feed_pages_with_after_across_a_gap(
    sources: httpx.AsyncClient, sources_app: Any, known_claims: KnownClaims, storage_kind: str
) -> None:
    source = await register(sources)
    claim = known_claims.add()
    for day in range(1, 4):
        await submit(
            sources, evidence_body(source["id"], claim, published_at=f"2024-01-0{day}T00:00:00Z")
        )
    _lose_a_race(sources_app.state.sources, uuid.UUID(source["id"]))
    for day in range(4, 7):
        await submit(
            sources, evidence_body(source["id"], claim, published_at=f"2024-01-0{day}T00:00:00Z")
        )

    whole = [
        item["position"]
        for item in (await sources.get("/feed", params={"limit": 1000})).json()["items"]
    ]
    assert len(whole) == 8
    assert all(a < b for a, b in itertools.pairwise(whole))
    if storage_kind == "postgres":
        assert whole[-1] - whole[0] + 1 > len(whole), "a rolled-back write leaves a gap"

    paged: list[int] = []
    after = 0
    while True:
        page = (await sources.get("/feed", params={"after": after, "limit": 3})).json()
        if not page["items"]:
            break
        paged.extend(item["position"] for item in page["items"])
        after = page["next_after"]
    assert paged == whole
    middle = (await sources.get("/feed", params={"after": whole[3], "limit": 2})).json()
    assert [item["position"] for item in middle["items"]] == whole[4:6]


def _lose_a_race(application: Any, source_id: uuid.UUID) -> None:
    """Two writers rate one source from the same version; the second write is refused."""
    from eventsourcing.persistence import IntegrityError

    first = application.repository.get(source_id)
    second = application.repository.get(source_id)
    first.rate(reliability="B", rationale="first writer", rater="test")
    second.rate(reliability="E", rationale="second writer", rater="test")
    application.save(first)
    with pytest.raises(IntegrityError):
        application.save(second)


async def test_health(sources: httpx.AsyncClient) -> None:
    await register(sources)
    before = datetime.now(UTC)
    health = (await sources.get("/health")).json()
    assert datetime.fromisoformat(health.pop("clock")) >= before, "never behind the wall clock"
    assert health == {
        "status": "ok",
        "service": "sources",
        "head": 1,
        "projection_position": 1,
        "writes_refused": None,
        "claims_setting": None,
    }


async def test_request_id_is_echoed_and_recorded(sources: httpx.AsyncClient) -> None:
    response = await sources.post("/sources", json=PROSECUTOR, headers={"X-Request-ID": "abc-1"})
    assert response.headers["X-Request-ID"] == "abc-1"
    item = (await sources.get("/feed")).json()["items"][0]
    assert item["metadata"]["actor"] == "anonymous"
    assert item["metadata"]["request_id"] == "abc-1"
    generated = await sources.get("/health")
    assert uuid.UUID(generated.headers["X-Request-ID"])


async def test_long_polls_of_the_feed_leave_threads_for_reads_and_writes(
    sources: httpx.AsyncClient,
) -> None:
    """More long polls than the worker threads every other route shares, and than pages read
    at once: a page is still read, and a write still gets through, while they wait; so every
    poll ends with the write's event rather than empty."""
    start = await head(sources)
    shared_threads = to_thread.current_default_thread_limiter().total_tokens
    polls = [
        asyncio.create_task(sources.get("/feed", params={"after": start, "wait": 5}))
        for _ in range(max(int(shared_threads), FEED_READERS) + 8)
    ]
    await asyncio.sleep(0.5)
    page = await sources.get("/feed", params={"after": 0})
    assert page.json()["head"] == start
    assert not any(poll.done() for poll in polls)
    written = await register(sources)
    pages = [(await poll).json() for poll in polls]
    assert {page["next_after"] for page in pages} == {written["position"]}
    assert {page["items"][0]["stream_id"] for page in pages} == {written["id"]}
