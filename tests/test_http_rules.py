"""HTTP rules both services keep: strict JSON bodies, If-Match, HEAD and Allow, request ids."""

import gc
import re
import socket
from typing import Any

import httpx
import pytest
from starlette.types import Message, Receive, Scope, Send

from shared.service import BodyLimit
from tests.conftest import KnownClaims, Services
from tests.newsroom import KHARKIV_CLAIM
from tests.test_sources_api import evidence_body, head, register, submit
from tests.test_sources_rejections import UNKNOWN, assert_problem

JSON = {"content-type": "application/json"}


MERGE_PATCH = "application/merge-patch+json"
LATIN_1 = "application/json; charset=latin-1"
DEEP = b"[" * 5000 + b"]" * 5000
"""Deeper than the parser can follow; small enough to pass the body size limit."""
TWO_MEDIA_TYPES = [("content-type", "application/json"), ("content-type", "text/plain")]
ENCODING = "Content-Encoding"


def fields(response: httpx.Response) -> list[str]:
    return [error["field"] for error in response.json()["errors"]]


@pytest.mark.parametrize(
    ("content", "headers", "status", "field"),
    [
        (b'{"name": "a", "name": "b", "kind": "wire"}', JSON, 422, "name"),
        (b'{"name": "a", "kind": "wire", "x": [0, {"y": {"z": 1, "z": 2}}]}', JSON, 422, "x.1.y.z"),
        (b'{"name": "a", "kind": "wire", "notes": NaN}', JSON, 422, "body"),
        (b'{"name": "a", "kind": "wire", "x": ' + b"9" * 5000 + b"}", JSON, 422, "body"),
        ('{"name": "a", "kind": "wire"}'.encode("utf-16"), JSON, 422, "body"),
        (b'{"name": "a", "kind": "wire"}', {"content-type": "text/plain"}, 415, "Content-Type"),
        (b"name=a&kind=wire", {"content-type": "application/x-www-form-urlencoded"}, 415, None),
        (b'{"name": "a", "kind": "wire"}', {"content-type": MERGE_PATCH}, 415, "Content-Type"),
        (b'{"name": "a", "kind": "wire"}', {"content-type": LATIN_1}, 415, "Content-Type"),
        (b'{"name": "a", "kind": "wire", "notes": ' + DEEP + b"}", JSON, 422, "body"),
        (b'{"name": "a", "kind": "wire"}', TWO_MEDIA_TYPES, 422, "Content-Type"),
        (b'{"name": "a", "kind": "wire"}', {**JSON, "content-encoding": "gzip"}, 415, ENCODING),
    ],
)
async def test_a_body_is_strict_utf8_json(
    sources: httpx.AsyncClient,
    content: bytes,
    headers: dict[str, str] | list[tuple[str, str]],
    status: int,
    field: str | None,
) -> None:
    gc.collect()  # garbage left by earlier tests is not finalized deep in a nested body's parse
    response = await sources.post("/sources", content=content, headers=headers)
    assert_problem(response, status, field)
    assert await head(sources) == 0
    bom = b"\xef\xbb\xbf" + b'{"name": "a", "kind": "wire"}'
    assert (await sources.post("/sources", content=bom, headers=JSON)).status_code == 201
    unlabelled = await sources.post("/sources", content=b'{"name": "b", "kind": "wire"}')
    assert unlabelled.status_code == 201, "a body without a Content-Type is read as JSON"


@pytest.mark.parametrize(
    "tag", ["\xb2", "9" * 5000, '"9' + "9" * 4400 + '"', "-1", "0", "3.0", "garbage", "W/"]
)
async def test_a_bad_if_match_is_named_with_every_other_fault(
    sources: httpx.AsyncClient, tag: str
) -> None:
    source = await register(sources)
    before = await head(sources)
    response = await sources.post(
        f"/sources/{source['id']}/ratings",
        json={"reliability": "Z", "rationale": ""},
        headers={"If-Match": tag.encode("latin-1"), "Idempotency-Key": "k" * 300},
    )
    assert_problem(response, 422, "If-Match")
    assert fields(response) == ["Idempotency-Key", "If-Match", "reliability", "rationale"]
    assert await head(sources) == before


