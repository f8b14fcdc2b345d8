"""The route class every service's routes use: the caller is checked before the body is read,
and a body is read as strict JSON."""

import functools
import inspect
import json
from collections.abc import Callable, Coroutine
from email.message import Message
from typing import Any

from fastapi import Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.routing import APIRoute
from starlette.exceptions import HTTPException

from shared.auth import Requires
from shared.errors import Rejected
from shared.schemas import REPEATED, ClearParameters


def _unique_names(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    names = [name for name, _ in pairs]
    if len(set(names)) != len(names):
        repeated = next(name for name in names if names.count(name) > 1)
        raise Rejected(repeated, REPEATED)
    return dict(pairs)


def _no_constant(name: str) -> Any:
    raise Rejected("body", f"holds {name}, which is not JSON")


def parse_json_body(raw: bytes) -> Any:
    """A request body as JSON: UTF-8 only, no name given twice in an object, no NaN."""
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise Rejected("body", f"is not UTF-8 (byte {error.start} cannot be decoded)") from None
    try:
        return json.loads(text, object_pairs_hook=_unique_names, parse_constant=_no_constant)
    except json.JSONDecodeError as error:
        raise Rejected("body", f"is not valid JSON (error at character {error.pos})") from None
    except Rejected:
        raise
    except ValueError:
        raise Rejected("body", "holds a number with too many digits") from None
    except RecursionError:
        raise Rejected("body", "is nested too deeply") from None


def is_json(content_type: str | None) -> bool:
    """Whether a Content-Type is application/json, in UTF-8 if it names a charset; none at
    all counts as JSON."""
    if not content_type or content_type == "application/json":
        return True
    message = Message()
    message["content-type"] = content_type
    charset = message.get_param("charset")
    return message.get_content_type() == "application/json" and (
        charset is None or str(charset).lower() in ("utf-8", "utf8")
    )


class JsonBodyRequest(Request):
    """A request whose body has been parsed by `parse_json_body`."""

    parsed: Any = None

    async def json(self) -> Any:
        return self.parsed


def answered_in_event_loop(endpoint: Callable[..., Any]) -> Callable[..., Any]:
    """A plain-function endpoint as a coroutine that runs it in a worker thread.

    FastAPI then checks the answer in the event loop, not in a second worker thread. So a
    route that has returned ends its dependencies, and gives back its database connection,
    without first waiting for a free worker thread. With every worker thread waiting for a
    connection, that wait lasted until the connection pool gave up, and the reads failed.
    """
    if not inspect.isfunction(endpoint) or inspect.iscoroutinefunction(endpoint):
        return endpoint

    @functools.wraps(endpoint)
    async def in_worker_thread(**arguments: Any) -> Any:
        return await run_in_threadpool(endpoint, **arguments)

    return in_worker_thread


class CheckedRoute(APIRoute):
    """Checks the caller's key and role first, then the names of the query parameters and
    headers, then the body's media type and JSON, and only then the parameters' and the body's
    fields."""

    def __init__(self, path: str, endpoint: Callable[..., Any], **options: Any) -> None:
        super().__init__(path, answered_in_event_loop(endpoint), **options)

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handle = super().get_route_handler()
        permissions = [
            dependency.call
            for dependency in self.dependant.dependencies
            if isinstance(dependency.call, Requires)
        ]
        parameters = ClearParameters(self.dependant)
        takes_body = self.body_field is not None

        async def checked(request: Request) -> Response:
            for permission in permissions:
                permission.check(request)
            parameters.check(request)
            if takes_body:
                request = await _json_body(request)
            return await handle(request)

        return checked


async def _json_body(request: Request) -> Request:
    body = JsonBodyRequest(request.scope, request.receive)
    raw = await body.body()
    if raw:
        if not is_json(body.headers.get("content-type")):
            raise HTTPException(415, "must be application/json, in UTF-8")
        body.parsed = parse_json_body(raw)
    return body
