"""API keys and roles on both services; only digests configured; keys never recorded."""

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from uuid import uuid4

import httpx
import pytest
from typer.testing import CliRunner

from services.claims.bootstrap import create_app as create_claims_app
from services.sources.bootstrap import create_app as create_sources_app
from shared.auth import digest
from shared.cli import app as cli
from shared.settings import Access, ClaimsSettings, SettingError, SourcesSettings
from tests.servers import free_port, serving
from tests.test_claims_api import settled_health
from tests.test_sources_api import evidence_body
from tests.test_sources_rejections import assert_problem

KEYS = {
    "desk": ("submitter", "fck_desk_0123456789"),
    "standards": ("editor", "fck_standards_0123456789"),
    "auditor": ("auditor", "fck_auditor_0123456789"),
    "ops": ("admin", "fck_ops_0123456789"),
}
CONFIG = ",".join(f"{name}:{role}:{digest(key)}" for name, (role, key) in KEYS.items())


def bearer(name: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {KEYS[name][1]}"}


@dataclass
class Guarded:
    sources: httpx.Client
    claims: httpx.Client


def guarded(
    database_url: str,
    claims_database_url: str,
    public_reads: bool,
    sources_api_key: str | None = KEYS["ops"][1],
) -> Iterator[Guarded]:
    access = Access(api_keys=CONFIG, public_reads=public_reads)
    service_key = KEYS["ops"][1]
    sources_port, claims_port = free_port(), free_port()
    sources_app = create_sources_app(
        SourcesSettings(
            database_url=database_url,
            claims_url=f"http://127.0.0.1:{claims_port}",
            claims_api_key=service_key,
            access=access,
        )
    )
    claims_app = create_claims_app(
        ClaimsSettings(
            database_url=claims_database_url,
            sources_url=f"http://127.0.0.1:{sources_port}",
            sources_api_key=sources_api_key,
            follower_wait=0.3,
            read_wait=3.0,
            access=access,
        )
    )
    with (
        serving(sources_app, sources_port) as sources_url,
        serving(claims_app, claims_port) as claims_url,
        httpx.Client(base_url=sources_url, timeout=30) as sources,
        httpx.Client(base_url=claims_url, timeout=30) as claims,
    ):
        yield Guarded(sources, claims)


@pytest.fixture
def open_reads(database_url: str, claims_database_url: str) -> Iterator[Guarded]:
    yield from guarded(database_url, claims_database_url, public_reads=True)


@pytest.fixture
def closed_reads(database_url: str, claims_database_url: str) -> Iterator[Guarded]:
    yield from guarded(database_url, claims_database_url, public_reads=False)


def test_roles_decide_who_may_write_edit_audit_and_rebuild(open_reads: Guarded) -> None:
    sources, claims = open_reads.sources, open_reads.claims
    source = {"name": "Reuters", "kind": "wire agency"}
    missing = sources.post("/sources", json=source)
    assert_problem(missing, 401)
    assert missing.headers["WWW-Authenticate"] == "Bearer"
    assert_problem(
        sources.post("/sources", json=source, headers={"Authorization": "Bearer x"}), 401
    )
    assert_problem(sources.post("/sources", json=source, headers={"Authorization": "Basic x"}), 401)
    two_keys = [("Authorization", bearer(name)["Authorization"]) for name in ("auditor", "desk")]
    assert_problem(sources.post("/sources", json=source, headers=two_keys), 401)

    created = sources.post("/sources", json=source, headers=bearer("desk"))
    assert created.status_code == 201, created.text
    rating = {"reliability": "B", "rationale": "wire agency"}
    path = f"/sources/{created.json()['id']}/ratings"
    assert_problem(sources.post(path, json=rating, headers=bearer("desk")), 403)
    assert sources.post(path, json=rating, headers=bearer("standards")).status_code == 201
    assert_problem(sources.post("/sources", json=source, headers=bearer("auditor")), 403)
    broken, as_json = b'{"name": ', {"content-type": "application/json"}
    assert_problem(sources.post("/sources", content=broken, headers=as_json), 401)
    assert_problem(claims.post("/claims", content=broken, headers=as_json), 401)
    desk = {**as_json, **bearer("desk")}
    assert_problem(sources.post(path, content=broken, headers=desk), 403)
    assert_problem(sources.post("/sources", content=broken, headers=desk), 422, "body")

    assert sources.get("/sources").status_code == 200, "reads are public by default"
    assert sources.get("/feed").status_code == 200
    assert_problem(sources.get("/audit/verify"), 401)
    assert_problem(sources.get("/audit/verify", headers=bearer("desk")), 403)
    assert sources.get("/audit/verify", headers=bearer("auditor")).json()["ok"] is True
    assert_problem(claims.post("/admin/rebuild", headers=bearer("standards")), 403)
    assert claims.post("/admin/rebuild", headers=bearer("ops")).status_code == 200

    feed = sources.get("/feed").json()["items"]
    assert [item["metadata"]["actor"] for item in feed] == ["desk", "standards"]
    assert feed[1]["data"]["rater"] == "standards"
    export = sources.get("/audit/export", headers=bearer("ops")).text
    for _, key in KEYS.values():
        assert key not in export


def test_closed_reads_need_a_key_and_services_still_talk(closed_reads: Guarded) -> None:
    sources, claims = closed_reads.sources, closed_reads.claims
    assert_problem(sources.get("/sources"), 401)
    assert_problem(claims.get("/claims"), 401)
    assert sources.get("/health").status_code == 200, "health stays open for orchestrators"
    claim = claims.post("/claims", json={"text": "a claim"}, headers=bearer("desk")).json()
    source = sources.post("/sources", json={"name": "s", "kind": "k"}, headers=bearer("desk"))
    evidence = sources.post(
        "/evidence",
        json={
            "source_id": source.json()["id"],
            "claim_id": claim["id"],
            "stance": "supports",
            "strength": "weak",
            "published_at": "2024-01-05T00:00:00Z",
            "summary": "checked across services with a key",
        },
        headers=bearer("desk"),
    )
    assert evidence.status_code == 201, evidence.text
    answer = claims.get(
        f"/claims/{claim['id']}/verdict",
        params={"min_position": evidence.json()["position"]},
        headers=bearer("auditor"),
    )
    assert answer.status_code == 200, answer.text
    assert answer.json()["supporting_origins"] == 1
    claims_url = ["--claims-url", str(claims.base_url)]
    for command in ("verdict", "timeline", "history"):
        asked = [command, claim["id"], *claims_url, "--json"]
        refused = CliRunner().invoke(cli, asked, env={"FACTCHECK_API_KEY": ""})
        assert refused.exit_code == 1 and "401" in refused.output, refused.output
        answered = CliRunner().invoke(cli, asked, env={"FACTCHECK_API_KEY": KEYS["desk"][1]})
        assert answered.exit_code == 0, answered.output
        assert json.loads(answered.output)


def test_the_api_documents_say_which_operations_need_which_key(closed_reads: Guarded) -> None:
    """Each operation documents the bearer scheme, 401 and 403 exactly when the service
    answers so: asked of every operation, without a key and with each role's key."""
    for client in (closed_reads.sources, closed_reads.claims):
        document = client.get("/openapi.json").json()
        scheme = document["components"]["securitySchemes"]["apiKey"]
        assert (scheme["type"], scheme["scheme"]) == ("http", "bearer")
        for path, operations in document["paths"].items():
            url = path.replace("{claim_id}", str(uuid4()))
            url = url.replace("{source_id}", str(uuid4())).replace("{evidence_id}", str(uuid4()))
            for method, operation in operations.items():
                documented = set(operation["responses"])
                key_optional = {} in operation["security"]
                assert {"apiKey": []} in operation["security"], (method, path)
                without_key = client.request(method, url).status_code
                assert (without_key == 401) == (not key_optional) == ("401" in documented)
                with_keys = {
                    client.request(method, url, headers=bearer(name)).status_code for name in KEYS
                }
                assert 401 not in with_keys, (method, path)
                assert (403 in with_keys) == ("403" in documented), (method, path, with_keys)


@pytest.mark.parametrize(
    ("entries", "reason"),
    [
        ("desk", "expected name:role:sha256"),
        (f"a:b:editor:{digest('k')}", "expected name:role:sha256"),
        (f":editor:{digest('k')}", "needs a name"),
        (f"desk:boss:{digest('k')}", "role must be one of"),
        ("desk:editor:abc", "64 hex digits"),
        (f"desk :editor:{digest('k')}", "no space at either end"),
        (f"ops:editor:{digest('k')}", "two roles, admin and editor"),
        (f"desk:admin:{digest('o')}", "the same key is listed for 'ops' too"),
    ],
)
def test_an_unusable_key_entry_is_named(entries: str, reason: str) -> None:
    with pytest.raises(SettingError, match=r"^FACTCHECK_API_KEYS: ") as raised:
        Access(api_keys=f"ops:admin:{digest('o')},{entries}").gate()
    assert reason in str(raised.value)


@pytest.mark.parametrize(
    "listed", ["{}", "[1]", '[{"name": 1, "role": "editor", "sha256": ""}]', '["desk"]']
)
def test_a_key_file_that_is_not_a_list_of_entries_is_named(tmp_path: Path, listed: str) -> None:
    file = tmp_path / "keys.json"
    file.write_text(listed)
    with pytest.raises(SettingError, match=r"^FACTCHECK_API_KEYS_FILE: expected a JSON list"):
        Access(api_keys_file=str(file)).gate()


def test_a_key_file_takes_names_an_inline_entry_could_not_carry(tmp_path: Path) -> None:
    file = tmp_path / "keys.json"
    file.write_text(json.dumps([{"name": "Smith, J.", "role": "editor", "sha256": digest("k")}]))
    (taken,) = Access(api_keys_file=str(file)).gate().keys
    assert taken.name == "Smith, J."


def test_new_key_makes_only_entries_the_services_take() -> None:
    for name in ("a:b", "a,b", " desk", ""):
        refused = CliRunner().invoke(cli, ["new-key", name, "editor"])
        assert refused.exit_code == 2, (name, refused.output)
        assert "name" in refused.output
    made = CliRunner().invoke(cli, ["new-key", "standards desk", "editor"])
    assert made.exit_code == 0, made.output
    key = made.output.split("it is not stored): ")[1].split()[0]
    entry = made.output.split("FACTCHECK_API_KEYS entry: ")[1].strip()
    (taken,) = Access(api_keys=entry).gate().keys
    assert (taken.name, taken.role, taken.digest) == ("standards desk", "editor", digest(key))


def test_a_holder_may_have_two_keys_of_one_role_while_one_is_replaced() -> None:
    keys = Access(api_keys=f"desk:editor:{digest('old')},desk:editor:{digest('new')}").gate().keys
    assert [(key.name, key.role) for key in keys] == [("desk", "editor")] * 2


def test_an_entry_given_inline_and_in_the_file_counts_once(tmp_path: Path) -> None:
    file = tmp_path / "keys.json"
    file.write_text(json.dumps([{"name": "desk", "role": "editor", "sha256": digest("k")}]))
    inline = f"desk:editor:{digest('k')}"
    (taken,) = Access(api_keys=inline, api_keys_file=str(file)).gate().keys
    assert (taken.name, taken.role, taken.digest) == ("desk", "editor", digest("k"))


def test_a_key_digest_is_taken_in_either_case() -> None:
    (taken,) = Access(api_keys=f"desk:submitter:{digest('k').upper()}").gate().keys
    assert taken.digest == digest("k")


@pytest.mark.parametrize(
    ("key", "told"),
    [
        ("fck_not_a_key_it_takes", "refused CLAIMS_API_KEY (401)"),
        (None, "needs CLAIMS_API_KEY, which is unset (401)"),
    ],
)
def test_a_claims_api_key_the_claims_service_refuses_is_named_as_the_fault(
    database_url: str, claims_database_url: str, key: str | None, told: str
) -> None:
    access = Access(api_keys=CONFIG, public_reads=False)
    claims_app = create_claims_app(
        ClaimsSettings(database_url=claims_database_url, follow=False, access=access)
    )
    with serving(claims_app) as claims_url:
        claim = httpx.post(
            f"{claims_url}/claims", json={"text": "a claim"}, headers=bearer("desk")
        ).json()
        sources_app = create_sources_app(
            SourcesSettings(
                database_url=database_url,
                claims_url=claims_url,
                claims_api_key=key,
                access=access,
            )
        )
        with serving(sources_app) as sources_url, httpx.Client(base_url=sources_url) as sources:
            assert told in str(settled_health(sources)["claims_setting"])
            source = sources.post(
                "/sources", json={"name": "s", "kind": "k"}, headers=bearer("desk")
            )
            head = sources.get("/feed", headers=bearer("desk")).json()["head"]
            body = evidence_body(source.json()["id"], claim["id"])
            refused = sources.post("/evidence", json=body, headers=bearer("desk"))
            assert_problem(refused, 503)
            assert told in refused.json()["detail"]
            assert "retry-after" not in refused.headers
            assert sources.get("/feed", headers=bearer("desk")).json()["head"] == head


@pytest.mark.parametrize(
    ("sources_api_key", "told"),
    [
        (KEYS["desk"][1], "refused SOURCES_API_KEY (403 to GET /audit/verify)"),
        (None, "needs SOURCES_API_KEY, which is unset (401 to GET /audit/verify)"),
    ],
)
def test_a_rebuild_names_a_sources_key_that_cannot_verify_the_sources_log(
    database_url: str, claims_database_url: str, sources_api_key: str | None, told: str
) -> None:
    for services in guarded(database_url, claims_database_url, True, sources_api_key):
        refused = services.claims.post("/admin/rebuild", headers=bearer("ops"))
        assert_problem(refused, 503)
        assert told in refused.json()["detail"]
        assert "auditor or admin role" in refused.json()["detail"]
        assert "Retry-After" not in refused.headers, "retrying cannot help"
