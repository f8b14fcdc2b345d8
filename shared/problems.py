"""RFC 9457 problem details: every error either service answers is application/problem+json."""

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from shared.errors import Conflict, NotFound, Rejected, Unavailable

PROBLEM_JSON = "application/problem+json"
logger = logging.getLogger("factcheck")


class Problem(Exception):
    """An error answer: status, title, and the fields at fault with their reasons."""

    def __init__(
        self,
        status: int,
        title: str,
        detail: str,
        *,
        errors: list[dict[str, str]] | None = None,
        headers: dict[str, str] | None = None,
        **extra: Any,
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.title = title
        self.detail = detail
        self.errors = errors or []
        self.headers = headers or {}
        self.extra = extra

    def response(self, request: Request) -> JSONResponse:
        body: dict[str, Any] = {
            "type": "about:blank",
            "title": self.title,
            "status": self.status,
            "detail": self.detail,
            "instance": request.url.path,
        }
        if self.errors:
            body["errors"] = self.errors
        body.update(self.extra)
        return JSONResponse(
            body, status_code=self.status, media_type=PROBLEM_JSON, headers=self.headers
        )


def invalid(field: str, reason: str) -> Problem:
    """A 422 naming one field."""
    return Problem(
        422, "Invalid input", f"{field}: {reason}", errors=[{"field": field, "reason": reason}]
    )


def not_found(what: str, identifier: object) -> Problem:
    """A 404 for an unknown id in the path."""
    return Problem(404, "Not found", f"no {what} with id {identifier}")


def conflict(detail: str, **extra: Any) -> Problem:
    """A 409: the request does not fit the current state."""
    return Problem(409, "Conflict", detail, **extra)


def unavailable(detail: str, retry_after: int = 1) -> Problem:
    """A 503 with Retry-After."""
    return Problem(503, "Service unavailable", detail, headers={"Retry-After": str(retry_after)})


def _field_name(location: tuple[Any, ...]) -> str:
    parts = [str(part) for part in location]
    if parts and parts[0] in ("body", "query", "path", "header"):
        parts = parts[1:]
    return ".".join(parts) or "body"


def _reason(error: dict[str, Any]) -> str:
    message = str(error.get("msg", "is invalid"))
    return message.removeprefix("Value error, ")


def install_problem_handlers(app: FastAPI) -> None:
    """Answer every error from `app` as problem+json."""

    @app.exception_handler(Problem)
    async def on_problem(request: Request, problem: Problem) -> JSONResponse:
        return problem.response(request)

    @app.exception_handler(Rejected)
    async def on_rejected(request: Request, error: Rejected) -> JSONResponse:
        return invalid(error.field, error.reason).response(request)

    @app.exception_handler(NotFound)
    async def on_not_found(request: Request, error: NotFound) -> JSONResponse:
        return not_found(error.what, error.identifier).response(request)

    @app.exception_handler(Conflict)
    async def on_conflict(request: Request, error: Conflict) -> JSONResponse:
        return conflict(str(error)).response(request)

    @app.exception_handler(Unavailable)
    async def on_unavailable(request: Request, error: Unavailable) -> JSONResponse:
        return unavailable(str(error)).response(request)

    @app.exception_handler(RequestValidationError)
    async def on_invalid(request: Request, error: RequestValidationError) -> JSONResponse:
        errors = [
            {"field": _field_name(tuple(item.get("loc", ()))), "reason": _reason(item)}
            for item in error.errors()
        ]
        detail = "; ".join(f"{item['field']}: {item['reason']}" for item in errors)
        return Problem(422, "Invalid input", detail, errors=errors).response(request)

    @app.exception_handler(StarletteHTTPException)
    async def on_http(request: Request, error: StarletteHTTPException) -> JSONResponse:
        headers = dict(error.headers or {})
        return Problem(
            error.status_code, str(error.detail), str(error.detail), headers=headers
        ).response(request)

    @app.exception_handler(Exception)
    async def on_unexpected(request: Request, error: Exception) -> JSONResponse:
        logger.exception("unexpected error on %s %s", request.method, request.url.path)
        return Problem(500, "Internal error", "the service failed to answer this request").response(
            request
        )
