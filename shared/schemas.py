"""Request and response building blocks shared by both services' HTTP schemas."""

import ipaddress
import re
from collections.abc import Hashable, Mapping
from typing import Annotated, Any, Literal, TypeVar
from urllib.parse import urlsplit
from uuid import UUID, uuid4

import idna
from annotated_types import Interval
from fastapi import Header, Query, Request
from fastapi.dependencies.models import Dependant
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
    WithJsonSchema,
)
from starlette.datastructures import Headers, MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from shared.errors import Checks
from shared.feed import POSITION_MAX
from shared.storage import url_port
from shared.timeaxes import UtcDatetime

REQUEST_ID_HEADER = "X-Request-ID"


FORBIDDEN_CONTROL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")
"""Unicode's control characters (C0, DEL and C1), except tab, line feed and carriage return."""


def _printable(value: str) -> str:
    bad = FORBIDDEN_CONTROL.search(value)
    if bad is not None:
        raise ValueError(f"must not contain the control character U+{ord(bad.group()):04X}")
    return value


def _not_blank(value: str) -> str:
    if not any(character.isprintable() and not character.isspace() for character in value):
        raise ValueError("must not be blank")
    return _printable(value)


def http_url_fault(value: str) -> str | None:
    """Why `value` is not an http or https URL with a host, a port if any from 1 to 65535, and
    no user, password, backslash, space or control character, if it is not."""
    try:
        parts = urlsplit(value)
        url_port(parts)
    except ValueError as error:
        return f"is not a valid URL ({error})"
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        return "expected an http:// or https:// URL with a host"
    if any(character.isspace() for character in value) or FORBIDDEN_CONTROL.search(value):
        return "holds a space or a control character"
    if "@" in parts.netloc or "\\" in value:
        return "takes no user or password, nor a backslash"
    if parts.netloc.startswith("[") and not re.fullmatch(r"\[[^\]]+\](:\d*)?", parts.netloc):
        return "is not a valid URL: only a port may follow an IPv6 address"
    return _host_fault(parts.hostname, bracketed=parts.netloc.startswith("["))


def _host_fault(host: str, bracketed: bool) -> str | None:
    """Why `host` is neither an IP address nor a name made of labels, if it is not."""
    if bracketed:
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            return f"has {host!r} in brackets, which is not an IPv6 address"
        return None
    labels = host.removesuffix(".").split(".")
    if labels[-1].isascii() and labels[-1].isdigit():
        try:
            ipaddress.IPv4Address(host.removesuffix("."))
        except ValueError:
            return f"has the host {host!r}: ending in a number, it must be an IPv4 address"
        return None
    encoded = [_dns_label(label) for label in labels]
    if None in encoded or len(".".join(label or "" for label in encoded)) > 253:
        return (
            f"has the host {host!r}: a host name is up to 253 characters, in labels of 1 to 63"
            " letters, digits, hyphens and underscores joined by dots, none starting or ending"
            " with a hyphen, or internationalised labels that IDNA 2008 takes"
        )
    return None


def _dns_label(label: str) -> str | None:
    """The label as DNS carries it, if it is one: ASCII letters, digits, hyphens and
    underscores, or an internationalised label, checked and encoded (xn--) as httpx does."""
    if label.isascii() and not label.lower().startswith("xn--"):
        plain = (
            0 < len(label) <= 63
            and all(character.isalnum() or character in "-_" for character in label)
            and not label.startswith("-")
            and not label.endswith("-")
        )
        return label if plain else None
    try:
        if label.isascii():
            idna.decode(label)
            return label
        return idna.encode(label.lower()).decode("ascii")
    except (UnicodeError, ValueError):
        return None


def _http_url(value: str) -> str:
    fault = http_url_fault(value)
    if fault is not None:
        raise ValueError(fault)
    return value


Member = TypeVar("Member", bound=Hashable)


def distinct(values: list[Member]) -> list[Member]:
    """A list given as a set: each value once, in the order first given."""
    return list(dict.fromkeys(values))


Line = Annotated[str, StringConstraints(min_length=1, max_length=200), AfterValidator(_not_blank)]
"""A required, non-blank short string: a name, a kind, a rater."""
Paragraph = Annotated[
    str, StringConstraints(min_length=1, max_length=4000), AfterValidator(_not_blank)
]
"""A required, non-blank text of at most 4,000 characters: a summary, a rationale, a reason."""

Url = Annotated[
    str,
    StringConstraints(max_length=2048),
    AfterValidator(_http_url),
    Field(json_schema_extra={"format": "iri", "pattern": "^[Hh][Tt][Tt][Pp][Ss]?://[^/]"}),
]
CountryCode = Annotated[str, StringConstraints(pattern=r"^[A-Z]{2}$")]


DIGITS = re.compile("[0-9]+", re.ASCII)
"""How a count or a position is written, in a query or on the command line."""


def _in_digits(value: object) -> object:
    if isinstance(value, str) and not DIGITS.fullmatch(value):
        raise ValueError("must be a whole number in digits alone, such as 10")
    return value


def _decimal(value: object) -> object:
    if isinstance(value, str) and not re.fullmatch(
        r"[0-9]+(\.[0-9]+)?([eE][-+]?[0-9]+)?", value, re.ASCII
    ):
        raise ValueError("must be a number in digits, such as 2, 0.5 or 1e-05")
    return value


def whole_number(least: int, most: int) -> Any:
    """A count or a position in a query, from `least` to `most`, in digits alone: what Python
    would also read as a number (1_0, +5, " 5", 1.0) is refused, not taken for a value."""
    return Annotated[int, Interval(ge=least, le=most), BeforeValidator(_in_digits)]


