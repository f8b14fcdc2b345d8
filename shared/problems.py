"""RFC 9457 problem details: every error either service answers is application/problem+json."""

import logging
from collections.abc import Sequence
from http import HTTPStatus
from typing import Any

from eventsourcing.persistence import (
    InterfaceError as StoreInterfaceError,
)
from eventsourcing.persistence import MapperDeserialisationError, RecordConflictError
from eventsourcing.persistence import (
    OperationalError as StoreOperationalError,
)
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from psycopg import OperationalError as PostgresOperationalError
from pydantic import BaseModel
from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import BaseRoute, Match

from shared.auth import AuthError
from shared.chain import UnreadableEvent
from shared.errors import Conflict, NotFound, Rejected, Unavailable
from shared.schemas import REQUEST_ID_HEADER

PROBLEM_JSON = "application/problem+json"
RFC_9110_PHRASES = {413: "Content Too Large", 422: "Unprocessable Content"}
"""Where RFC 9110 renamed a status phrase that this Python still spells the old way."""
logger = logging.getLogger("factcheck")
STORAGE_DOWN: tuple[type[Exception], ...] = (
    StoreOperationalError,
    StoreInterfaceError,
    PostgresOperationalError,
    DBAPIError,
)
"""Failures to reach a service's database: answered 503 with Retry-After, never 500."""
STORAGE_DOWN_DETAIL = "the service's database cannot be reached; retry later"
CONNECTIONS_IN_USE = "the service is busy: every connection to its database is in use; retry later"
"""A read that waited the pool's whole timeout for a connection: the database is up."""


class ProblemDetails(BaseModel):
    """An RFC 9457 problem, as every error answer carries it."""

    type: str
    title: str
    status: int
    detail: str
    instance: str
    errors: list[dict[str, str]]
    current_version: int | None = None


PROBLEM_SCHEMA = ProblemDetails.model_json_schema()
RETRY_AFTER = {
    "Retry-After": {
        "description": "Seconds to wait before trying again. Absent when writes are refused "
        "until an operator acts: `/health` says why.",
        "schema": {"type": "integer"},
    }
}
CHALLENGE = {"WWW-Authenticate": {"description": "Always `Bearer`.", "schema": {"type": "string"}}}


def status_phrase(status: int) -> str:
    """The status's phrase as RFC 9110 spells it."""
    return RFC_9110_PHRASES.get(status) or HTTPStatus(status).phrase


def problem_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """These error answers as OpenAPI documents them: problem+json with the fields at fault."""
    return {
        status: {
            "description": status_phrase(status),
            "content": {PROBLEM_JSON: {"schema": PROBLEM_SCHEMA}},
            "headers": RETRY_AFTER if status == 503 else CHALLENGE if status == 401 else {},
        }
        for status in statuses
    }