async def test_if_match_star_means_any_version_and_a_weak_tag_never_matches(
    sources: httpx.AsyncClient,
) -> None:
    source = await register(sources)
    rating = {"reliability": "B", "rationale": "checked"}
    url = f"/sources/{source['id']}/ratings"
    weak = await sources.post(url, json=rating, headers={"If-Match": 'W/"1"'})
    assert_problem(weak, 422, "If-Match")
    assert (await sources.post(url, json=rating, headers={"If-Match": "*"})).status_code == 201
    assert (await sources.post(url, json=rating, headers={"If-Match": '"2"'})).status_code == 201
    stale = await sources.post(url, json=rating, headers={"If-Match": "99999999999999999"})
    assert_problem(stale, 409, "If-Match")


async def test_an_idempotency_key_matches_any_spelling_of_the_same_id(
    sources: httpx.AsyncClient, known_claims: KnownClaims
) -> None:
    source = await register(sources)
    evidence = await submit(sources, evidence_body(source["id"], known_claims.add()))
    retraction = {"published_at": "2024-01-07T00:00:00Z", "reason": "withdrawn"}
    key = {"Idempotency-Key": "retract-once"}
    spellings = [evidence["id"], evidence["id"].upper(), evidence["id"].replace("-", "")]
    answers = [
        await sources.post(f"/evidence/{spelling}/retraction", json=retraction, headers=key)
        for spelling in spellings
    ]
    assert [answer.status_code for answer in answers] == [201, 201, 201], answers[-1].text
    assert len({answer.json()["position"] for answer in answers}) == 1
    assert await head(sources) == evidence["position"] + 1


async def test_head_answers_like_get_and_405_lists_every_method(
    sources: httpx.AsyncClient,
) -> None:
    got = await sources.get("/health")
    headed = await sources.head("/health")
    assert headed.status_code == 200
    assert headed.content == b""
    assert headed.headers["content-length"] == got.headers["content-length"]
    assert (await sources.head(f"/sources/{UNKNOWN}")).status_code == 404
    refused = await sources.delete("/evidence")
    assert_problem(refused, 405)
    assert refused.headers["allow"] == "GET, HEAD, POST"
    assert (await sources.put("/feed")).headers["allow"] == "GET, HEAD"
    assert (await sources.post("/openapi.json")).headers["allow"] == "GET, HEAD"


async def test_the_documented_body_schemas_refuse_what_the_checks_refuse(
    sources: httpx.AsyncClient,
) -> None:
    schemas = (await sources.get("/openapi.json")).json()["components"]["schemas"]
    assert schemas["EvidenceChanges"]["minProperties"] == 1
    url = next(
        kind for kind in schemas["SourceIn"]["properties"]["url"]["anyOf"] if "pattern" in kind
    )
    assert url["format"] == "iri"
    for refused in ("ftp://agency.example", "https:///path", "agency.example"):
        assert not re.match(url["pattern"], refused)
        answer = await sources.post("/sources", json={"name": "n", "kind": "k", "url": refused})
        assert_problem(answer, 422, "url")
    for malformed in (
        "http://[::1",
        "http://[::1]x/",
        "http://agency.example:99999",
        "http://:80/report",
        "http://desk:secret@agency.example/report",
        "https://agency.example\\@elsewhere.example/",
        "http://-/",
        "http://agency..example/",
        "http://-agency.example/",
        "http://999.1.1.1/",
        "http://127.1/",
        "http://0x7f.1/",
        "http://agency.123/",
        "https://pay\u200dpal.example/",
        "http://\u0301a.example/",
        "http://xn--zz.example/",
        "http://" + ".".join(["a" * 63] * 5) + "/",
        "http://\uff45\uff58\uff41\uff4d\uff50\uff4c\uff45.com/",
        "http://" + "".join(chr(0x4E00 + 97 * n) for n in range(34)) + ".example/",
        "http://\u00e9\u200c\u00e9.example/",
        "http://e\u0301cole.example/",
    ):
        answer = await sources.post("/sources", json={"name": "n", "kind": "k", "url": malformed})
        assert_problem(answer, 422, "url")
    for taken in (
        "https://agency.example/report",
        "HTTP://agency.example",
        "http://[::1]:8/",
        "http://203.0.113.7/",
        "https://bücher.example./",
        "http://localhost",
        "http://\u0939\u093f\u0928\u094d\u0926\u0940.example/",
        "http://xn--bcher-kva.example/",
        "http://\u0645\u06cc\u200c\u062e\u0648\u0627\u0647\u0645.ir/",
        "http://col\u00b7legi.cat/",
    ):
        assert re.match(url["pattern"], taken)
        answer = await sources.post("/sources", json={"name": "n", "kind": "k", "url": taken})
        assert answer.status_code == 201, answer.text


