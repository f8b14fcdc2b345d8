"""Fixtures: every storage test runs on SQLite and on the real PostgreSQL server."""

import os
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import psycopg
import pytest
from fastapi import FastAPI

from services.sources.bootstrap import create_app as create_sources_app
from shared.settings import SourcesSettings

POSTGRES_URL = os.environ.get(
    "FACTCHECK_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test"
)


@pytest.fixture(params=["sqlite", "postgres"])
def storage_kind(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture
def database_url(storage_kind: str, tmp_path: Path) -> Iterator[str]:
    """A fresh, empty database for one service: a SQLite file, or a PostgreSQL schema."""
    yield from _database_url(storage_kind, tmp_path, "sources")


def _database_url(storage_kind: str, tmp_path: Path, name: str) -> Iterator[str]:
    if storage_kind == "sqlite":
        yield f"sqlite:///{tmp_path / f'{name}.db'}"
        return
    schema = f"t_{name}_{uuid.uuid4().hex[:12]}"
    yield f"{POSTGRES_URL}?schema={schema}"
    with psycopg.connect(POSTGRES_URL, autocommit=True) as connection:
        connection.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


class KnownClaims:
    """The sources service's claim check, answered from a set the test controls."""

    def __init__(self) -> None:
        self.ids: set[uuid.UUID] = set()

    def exists(self, claim_id: uuid.UUID) -> bool:
        return claim_id in self.ids

    def add(self) -> str:
        claim_id = uuid.uuid4()
        self.ids.add(claim_id)
        return str(claim_id)


@pytest.fixture
def known_claims() -> KnownClaims:
    return KnownClaims()


@pytest.fixture
def sources_app(database_url: str, known_claims: KnownClaims) -> Iterator[FastAPI]:
    app = create_sources_app(SourcesSettings(database_url=database_url), claims=known_claims)
    yield app
    app.state.sources.close()
    app.state.engine.dispose()


@pytest.fixture
async def sources(sources_app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=sources_app)
    async with httpx.AsyncClient(transport=transport, base_url="http://sources") as client:
        yield client
