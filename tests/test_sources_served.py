"""The sources service as a user meets it: uvicorn on a loopback port, and its start-up."""

import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import text

from services.claims.bootstrap import create_app as create_claims_app
from services.sources.bootstrap import create_app
from shared.settings import ClaimsSettings, SettingError, SourcesSettings
from shared.storage import StorageConfigError
from tests.conftest import KnownClaims
from tests.servers import free_port, serving


def test_prosecutor_evidence_round_trip_over_a_socket(
    sources_app: FastAPI, known_claims: KnownClaims
) -> None:
    claim = known_claims.add()
    with serving(sources_app) as base_url, httpx.Client(base_url=base_url) as client:
        assert client.get("/docs").status_code == 200
        source = client.post(
            "/sources",
            json={
                "name": "Kharkiv Region Prosecutor's Office",
                "kind": "prosecutor",
                "country": "UA",
            },
        ).json()
        rated = client.post(
            f"/sources/{source['id']}/ratings",
            json={"reliability": "C", "rationale": "official, but a party to the conflict"},
        )
        assert rated.status_code == 201
        evidence = client.post(
            "/evidence",
            json={
                "source_id": source["id"],
                "claim_id": claim,
                "stance": "supports",
                "strength": "moderate",
                "published_at": "2024-01-06T12:00:00+02:00",
                "summary": "Debris presented; leaning towards a North Korean missile.",
            },
        )
        assert evidence.status_code == 201, evidence.text
        written = evidence.json()
        feed = client.get("/feed").json()
        last = feed["items"][-1]
        assert last["position"] == written["position"]
        assert last["recorded_at"] == written["recorded_at"]
        assert last["data"]["summary"].startswith("Debris presented")
        assert [item["type"] for item in feed["items"]] == [
            "SourceRegistered",
            "SourceRated",
            "EvidenceSubmitted",
        ]


