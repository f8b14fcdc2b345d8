"""The one place where the claims service's parts are wired together."""

import threading
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
from fastapi import FastAPI
from sqlmodel import Session, func, select

from services.claims.api import router
from services.claims.application import ClaimsApplication
from services.claims.projections import ClaimsProjection, ClaimView, VerdictProjection
from services.claims.verdicts import VerdictIndex
from shared.chain import witness_fault
from shared.errors import Conflict, Unavailable
from shared.feed import FeedPage
from shared.follower import FeedFollower, Progress, WrongFeed
from shared.projection import ReadGate
from shared.rebuild import REBUILD_DRAIN_SECONDS, rebuild_from_own_log
from shared.service import closed_apart, service_app
from shared.settings import ClaimsSettings
from shared.startup import closed_on_failure, open_service

OWN_CONNECTIONS = 3
"""Connections the feed follower and the verdict index use, apart from the readers' pool, so
that reads holding every pooled connection do not hold up what they may be waiting for: the
follower's page, a rebuild beside it, and the index loading a claim."""


def create_app(settings: ClaimsSettings) -> FastAPI:
    """Build the claims service: its store, projections, verdict index and feed follower."""
    storage = settings.storage
    gate = settings.access.gate()
    application, engine, claims_projection = open_service(
        storage, lambda: ClaimsApplication(storage), ClaimsProjection
    )
    verdict_gate = ReadGate()
    """Readers of the verdict read models hold it; a rebuild closes it while it refollows."""
    rebuilding = threading.Lock()

    def apply(page: FeedPage) -> Progress:
        with application.database_writes():
            if not (verdicts.whole or rebuilding.locked()):
                verdicts.create_tables()
            progress, changes = verdicts.apply_page(page)
        index.extend(changes)
        return progress

    with closed_on_failure(application):
        own = storage.create_engine(connections=OWN_CONNECTIONS)
        application.after_close(own.dispose)
        verdicts = VerdictProjection(own)
        verdicts.reshape()
        verdicts.create_tables()
        index = VerdictIndex(own)
        follower = FeedFollower(
            settings.sources_url,
            apply,
            verdicts.progress,
            wait=settings.follower_wait,
            page_size=settings.follower_page_size,
            linger=settings.follower_linger,
            api_key=settings.sources_api_key,
        )

    def reset() -> Progress:
        verdicts.drop()
        index.clear()
        return verdicts.progress()

    def rebuild() -> dict[str, float]:
        if not rebuilding.acquire(blocking=False):
            raise Conflict("a rebuild is already running")
        try:
            return rebuild_from_sources()
        except httpx.HTTPStatusError as error:
            answered = error.response
            raise Unavailable(
                f"the sources service answered {answered.status_code} to "
                f"{error.request.method} {error.request.url.path}; nothing was rebuilt"
            ) from None
        except httpx.HTTPError as error:
            raise Unavailable(f"the sources service cannot be reached: {error}") from None
        except WrongFeed as error:
            raise Unavailable(f"{error}; nothing was rebuilt", retry_after=None) from None
        finally:
            rebuilding.release()

    def rebuild_from_sources() -> dict[str, float]:
        began = time.monotonic()
        follower.check_feed()
        checked = follower.verify_source()
        if checked.get("ok"):
            applied = verdicts.progress()
            fault = witness_fault(checked, applied.position, applied.last_hash, follower.hash_at)
            if fault is not None:
                checked.update(ok=False, broken_position=fault[0], reason=fault[1])
        if not checked.get("ok"):
            raise Conflict(
                "the sources log fails verification at position "
                f"{checked.get('broken_position')}: {checked.get('reason')}; nothing was rebuilt"
            )
        verify_seconds = time.monotonic() - began
        own = rebuild_from_own_log(claims_projection, "claims")
        replaying = time.monotonic()
        with verdict_gate.closed(drain=REBUILD_DRAIN_SECONDS):
            try:
                progress = follower.replay_from_start(reset)
            finally:
                with application.database_writes():
                    verdicts.create_tables()
        replayed = time.monotonic() - replaying
        with Session(engine) as session:
            claims = session.exec(select(func.count()).select_from(ClaimView)).one()
        return {
            "position": progress.position,
            "claims": claims,
            "verify_seconds": verify_seconds + own.verify_seconds,
            "rebuild_seconds": own.rebuild_seconds + replayed,
        }

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        if settings.follow:
            follower.start()
        yield

        def close() -> None:
            follower.stop()
            application.close()

        await closed_apart(close)

    return service_app(
        "factcheck claims",
        "Claims, editorial rulings, and verdicts on both time axes.",
        router,
        lifespan,
        settings=settings,
        claims=application,
        application=application,
        gate=gate,
        engine=engine,
        projection=claims_projection,
        verdicts=verdicts,
        index=index,
        verdict_gate=verdict_gate,
        follower=follower,
        rebuild=rebuild,
    )
