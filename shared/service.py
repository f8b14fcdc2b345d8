"""What every factcheck service's FastAPI app has: problem details, request ids, read sessions."""

from collections.abc import Callable, Iterator
from contextlib import AbstractAsyncContextManager
from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, Request
from sqlmodel import Session

from shared.problems import install_problem_handlers
from shared.schemas import assign_request_id

VERSION = "0.1.0"


def service_app(
    title: str,
    summary: str,
    router: APIRouter,
    lifespan: Callable[[FastAPI], AbstractAsyncContextManager[None]],
    **state: Any,
) -> FastAPI:
    """A FastAPI app with the service's routes; `state` becomes `app.state`."""
    app = FastAPI(title=title, summary=summary, version=VERSION, lifespan=lifespan)
    for name, value in state.items():
        setattr(app.state, name, value)
    install_problem_handlers(app)
    app.middleware("http")(assign_request_id)
    app.include_router(router)
    return app


def read_session(request: Request) -> Iterator[Session]:
    """A session on the service's read models, for one request."""
    with Session(request.app.state.engine) as session:
        yield session


Reads = Annotated[Session, Depends(read_session)]