async def test_an_idempotency_key_is_read_as_utf8_and_printable(
    sources: httpx.AsyncClient,
) -> None:
    body = {"name": "Le Monde", "kind": "newspaper"}
    for bad in (b"k\x01", b"k\xff", b"\xd0"):
        refused = await sources.post("/sources", json=body, headers={"Idempotency-Key": bad})
        assert_problem(refused, 422, "Idempotency-Key")
    assert await head(sources) == 0
    key = {"Idempotency-Key": "ключ".encode()}
    first = await sources.post("/sources", json=body, headers=key)
    assert first.status_code == 201, first.text
    assert (await sources.post("/sources", json=body, headers=key)).json() == first.json()
    item = (await sources.get("/feed")).json()["items"][0]
    assert item["metadata"]["idempotency_key"] == "ключ"
    assert await head(sources) == 1


async def test_an_idempotency_key_is_1_to_200_bytes_whatever_its_characters(
    sources: httpx.AsyncClient,
) -> None:
    body = {"name": "Le Monde", "kind": "newspaper"}
    for bad in ("", "é" * 101, "k" * 201):
        refused = await sources.post(
            "/sources", json=body, headers={"Idempotency-Key": bad.encode()}
        )
        assert_problem(refused, 422, "Idempotency-Key")
        assert "bytes" in refused.json()["errors"][0]["reason"]
    assert await head(sources) == 0
    for longest in ("é" * 100, "k" * 200):
        key = {"Idempotency-Key": longest.encode()}
        assert (await sources.post("/sources", json=body, headers=key)).status_code == 201
    assert await head(sources) == 2


async def test_a_header_given_twice_is_refused_by_name(sources: httpx.AsyncClient) -> None:
    source = await register(sources)
    before = await head(sources)
    body = {"name": "Le Monde", "kind": "newspaper"}
    two_keys = [("Idempotency-Key", "a"), ("Idempotency-Key", "b")]
    assert_problem(
        await sources.post("/sources", json=body, headers=two_keys), 422, "Idempotency-Key"
    )
    rating = {"reliability": "B", "rationale": "checked"}
    url = f"/sources/{source['id']}/ratings"
    two_versions = [("If-Match", "99"), ("If-Match", "1")]
    assert_problem(await sources.post(url, json=rating, headers=two_versions), 422, "If-Match")
    unclear = await sources.post(
        f"{url}?x=1", content=b'{"reliability": ', headers=[*two_keys, *two_versions]
    )
    assert_problem(unclear, 422)
    assert fields(unclear) == ["x", "Idempotency-Key", "If-Match"], "named before the body"
    assert await head(sources) == before
    two_ids = [("X-Request-ID", "first"), ("X-Request-ID", "second")]
    answered = await sources.post("/sources", json=body, headers=two_ids)
    assert answered.status_code == 201, answered.text
    made = answered.headers["X-Request-ID"]
    assert made not in ("first", "second")
    item = (await sources.get("/feed", params={"after": before})).json()["items"][0]
    assert item["metadata"]["request_id"] == made