@pytest.mark.parametrize(
    "url",
    [
        "mysql://root@127.0.0.1/test",
        "sqlite://relative.db",
        "sqlite:///var/sources.db?mode=ro",
        "sqlite:///:memory:",
        "postgresql://postgres@127.0.0.1:5432/test?schema=",
        "postgresql://postgres@127.0.0.1:5432/test?schema=information_schema",
        "postgresql://postgres@127.0.0.1:5432/test?schema=a&schema=b",
        "postgresql://postgres@127.0.0.1:5432/test#top",
        "postgresql://postgres@127.0.0.1:1/test",
        "postgresql://postgres@127.0.0.1:5432/test?sslmode=disable",
        "postgresql://postgres@127.0.0.1:5432/test?schema=Mixed_Case",
        "postgresql://postgres:se%40cret@127.0.0.1:99999/test",
        "postgresql://postgres:se%40cret@127.0.0.1:1/test",
        "postgresql://postgres:plain@127.0.0.1:0/test",
        "postgresql://postgres:plain@cret@127.0.0.1:99999/test",
    ],
)
def test_an_unusable_storage_url_fails_in_one_line(url: str) -> None:
    env = {**os.environ, "SOURCES_DATABASE_URL": url}
    result = subprocess.run(
        [sys.executable, "-m", "shared.cli", "serve", "--service", "sources"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "SOURCES_DATABASE_URL" in lines[0]
    assert "cret" not in lines[0] and "plain" not in lines[0], "a password is never shown"


SERVE = [sys.executable, "-m", "shared.cli", "serve"]


def test_a_store_already_served_refuses_a_second_process(database_url: str) -> None:
    """A second writer would chain its events to a head the first has moved past."""
    first = create_app(SourcesSettings(database_url=database_url))
    try:
        for service, setting in (
            ("sources", "SOURCES_DATABASE_URL"),
            ("claims", "CLAIMS_DATABASE_URL"),
        ):
            result = subprocess.run(
                [*SERVE, "--service", service, "--port", str(free_port())],
                env={**os.environ, setting: database_url},
                capture_output=True,
                text=True,
                timeout=60,
            )
            assert result.returncode == 2, result.stderr
            lines = result.stderr.strip().splitlines()
            assert len(lines) == 1, result.stderr
            assert setting in lines[0] and "another process already serves this store" in lines[0]
    finally:
        first.state.application.close()
    again = create_app(SourcesSettings(database_url=database_url))
    again.state.application.close()


def test_a_start_that_fails_after_opening_the_store_lets_it_go(
    database_url: str, claims_database_url: str
) -> None:
    """A read-model index that cannot be created (its name is taken) fails the start; once the
    name is free, a start in the same process finds the store free."""
    for build, url, taken in (
        (
            lambda url: create_app(SourcesSettings(database_url=url)),
            database_url,
            "ix_rating_view_source_id",
        ),
        (
            lambda url: create_claims_app(ClaimsSettings(database_url=url, follow=False)),
            claims_database_url,
            "ix_evidence_version_claim",
        ),
    ):
        storage = SourcesSettings(database_url=url).storage
        storage.prepare()
        engine = storage.create_engine()
        with engine.begin() as connection:
            connection.execute(text(f"CREATE TABLE {taken} (id INTEGER)"))
        with pytest.raises(Exception, match=taken):
            build(url)
        with engine.begin() as connection:
            connection.execute(text(f"DROP TABLE {taken}"))
        engine.dispose()
        started = build(url)
        started.state.application.close()
        started.state.engine.dispose()


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("FOLLOWER_WAIT", "31"),
        ("FOLLOWER_WAIT", "nan"),
        ("FOLLOWER_LINGER", "inf"),
        ("READ_WAIT", "nan"),
        ("READ_WAIT", "-1"),
        ("CLAIMS_TIMEOUT", "0"),
    ],
)
def test_an_unusable_number_of_seconds_is_named(name: str, value: str) -> None:
    with pytest.raises(SettingError, match=f"^{name}="):
        SourcesSettings.from_env({name: value})
        ClaimsSettings.from_env({name: value})


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("CLAIMS_URL", "http://"),
        ("CLAIMS_URL", "127.0.0.1:8000"),
        ("CLAIMS_URL", "ftp://claims.example"),
        ("CLAIMS_URL", "http://claims.example:99999"),
        ("CLAIMS_URL", "http://claims.example:0"),
        ("CLAIMS_URL", "http://claims.example:port"),
        ("SOURCES_URL", "https://:8001"),
        ("SOURCES_URL", "http://sources.example/?x=1"),
        ("FACTCHECK_PUBLIC_URL", "https://factcheck.example/#top"),
        ("CLAIMS_URL", "http://[::1:8000"),
        ("CLAIMS_URL", "http://claims example:8000"),
        ("CLAIMS_URL", "http://desk:se%40cret@claims.example:99999"),
        ("FACTCHECK_PUBLIC_URL", "https://editor:se%40cret@news.example"),
        ("FACTCHECK_PUBLIC_URL", "https://news.example/fact checks"),
    ],
)
def test_an_unusable_service_url_is_named(name: str, value: str) -> None:
    with pytest.raises(SettingError, match=f"^{name}=") as raised:
        SourcesSettings.from_env({name: value})
        ClaimsSettings.from_env({name: value})
    assert "cret" not in str(raised.value), "a password is never shown"


def test_a_service_url_keeps_its_path_without_a_trailing_slash() -> None:
    settings = ClaimsSettings.from_env(
        {"SOURCES_URL": "https://news.example:8443/sources/", "FACTCHECK_PUBLIC_URL": "HTTP://x"}
    )
    assert settings.sources_url == "https://news.example:8443/sources"
    assert settings.public_url == "HTTP://x"
    assert SourcesSettings.from_env({"CLAIMS_URL": "http://[::1]:8000"}).claims_url == (
        "http://[::1]:8000"
    )


def test_a_sqlite_store_makes_its_own_folder_but_not_a_missing_tree(tmp_path: Path) -> None:
    """The file's own folder is made where the folder above it exists; a mistyped path
    further up is refused, and nothing is created."""
    nested = SourcesSettings(database_url=f"sqlite:///{tmp_path / 'typo' / 'var' / 's.db'}")
    with pytest.raises(StorageConfigError, match=r"the folder .*typo does not exist"):
        nested.storage.prepare()
    assert list(tmp_path.iterdir()) == []
    own = SourcesSettings(database_url=f"sqlite:///{tmp_path / 'var' / 's.db'}").storage
    own.prepare()
    assert (tmp_path / "var").is_dir()
