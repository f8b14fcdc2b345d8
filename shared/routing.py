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

from shared.auth import OPEN_PATHS, Requires
from shared.errors import Checks, Rejected
from shared.idempotency import HEADER as IDEMPOTENCY_KEY
from shared.problems import problem_responses
from shared.schemas import REPEATED, REQUEST_ID_HEADER, ClearParameters, parameter_names

REQUEST_ID = {
    REQUEST_ID_HEADER: {
        "description": "The request's own X-Request-ID if it sent one (up to 200 printable "
        "characters), else an id the service made; the service's log names it too.",
        "schema": {"type": "string"},
    }
}


class _RepeatedName(dict[str, Any]):
    """A JSON object that gave `repeated` more than once."""

    def __init__(self, pairs: list[tuple[str, Any]], repeated: str) -> None:
        super().__init__(pairs)
        self.repeated = repeated


def _repeated_field(value: Any, path: tuple[str, ...] = ()) -> str | None:
    """A name given twice in one object, as its field's path (`changes.strength`): in the
    outermost object that repeats one, the first such in document order."""
    if isinstance(value, _RepeatedName):
        return ".".join((*path, value.repeated))
    children: Any = ()
    if isinstance(value, dict):
        children = value.items()
    elif isinstance(value, list):
        children = enumerate(value)
    for key, child in children:
        found = _repeated_field(child, (*path, str(key)))
        if found is not None:
            return found
    return None


def _no_constant(name: str) -> Any:
    raise Rejected("body", f"holds {name}, which is not JSON")


def parse_json_body(raw: bytes) -> Any:
    """A request body as JSON: UTF-8 only, no name given twice in an object, no NaN."""
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise Rejected("body", f"is not UTF-8 (byte {error.start} cannot be decoded)") from None
    repeated: list[str] = []

    def pairs_of_object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        names = [name for name, _ in pairs]
        if len(set(names)) == len(names):
            return dict(pairs)
        repeated.append(next(name for name in names if names.count(name) > 1))
        return _RepeatedName(pairs, repeated[-1])

    try:
        parsed = json.loads(text, object_pairs_hook=pairs_of_object, parse_constant=_no_constant)
    except json.JSONDecodeError as error:
        raise Rejected("body", f"is not valid JSON (error at character {error.pos})") from None
    except Rejected:
        raise
    except ValueError:
        raise Rejected("body", "holds a number with too many digits") from None
    except RecursionError:
        raise Rejected("body", "is nested too deeply") from None
    if repeated:
        try:
            field = _repeated_field(parsed) or repeated[0]
        except RecursionError:
            field = repeated[0]
        raise Rejected(field, REPEATED)
    return parsed


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
        documented = {self.status_code or 200: {}, **problem_responses(*self.error_statuses())}
        for status, response in self.responses.items():
            documented[status] = {**documented.get(status, {}), **response}
        for response in documented.values():
            response["headers"] = {**response.get("headers", {}), **REQUEST_ID}
        self.responses = documented
        if self.path in OPEN_PATHS:
            self.openapi_extra = {**(self.openapi_extra or {}), "security": [{}]}

    def permissions(self) -> list[Requires]:
        """The permissions a caller needs here, each checked before anything else."""
        return [
            dependency.call
            for dependency in self.dependant.dependencies
            if isinstance(dependency.call, Requires)
        ]

    def error_statuses(self) -> list[int]:
        """The error statuses this route can answer with, for its OpenAPI operation: 413, 422
        and 503 for every route, since any request's body is measured first, each route checks
        its query, and each needs its database."""
        needed = {permission.permission for permission in self.permissions()}
        statuses = {413, 422, 503}
        if needed and self.path not in OPEN_PATHS:
            statuses.add(401)
        if needed - {"read"}:
            statuses.add(403)
        if self.param_convertors:
            statuses.add(404)
        if "if-match" in {
            name.lower() for name in parameter_names(self.dependant, "header_params")
        }:
            statuses.add(409)
        if self.body_field is not None:
            statuses.add(415)
        return sorted(statuses)

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handle = super().get_route_handler()
        permissions = self.permissions()
        parameters = ClearParameters(self.dependant)
        takes_body = self.body_field is not None
        records = IDEMPOTENCY_KEY.lower() in {name.lower() for name in parameters.headers}
        takes_nothing = "POST" in self.methods and not (takes_body or records)

        async def checked(request: Request) -> Response:
            for permission in permissions:
                permission.check(request)
            parameters.check(request)
            if takes_body:
                request = await _json_body(request)
            elif takes_nothing:
                await _nothing_sent(request)
            return await handle(request)

        return checked


async def _nothing_sent(request: Request) -> None:
    """Refuse a body or an idempotency key sent to a POST that reads neither, such as a rebuild,
    rather than pass over it in silence."""
    checks = Checks()
    if await request.body():
        checks.reject("body", "this endpoint takes no body")
    if IDEMPOTENCY_KEY in request.headers:
        checks.reject(
            IDEMPOTENCY_KEY,
            "is not taken here: this endpoint records no event, so asking again runs it again",
        )
    checks.done()


class UnsupportedEncoding(HTTPException):
    """415 for a body sent in a content coding the service does not decode."""

    field = "Content-Encoding"

    def __init__(self) -> None:
        super().__init__(
            415, "is not taken: send the body unencoded", headers={"Accept-Encoding": "identity"}
        )


async def _json_body(request: Request) -> Request:
    body = JsonBodyRequest(request.scope, request.receive)
    raw = await body.body()
    if raw:
        if len(body.headers.getlist("content-type")) > 1:
            raise Rejected("Content-Type", REPEATED)
        if body.headers.get("content-encoding", "identity").strip().lower() != "identity":
            raise UnsupportedEncoding()
        if not is_json(body.headers.get("content-type")):
            raise HTTPException(415, "must be application/json, in UTF-8")
        body.parsed = parse_json_body(raw)
    return body
