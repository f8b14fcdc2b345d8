"""The one place where the sources service's parts are wired together."""

import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import asdict

from fastapi import FastAPI
from sqlmodel import Session, func, select

from services.sources.api import router
from services.sources.application import SourcesApplication
from services.sources.claims import SETTING_CHECK_SECONDS, ClaimDirectory, HttpClaimDirectory
from services.sources.projections import EvidenceView, SourcesProjection
from shared.rebuild import rebuild_from_own_log
from shared.service import closed_apart, service_app
from shared.settings import SourcesSettings
from shared.startup import open_service


def create_app(settings: SourcesSettings, claims: ClaimDirectory | None = None) -> FastAPI:
    """Build the sources service; `claims` answers whether a claim exists (HTTP by default)."""
    storage = settings.storage
    gate = settings.access.gate()
    directory = claims or HttpClaimDirectory(
        settings.claims_url, settings.claims_timeout, settings.claims_api_key
    )
    application, engine, projection = open_service(
        storage, lambda: SourcesApplication(storage, directory), SourcesProjection
    )

    def rebuild() -> dict[str, float]:
        rebuilt = rebuild_from_own_log(projection, "sources")
        with Session(engine) as session:
            evidence = session.exec(select(func.count()).select_from(EvidenceView)).one()
        return {**asdict(rebuilt), "evidence": evidence}

    stopping = threading.Event()

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        watching = None
        if isinstance(directory, HttpClaimDirectory):
            watching = threading.Thread(
                target=directory.watch_setting, args=(stopping,), name="claims-setting", daemon=True
            )
            watching.start()
        yield

        def close() -> None:
            stopping.set()
            application.close()
            if watching is not None:
                watching.join(timeout=SETTING_CHECK_SECONDS + 1)
            if isinstance(directory, HttpClaimDirectory):
                directory.close()

        await closed_apart(close)

    return service_app(
        "factcheck sources",
        "Sources, their reliability ratings, and the evidence they give.",
        router,
        lifespan,
        sources=application,
        application=application,
        gate=gate,
        engine=engine,
        projection=projection,
        claims_directory=directory,
        rebuild=rebuild,
    )