async def test_a_request_id_is_recorded_as_sent_in_utf8(
    sources: httpx.AsyncClient,
) -> None:
    sent = "café-42"
    response = await sources.post(
        "/sources",
        json={"name": "Le Monde", "kind": "newspaper"},
        headers={"X-Request-ID": sent.encode()},
    )
    assert response.status_code == 201, response.text
    assert response.headers.raw[-1] == (b"x-request-id", sent.encode())
    item = (await sources.get("/feed")).json()["items"][0]
    assert item["metadata"]["request_id"] == sent


@pytest.mark.parametrize(
    ("published_at", "reason"),
    [
        ("2024-01-06T12:00:00.1234567Z", "finer than a microsecond"),
        ("2023-12-31T23:59:60Z", "leap second"),
        ("2024-01-06T12:00:00+05:30:15", "whole minutes"),
        ("2024-01-06T12:00:00.+00:00", "decimal point without digits"),
        ("2024-01-06T12:00:00,Z", "decimal point without digits"),
        ("2024-W01-6T12:00:00Z", "not an RFC 3339 date-time"),
        ("20240106T120000Z", "not an RFC 3339 date-time"),
        ("2024-01-06T12Z", "not an RFC 3339 date-time"),
        ("2024-01-06T12:00:00+0200", "not an RFC 3339 date-time"),
        ("\uff12\uff10\uff12\uff14-01-06T12:00:00Z", "not an RFC 3339 date-time"),
        ("2024-01-06 12:00:00Z", "upper-case T"),
        ("2024-01-06t12:00:00z", "upper-case T"),
        (" 2024-01-06T12:00:00Z", "space around it"),
        ("2024-01-06T12:00:00Z\n", "space around it"),
        ("2024-01-06T12:00:00,5Z", "decimal comma"),
        ("2024-01-06T12:00:00 02:00", "%2B"),
        ("2024-01-06T12:00:00+24:00", "offset beyond 23:59"),
        ("2024-01-06T12:00:00", "no timezone offset"),
        ("2024-01-06", "a date alone"),
    ],
)
async def test_a_time_in_a_body_is_an_rfc_3339_date_time_that_can_be_kept_exactly(
    sources: httpx.AsyncClient, known_claims: KnownClaims, published_at: str, reason: str
) -> None:
    source = await register(sources)
    body = evidence_body(source["id"], known_claims.add(), published_at=published_at)
    response = await sources.post("/evidence", json=body)
    assert_problem(response, 422, "published_at")
    assert reason in response.json()["detail"]
    assert await head(sources) == 1


def test_a_time_in_a_query_is_an_rfc_3339_date_time_or_a_date(services: Services) -> None:
    claims = services.claims
    claim = claims.post("/claims", json={"text": KHARKIV_CLAIM}).json()["id"]
    for refused in ("2024-01-06 12:00:00Z", "2024-W01-6", " 2024-01-06", "2024-01-06T12:00+02"):
        response = claims.get(f"/claims/{claim}/verdict", params={"at": refused})
        assert_problem(response, 422, "at")
    unencoded = claims.get(f"/claims/{claim}/verdict?at=2024-01-06T12:00:00.5+02:00")
    assert_problem(unencoded, 422, "at")
    assert "%2B" in unencoded.json()["detail"]
    for taken in ("2024-01-06", "2024-01-06T12:00:00.5+02:00"):
        response = claims.get(f"/claims/{claim}/verdict", params={"at": taken})
        assert response.status_code == 200, response.text


@pytest.mark.parametrize("blank", ["\u200b", "\u00a0\u200b ", "\u2060\ufeff"])
async def test_invisible_text_is_blank(sources: httpx.AsyncClient, blank: str) -> None:
    response = await sources.post("/sources", json={"name": blank, "kind": "wire"})
    assert_problem(response, 422, "name")