class Problem(Exception):
    """An error answer: status, title, detail, and the fields at fault with their reasons."""

    def __init__(
        self,
        status: int,
        detail: str,
        *,
        errors: list[dict[str, str]] | None = None,
        headers: dict[str, str] | None = None,
        extra: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(detail)
        self.extra = extra or {}
        self.status = status
        self.title = status_phrase(status)
        """With `type` about:blank, RFC 9457 asks for the status phrase as the title."""
        self.detail = detail
        self.errors = errors or []
        self.headers = headers or {}

    def response(self, request: Request) -> JSONResponse:
        body: dict[str, Any] = {
            "type": "about:blank",
            "title": self.title,
            "status": self.status,
            "detail": self.detail,
            "instance": request.url.path,
            "errors": self.errors,
            **self.extra,
        }
        return JSONResponse(
            body, status_code=self.status, media_type=PROBLEM_JSON, headers=self.headers
        )


def invalid(errors: list[dict[str, str]]) -> Problem:
    """A 422 naming each field at fault."""
    detail = "; ".join(f"{error['field']}: {error['reason']}" for error in errors)
    return Problem(422, detail, errors=errors)


def _field_name(location: tuple[Any, ...]) -> str:
    parts = [str(part) for part in location]
    if parts and parts[0] in ("body", "query", "path", "header"):
        parts = parts[1:]
    return ".".join(parts) or "body"


def _error(item: dict[str, Any]) -> dict[str, str]:
    reason = str(item.get("msg", "is invalid")).removeprefix("Value error, ")
    return {"field": _field_name(tuple(item.get("loc", ()))), "reason": reason}


def allowed_methods(routes: Sequence[BaseRoute], request: Request) -> list[str]:
    """Every method one of `routes` takes at the request's path."""
    methods: set[str] = set()
    for route in routes:
        match, _ = route.matches(request.scope)
        if match is not Match.NONE:
            methods |= getattr(route, "methods", None) or set()
    if "GET" in methods:
        methods.add("HEAD")
    return sorted(methods)


def install_problem_handlers(app: FastAPI, routes: Sequence[BaseRoute]) -> None:
    """Answer every error from `app`, whose routes are `routes`, as problem+json."""

    @app.exception_handler(Rejected)
    async def on_rejected(request: Request, error: Rejected) -> JSONResponse:
        faults = [{"field": field, "reason": reason} for field, reason in error.faults]
        return invalid(faults).response(request)

    @app.exception_handler(NotFound)
    async def on_not_found(request: Request, error: NotFound) -> JSONResponse:
        field = f"{error.what}_id"
        reason = f"no {error.what} with id {error.identifier}"
        problem = Problem(404, f"{field}: {reason}", errors=[{"field": field, "reason": reason}])
        return problem.response(request)

    @app.exception_handler(Conflict)
    async def on_conflict(request: Request, error: Conflict) -> JSONResponse:
        extra = {} if error.current_version is None else {"current_version": error.current_version}
        if error.field is None:
            return Problem(409, str(error), extra=extra).response(request)
        fault = {"field": error.field, "reason": str(error)}
        detail = f"{error.field}: {error}"
        return Problem(409, detail, errors=[fault], extra=extra).response(request)

    @app.exception_handler(Unavailable)
    async def on_unavailable(request: Request, error: Unavailable) -> JSONResponse:
        retry = {} if error.retry_after is None else {"Retry-After": str(error.retry_after)}
        return Problem(503, str(error), headers=retry).response(request)

    @app.exception_handler(AuthError)
    async def on_auth(request: Request, error: AuthError) -> JSONResponse:
        headers = {"WWW-Authenticate": "Bearer"} if error.status == 401 else {}
        return Problem(error.status, error.detail, headers=headers).response(request)

    @app.exception_handler(RecordConflictError)
    async def on_version_conflict(request: Request, error: RecordConflictError) -> JSONResponse:
        detail = "another write changed this record at the same time; nothing was recorded"
        return Problem(409, detail).response(request)

    storage_faults = {fault: STORAGE_DOWN_DETAIL for fault in STORAGE_DOWN}
    for fault, detail in {**storage_faults, PoolTimeoutError: CONNECTIONS_IN_USE}.items():

        @app.exception_handler(fault)
        async def on_storage_fault(
            request: Request, error: Exception, detail: str = detail
        ) -> JSONResponse:
            logger.warning("%s %s: %s (%s)", request.method, request.url.path, detail, error)
            return Problem(503, detail, headers={"Retry-After": "2"}).response(request)

    @app.exception_handler(RequestValidationError)
    async def on_invalid(request: Request, error: RequestValidationError) -> JSONResponse:
        return invalid([_error(item) for item in error.errors()]).response(request)

    @app.exception_handler(StarletteHTTPException)
    async def on_http(request: Request, error: StarletteHTTPException) -> JSONResponse:
        headers = dict(error.headers or {})
        if error.status_code == 415:
            field = getattr(error, "field", "Content-Type")
            fault = {"field": field, "reason": str(error.detail)}
            detail = f"{field}: {error.detail}"
            return Problem(415, detail, errors=[fault], headers=headers).response(request)
        if error.status_code == 405:
            headers["Allow"] = ", ".join(allowed_methods(routes, request))
        return Problem(error.status_code, str(error.detail), headers=headers).response(request)

    @app.exception_handler(UnreadableEvent)
    async def on_unreadable(request: Request, error: UnreadableEvent) -> JSONResponse:
        logger.error("%s on %s %s", error, request.method, request.url.path)
        detail = f"{error}; GET /audit/verify names the first event that breaks the log"
        return Problem(500, detail).response(request)

    @app.exception_handler(MapperDeserialisationError)
    async def on_undecodable(request: Request, error: MapperDeserialisationError) -> JSONResponse:
        logger.error("%s on %s %s", error, request.method, request.url.path)
        detail = (
            "a stored event this request needs cannot be read: its row was altered; "
            "GET /audit/verify names the first event that breaks the log"
        )
        return Problem(500, detail).response(request)

    @app.exception_handler(Exception)
    async def on_unexpected(request: Request, error: Exception) -> JSONResponse:
        """Answered outside every middleware, so the request id is added here."""
        logger.exception("unexpected error on %s %s", request.method, request.url.path)
        headers = {REQUEST_ID_HEADER: getattr(request.state, "request_id", "")}
        problem = Problem(500, "the service failed to answer this request", headers=headers)
        return problem.response(request)
