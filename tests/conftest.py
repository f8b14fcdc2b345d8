"""Fixtures: every storage test runs on SQLite and on the real PostgreSQL server."""

import os
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import AbstractContextManager, ExitStack, asynccontextmanager, contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import psycopg
import pytest
from fastapi import FastAPI
from sqlalchemy import Engine

from services.claims.bootstrap import create_app as create_claims_app
from services.sources.bootstrap import create_app as create_sources_app
from shared.settings import ClaimsSettings, SourcesSettings
from shared.storage import READ_MODEL_CONNECTIONS
from tests.servers import free_port, serving

POSTGRES_URL = os.environ.get(
    "FACTCHECK_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test"
)


@pytest.fixture(params=["sqlite", "postgres"])
def storage_kind(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture
def database_url(storage_kind: str, tmp_path: Path) -> Iterator[str]:
    """A fresh, empty database for one service: a SQLite file, or a PostgreSQL schema."""
    with fresh_database(storage_kind, tmp_path, "sources") as url:
        yield url


@contextmanager
def fresh_database(storage_kind: str, tmp_path: Path, name: str) -> Iterator[str]:
    """A new, empty database's URL, removed on leaving if it is a PostgreSQL schema."""
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
        self.fault: str | None = None

    def exists(self, claim_id: uuid.UUID) -> bool:
        return claim_id in self.ids

    def add(self) -> str:
        claim_id = uuid.uuid4()
        self.ids.add(claim_id)
        return str(claim_id)


@pytest.fixture
def known_claims() -> KnownClaims:
    return KnownClaims()


@contextmanager
def sources_service(database_url: str, known_claims: KnownClaims) -> Iterator[FastAPI]:
    """The sources service on the store, started afresh; closed on leaving."""
    app = create_sources_app(SourcesSettings(database_url=database_url), claims=known_claims)
    try:
        yield app
    finally:
        app.state.sources.close()
        app.state.engine.dispose()


@asynccontextmanager
async def in_process(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    """A client that calls the sources service `app` in process, with no socket."""
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://sources") as client:
        yield client


@pytest.fixture
def sources_app(database_url: str, known_claims: KnownClaims) -> Iterator[FastAPI]:
    with sources_service(database_url, known_claims) as app:
        yield app


@pytest.fixture
async def sources(sources_app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with in_process(sources_app) as client:
        yield client


@dataclass
class Services:
    """Both services on real uvicorn servers on loopback ports."""

    sources_url: str
    claims_url: str
    sources_app: FastAPI
    claims_app: FastAPI
    sources: httpx.Client
    claims: httpx.Client


@pytest.fixture
def claims_database_url(storage_kind: str, tmp_path: Path) -> Iterator[str]:
    with fresh_database(storage_kind, tmp_path, "claims") as url:
        yield url


@pytest.fixture
def services(database_url: str, claims_database_url: str) -> Iterator[Services]:
    with serve_both(database_url, claims_database_url) as running:
        yield running


@contextmanager
def serve_both(
    database_url: str, claims_database_url: str, read_wait: float = 2.0
) -> Iterator[Services]:
    """Both services on real uvicorn servers, the claims service following the sources."""
    sources_port, claims_port = free_port(), free_port()
    sources_url = f"http://127.0.0.1:{sources_port}"
    claims_url = f"http://127.0.0.1:{claims_port}"
    sources_app = create_sources_app(
        SourcesSettings(database_url=database_url, claims_url=claims_url, claims_timeout=2.0)
    )
    claims_app = create_claims_app(
        ClaimsSettings(
            database_url=claims_database_url,
            sources_url=sources_url,
            follower_wait=0.5,
            read_wait=read_wait,
        )
    )
    with (
        serving(sources_app, sources_port),
        serving(claims_app, claims_port),
        httpx.Client(base_url=sources_url, timeout=30) as sources_client,
        httpx.Client(base_url=claims_url, timeout=30) as claims_client,
    ):
        yield Services(
            sources_url, claims_url, sources_app, claims_app, sources_client, claims_client
        )


@dataclass
class ComingAndGoing:
    """The claims service, with what a test needs to start and stop the sources service it
    follows, on a port fixed in advance."""

    claims_app: FastAPI
    claims_port: int
    sources_port: int
    sources_settings: SourcesSettings

    def serve_sources(self) -> AbstractContextManager[str]:
        """Serve a newly built sources service on its port; yield its base URL."""
        return serving(create_sources_app(self.sources_settings), self.sources_port)


def coming_and_going(database_url: str, claims_database_url: str) -> ComingAndGoing:
    sources_port, claims_port = free_port(), free_port()
    claims_app = create_claims_app(
        ClaimsSettings(
            database_url=claims_database_url,
            sources_url=f"http://127.0.0.1:{sources_port}",
            follower_wait=0.3,
            read_wait=3.0,
        )
    )
    sources_settings = SourcesSettings(
        database_url=database_url, claims_url=f"http://127.0.0.1:{claims_port}"
    )
    return ComingAndGoing(claims_app, claims_port, sources_port, sources_settings)


@contextmanager
def read_connections_held(engine: Engine) -> Iterator[None]:
    """Hold every connection of a service's readers' pool, as readers that do not let go."""
    with ExitStack() as held:
        for _ in range(READ_MODEL_CONNECTIONS):
            held.enter_context(engine.connect())
        yield