async def test_clearing_a_required_field_names_it(
    sources: httpx.AsyncClient, known_claims: KnownClaims
) -> None:
    source = await register(sources)
    evidence = await submit(sources, evidence_body(source["id"], known_claims.add()))
    correction: dict[str, Any] = {"changes": {"summary": None, "stance": None}, "reason": "r"}
    response = await sources.post(f"/evidence/{evidence['id']}/correction", json=correction)
    assert_problem(response, 422)
    assert fields(response) == ["changes.stance", "changes.summary"]


def test_a_question_names_its_bad_times_before_looking_for_the_claim(
    services: Services,
) -> None:
    claims = services.claims
    claim = claims.post("/claims", json={"text": KHARKIV_CLAIM}).json()["id"]
    for claim_id in (UNKNOWN, claim):
        response = claims.get(
            f"/claims/{claim_id}/verdict",
            params={"at": "garbage", "known_at": "x", "min_position": -1},
        )
        assert_problem(response, 422)
        assert fields(response) == ["at", "known_at", "min_position"]
    unknown = claims.get(f"/claims/{UNKNOWN}/timeline", params={"known_at": "2024-13-01"})
    assert fields(unknown) == ["known_at"]
    both = claims.get("/claims/not-a-uuid/claimreview", params={"at": "x"})
    assert fields(both) == ["claim_id", "at"]


def test_a_number_in_the_query_is_written_in_digits_alone(services: Services) -> None:
    claim = services.claims.post("/claims", json={"text": KHARKIV_CLAIM}).json()["id"]
    asked = [
        (services.claims, f"/claims/{claim}/verdict", "min_position"),
        (services.claims, f"/claims/{claim}/verdict", "evidence_limit"),
        (services.claims, "/claims", "limit"),
        (services.sources, "/evidence", "after"),
        (services.sources, "/feed", "limit"),
        (services.sources, "/feed", "wait"),
    ]
    for written in ("1_0", "+5", " 5", "5 ", "0x5", "\uff15", "-0", "", "1.", "inf"):
        for service, path, name in asked:
            assert_problem(service.get(path, params={name: written}), 422, name)
    for whole_only in ("1.0", "1e1"):
        assert_problem(services.claims.get("/claims", params={"limit": whole_only}), 422, "limit")
    for seconds in ("0.25", "1e-05", 0.00001):
        assert services.sources.get("/feed", params={"wait": seconds}).status_code == 200
    assert services.claims.get("/claims", params={"limit": "010"}).status_code == 200


async def test_a_rebuild_refuses_a_body_and_an_idempotency_key_it_would_pass_over(
    sources: httpx.AsyncClient,
) -> None:
    with_body = await sources.post("/admin/rebuild", content=b"hello", headers=JSON)
    assert_problem(with_body, 422, "body")
    keyed = await sources.post("/admin/rebuild", headers={"Idempotency-Key": "rebuild-once"})
    assert_problem(keyed, 422, "Idempotency-Key")
    assert "asking again runs it again" in keyed.json()["detail"]
    rebuilt = await sources.post("/admin/rebuild")
    assert rebuilt.status_code == 200, rebuilt.text


def test_the_documented_query_times_are_a_date_time_or_a_date(services: Services) -> None:
    claim = services.claims.post("/claims", json={"text": KHARKIV_CLAIM}).json()["id"]
    document = services.claims.get("/openapi.json").json()
    parameters = document["paths"]["/claims/{claim_id}/verdict"]["get"]["parameters"]
    for name in ("at", "known_at"):
        (schema,) = [parameter["schema"] for parameter in parameters if parameter["name"] == name]
        assert [kind["format"] for kind in schema["anyOf"]] == ["date-time", "date"]
    for taken in ("2024-01-06", "2024-01-06T12:00:00Z"):
        answer = services.claims.get(f"/claims/{claim}/verdict", params={"at": taken})
        assert answer.status_code == 200, answer.text
    assert_problem(services.claims.get(f"/claims/{claim}/verdict", params={"at": "x"}), 422, "at")


