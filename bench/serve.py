"""Serve one service for a benchmark, as `factcheck serve` does, beside a bare baseline app.

    python -m bench.serve sources|claims PORT

Requests under `/baseline` go to a bare FastAPI app in the same process: no middleware, no
checks, one new eventsourcing aggregate saved per POST in the service's own database.
"""

import sys
from collections.abc import Mapping

from eventsourcing.application import Application
from eventsourcing.domain import Aggregate
from eventsourcing.sqlite import SQLiteApplicationRecorder, SQLiteDatastore
from eventsourcing.utils import Environment, get_topic
from fastapi import FastAPI
from pydantic import BaseModel
from starlette.types import ASGIApp, Receive, Scope, Send

from services.claims.bootstrap import create_app as create_claims
from services.sources.bootstrap import create_app as create_sources
from shared.server import serve
from shared.settings import ClaimsSettings, SourcesSettings
from shared.storage import Storage


class Note(Aggregate):
    """The baseline's aggregate: one text field, one Created event."""

    def __init__(self, text: str) -> None:
        self.text = text


class NoteIn(BaseModel):
    text: str


class BaselineRecorder(SQLiteApplicationRecorder):
    """SQLite names every application's table `stored_events`; the baseline needs its own."""

    def __init__(self, datastore: SQLiteDatastore, events_table_name: str = "") -> None:
        super().__init__(datastore, events_table_name="baseline_events")


class Baseline(Application[object]):
    """A plain eventsourcing application on the service's database, in a table of its own."""

    name = "baseline"

    def construct_env(self, name: str, env: Mapping[str, str] | None = None) -> Environment:
        return Environment(name, dict(env or {}))


def baseline_app(storage: Storage) -> FastAPI:
    """The bare endpoint the append benchmark compares `POST /evidence` with."""
    env = storage.eventsourcing_env()
    if storage.kind == "sqlite":
        env["APPLICATION_RECORDER_TOPIC"] = get_topic(BaselineRecorder)
    notes = Baseline(env=env)
    app = FastAPI()

    @app.post("/baseline/notes", status_code=201)
    def save_note(body: NoteIn) -> dict[str, str]:
        note = Note(body.text)
        notes.save(note)
        return {"id": str(note.id)}

    @app.get("/baseline/noop")
    async def noop() -> dict[str, str]:
        return {}

    return app


def by_prefix(service: ASGIApp, baseline: ASGIApp) -> ASGIApp:
    async def route(scope: Scope, receive: Receive, send: Send) -> None:
        target = baseline if scope.get("path", "").startswith("/baseline/") else service
        await target(scope, receive, send)

    return route


def main() -> None:
    name, port = sys.argv[1], int(sys.argv[2])
    if name == "sources":
        sources = SourcesSettings.from_env()
        service = create_sources(sources)
        storage = sources.storage
    else:
        claims = ClaimsSettings.from_env()
        service = create_claims(claims)
        storage = claims.storage
    app = by_prefix(service, baseline_app(storage))
    serve(app, "127.0.0.1", port, "warning", service.state.stopping)


if __name__ == "__main__":
    main()