def decimal(least: float, most: float) -> Any:
    """A number of seconds in a query, from `least` to `most`: digits, a decimal point and an
    exponent if any, as JSON writes a number."""
    return Annotated[float, Interval(ge=least, le=most), BeforeValidator(_decimal)]


PAGE_MAX = 1000
"""The most items a listing's page holds."""
PageLimit = Annotated[
    whole_number(1, PAGE_MAX), Query(description=f"At most {PAGE_MAX} items a page.")
]
AfterQuery = Annotated[
    whole_number(0, POSITION_MAX),
    Query(description="Return what comes after this feed position."),
]
UntilQuery = Annotated[
    whole_number(0, POSITION_MAX) | None, Query(description="Up to this feed position.")
]
MinPositionQuery = Annotated[
    whole_number(0, POSITION_MAX) | None,
    Query(description="A sources-feed position the answer must include."),
]


class Strict(BaseModel):
    """A request body: unknown fields are rejected, so a typo never passes silently."""

    model_config = ConfigDict(extra="forbid")


class Written(BaseModel):
    """What every write answers besides its own fields."""

    id: UUID
    version: int = Field(description="The aggregate's version after this write.")
    position: int = Field(description="The write's position in this service's feed.")
    recorded_at: UtcDatetime = Field(description="Transaction time of the write.")


CREATED: dict[int | str, dict[str, Any]] = {
    201: {
        "description": "Created",
        "headers": {
            "Location": {
                "description": "The path of what was created.",
                "schema": {"type": "string"},
            }
        },
    }
}
"""A write that creates a resource, as OpenAPI documents it: `Location` names its path."""


class RebuildAnswer(BaseModel):
    """What both services' `POST /admin/rebuild` answers besides their own counts."""

    position: int = Field(description="The feed position the rebuilt read models hold.")
    verify_seconds: float = Field(
        description="Seconds spent verifying the event logs, before anything was dropped."
    )
    rebuild_seconds: float = Field(
        description=(
            "Seconds spent rebuilding: waiting for reads in progress to end, then refilling "
            "the read models while their reads answered 503. The claims service rebuilds in "
            "two steps and gives their sum."
        )
    )


REPEATED = "is given more than once"


def parameter_names(
    dependant: Dependant, kind: Literal["query_params", "header_params"]
) -> set[str]:
    """The names of a route's parameters of one kind, its dependencies' included."""
    names = {param.alias for param in getattr(dependant, kind)}
    for dependency in dependant.dependencies:
        names |= parameter_names(dependency, kind)
    return names


class ClearParameters:
    """Refuses query parameters a route does not take, so that a misspelt one never passes, and
    any query parameter or header of the route given twice, which would leave unclear which
    one counts."""

    def __init__(self, dependant: Dependant) -> None:
        self.query = parameter_names(dependant, "query_params")
        self.headers = sorted(parameter_names(dependant, "header_params"))

    def check(self, request: Request) -> None:
        """Rejected, naming every such parameter, if there is one."""
        checks = Checks()
        if request.scope.get("query_string"):
            for name in sorted(set(request.query_params) - self.query):
                checks.reject(name, "is not a parameter of this endpoint")
            names = [name for name, _ in request.query_params.multi_items()]
            for name in sorted({name for name in names if names.count(name) > 1}):
                checks.reject(name, REPEATED)
        for header in self.headers:
            if len(request.headers.getlist(header)) > 1:
                checks.reject(header, REPEATED)
        checks.done()


VERSION_TAG = re.compile(r'([1-9][0-9]{0,17})|"([1-9][0-9]{0,17})"', re.ASCII)


def _expected_version(value: str | None) -> int | None:
    """The version an If-Match header names: `3` or the entity tag `"3"`; `*` names none."""
    if value is None or value.strip() == "*":
        return None
    text = value.strip()
    if text.startswith("W/"):
        raise ValueError("takes a strong tag; a weak one (W/) never matches")
    tag = VERSION_TAG.fullmatch(text)
    if tag is None:
        raise ValueError('must be the version to update, such as 3 or "3", or *')
    return int(tag.group(1) or tag.group(2))


ExpectedVersion = Annotated[
    int | None,
    Header(
        alias="If-Match",
        description='The aggregate version this update expects (3 or "3"); a stale one answers '
        "409. `*` or no header: any version.",
    ),
    BeforeValidator(_expected_version),
    WithJsonSchema({"type": "string", "examples": ['"3"']}),
]


def request_metadata(request: Request) -> Mapping[str, str]:
    """Who and why, for the events this request records."""
    actor = getattr(request.state, "actor", "anonymous")
    return {"actor": actor, "request_id": request.state.request_id}


def header_text(header: str) -> str:
    """A header's value read as UTF-8 (HTTP hands it over as Latin-1), printable characters only;
    ValueError if it is not."""
    try:
        text = header.encode("latin-1").decode("utf-8")
    except UnicodeError:
        raise ValueError("is not UTF-8") from None
    if not text.isprintable():
        raise ValueError("holds characters that are not printable")
    return text


def _given_id(header: str) -> str | None:
    """The client's X-Request-ID read as UTF-8, if it is at most 200 printable characters."""
    try:
        text = header_text(header)
    except ValueError:
        return None
    return text if 0 < len(text) <= 200 else None


class RequestIds:
    """Take X-Request-ID from the request if it is sent once and readable, or make one, and
    echo it on the response."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        sent = Headers(scope=scope).getlist(REQUEST_ID_HEADER)
        header = sent[0] if len(sent) == 1 else ""
        given = _given_id(header)
        request_id = given or str(uuid4())
        scope.setdefault("state", {})["request_id"] = request_id
        echoed = header if given else request_id

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                MutableHeaders(scope=message)[REQUEST_ID_HEADER] = echoed
            await send(message)

        await self.app(scope, receive, send_with_id)
