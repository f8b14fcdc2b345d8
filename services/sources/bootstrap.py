"""The one place where the sources service's parts are wired together."""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from services.sources.api import router
from services.sources.application import SourcesApplication
from services.sources.claims import ClaimDirectory, HttpClaimDirectory
from services.sources.projections import SourcesProjection
from shared.problems import install_problem_handlers
from shared.schemas import assign_request_id
from shared.settings import SourcesSettings
from shared.startup import open_store


def create_app(settings: SourcesSettings, claims: ClaimDirectory | None = None) -> FastAPI:
    """Build the sources service; `claims` answers whether a claim exists (HTTP by default)."""
    storage = settings.storage
    directory = claims or HttpClaimDirectory(settings.claims_url, settings.claims_timeout)
    application = open_store(storage, lambda: SourcesApplication(storage, directory))
    engine = storage.create_engine()
    projection = SourcesProjection(engine, application)
    projection.create_tables()
    projection.catch_up_or_log()
    application.on_recorded(projection.catch_up)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        yield
        application.close()
        engine.dispose()
        if isinstance(directory, HttpClaimDirectory):
            directory.close()

    app = FastAPI(
        title="factcheck sources",
        summary="Sources, their reliability ratings, and the evidence they give.",
        version="0.1.0",
        lifespan=lifespan,
    )
    app.state.sources = application
    app.state.engine = engine
    app.state.projection = projection
    install_problem_handlers(app)
    app.middleware("http")(assign_request_id)
    app.include_router(router)
    return app


def app_from_env() -> FastAPI:
    """The uvicorn factory: settings from the environment."""
    return create_app(SourcesSettings.from_env())