def test_a_created_resource_is_named_in_location_and_again_on_a_replay(
    services: Services,
) -> None:
    key = {"Idempotency-Key": "location-replay"}
    claim = services.claims.post("/claims", json={"text": KHARKIV_CLAIM}, headers=key)
    source = services.sources.post("/sources", json={"name": "Wire", "kind": "wire"}, headers=key)
    item = {
        "source_id": source.json()["id"],
        "claim_id": claim.json()["id"],
        "stance": "supports",
        "strength": "moderate",
        "published_at": "2024-01-03T10:00:00Z",
        "summary": "a report",
    }
    evidence = services.sources.post("/evidence", json=item)
    created = [
        (services.claims, claim, "/claims", {"text": KHARKIV_CLAIM}),
        (services.sources, source, "/sources", {"name": "Wire", "kind": "wire"}),
    ]
    for client, response, path, body in created:
        assert response.status_code == 201, response.text
        assert response.headers["Location"] == f"{path}/{response.json()['id']}"
        assert client.get(response.headers["Location"]).json()["id"] == response.json()["id"]
        replay = client.post(path, json=body, headers=key)
        assert replay.status_code == 201
        assert replay.headers["Location"] == response.headers["Location"]
    assert evidence.status_code == 201, evidence.text
    assert evidence.headers["Location"] == f"/evidence/{evidence.json()['id']}"
    assert services.sources.get(evidence.headers["Location"]).json()["summary"] == "a report"
    documented = services.sources.get("/openapi.json").json()["paths"]["/evidence"]["post"]
    assert "Location" in documented["responses"]["201"]["headers"]


def test_a_declared_length_over_64_kib_is_refused_before_the_body_is_sent(
    services: Services,
) -> None:
    """A client that declares a large body, and one that waits for `100 Continue` before
    sending it, hear 413 at once instead of the server waiting for the body."""
    port = int(services.claims_url.rsplit(":", 1)[1])
    for expect in ("", "Expect: 100-continue\r\n"):
        with socket.create_connection(("127.0.0.1", port), timeout=5) as connection:
            connection.sendall(
                b"POST /claims HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                + expect.encode()
                + b"Content-Length: 100000000\r\n\r\n{}"
            )
            answer = _read_answer(connection)
        assert answer.startswith("HTTP/1.1 413 "), answer
        assert "application/problem+json" in answer
        assert '"field":"body"' in answer
    assert services.claims.get("/claims").json()["items"] == [], "nothing recorded"


def _read_answer(connection: socket.socket) -> str:
    """One HTTP/1.1 answer with a `content-length`, read whole from a kept-alive connection."""
    received = b""
    while b"\r\n\r\n" not in received:
        received += connection.recv(65536)
    head, _, body = received.partition(b"\r\n\r\n")
    length = int(re.search(rb"content-length: (\d+)", head, re.IGNORECASE)[1])  # type: ignore[index]
    while len(body) < length:
        body += connection.recv(65536)
    return (head + b"\r\n\r\n" + body).decode()


async def test_a_declared_length_of_any_number_of_digits_is_over_the_limit() -> None:
    """The limit, as the service sees a request, whatever server sits in front of it."""
    reached: list[Scope] = []

    async def service(scope: Scope, receive: Receive, send: Send) -> None:
        reached.append(scope)

    async def receive() -> Message:
        return {"type": "http.request", "body": b"", "more_body": False}

    lengths = ((b"10", False), (b"0" * 5000 + b"10", False), (b"11", True), (b"9" * 5000, True))
    for declared, refused in lengths:
        sent: list[Message] = []

        async def send(message: Message, into: list[Message] = sent) -> None:
            into.append(message)

        scope = {"type": "http", "method": "POST", "path": "/claims", "headers": []}
        scope["headers"] = [(b"content-length", declared)]
        await BodyLimit(service, limit=10)(scope, receive, send)
        assert sent[0]["status"] == 413 if refused else not sent, declared[:20]
    assert len(reached) == 2
