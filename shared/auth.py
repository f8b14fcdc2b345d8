"""API keys and roles. Only SHA-256 digests of keys are configured or kept; never a key itself.

Keys come from `FACTCHECK_API_KEYS` (`name:role:sha256hex`, comma-separated) and/or the JSON file
named by `FACTCHECK_API_KEYS_FILE` (`[{"name", "role", "sha256"}]`). With no key configured, the
service is open and every caller is `anonymous`.
"""

import hashlib
import hmac
import json
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, get_args

from fastapi import Request
from fastapi.openapi.models import HTTPBearer as BearerScheme
from fastapi.security.base import SecurityBase

Role = Literal["submitter", "editor", "auditor", "admin"]
Permission = Literal["read", "submit", "edit", "audit", "admin"]
ROLES: tuple[str, ...] = get_args(Role)
GRANTS: Mapping[str, frozenset[str]] = {
    "submitter": frozenset({"read", "submit"}),
    "editor": frozenset({"read", "submit", "edit"}),
    "auditor": frozenset({"read", "audit"}),
    "admin": frozenset({"read", "submit", "edit", "audit", "admin"}),
}
OPEN_PATHS = frozenset({"/health"})
"""Paths any caller may read, with a key or without."""


class AuthError(Exception):
    """401 (no valid key) or 403 (a valid key without the permission)."""

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail


@dataclass(frozen=True)
class ApiKey:
    name: str
    role: str
    digest: str


def digest(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def new_key() -> str:
    """A fresh random API key."""
    return "fck_" + secrets.token_urlsafe(24)


def key_name_fault(name: str) -> str | None:
    """Why `name` cannot be given to `factcheck new-key`, if it cannot: the holder's name is
    recorded as the actor, and its entry is `name:role:sha256`, entries split by commas."""
    if name.strip() and any(character in name for character in ":,"):
        return f"{name!r}: a key holder's name takes no ':' or ','"
    return _holder_name_fault(name)


def _holder_name_fault(name: str) -> str | None:
    """Why `name` cannot name a key's holder in any entry, if it cannot."""
    if not name.strip():
        return "a key's holder needs a name"
    if name != name.strip() or not name.isprintable():
        return f"{name!r}: a key holder's name takes no space at either end and only printable text"
    return None


def parse_keys(inline: str, file: str | None) -> tuple[ApiKey, ...]:
    """The configured keys; raises ValueError naming what is wrong."""
    entries: list[dict[str, str]] = []
    for number, chunk in enumerate(inline.split(","), start=1):
        part = chunk.strip()
        if not part:
            continue
        if part.count(":") != 2:
            raise ValueError(f"entry {number}: expected name:role:sha256, entries split by ','")
        name, role, hexdigest = part.split(":")
        entries.append({"name": name, "role": role, "sha256": hexdigest})
    if file:
        listed = json.loads(Path(file).read_text(encoding="utf-8"))
        if not isinstance(listed, list) or not all(
            isinstance(entry, dict)
            and all(isinstance(entry.get(field, ""), str) for field in ("name", "role", "sha256"))
            for entry in listed
        ):
            raise ValueError(
                "expected a JSON list of objects whose name, role and sha256 are strings"
            )
        entries.extend(listed)
    keys: list[ApiKey] = []
    for entry in entries:
        name, role, hexdigest = (
            entry.get("name", ""),
            entry.get("role", ""),
            entry.get("sha256", "").lower(),
        )
        fault = _holder_name_fault(name)
        if fault is not None:
            raise ValueError(fault)
        if role not in ROLES:
            raise ValueError(f"key {name!r}: role must be one of {', '.join(ROLES)}")
        if len(hexdigest) != 64 or any(c not in "0123456789abcdef" for c in hexdigest):
            raise ValueError(f"key {name!r}: expected the key's SHA-256 as 64 hex digits")
        keys.append(ApiKey(name, role, hexdigest))
    return _distinct(keys)


def _distinct(keys: list[ApiKey]) -> tuple[ApiKey, ...]:
    """Each key once; refuse keys that would make the recorded actor ambiguous: each holder's
    name is recorded as the actor, so one name has one role, and one key one holder."""
    roles: dict[str, str] = {}
    holders: dict[str, ApiKey] = {}
    for key in keys:
        if roles.setdefault(key.name, key.role) != key.role:
            raise ValueError(
                f"key {key.name!r} is given two roles, {roles[key.name]} and {key.role}: the"
                " name is recorded as the actor, so one name has one role"
            )
        if holders.setdefault(key.digest, key) != key:
            raise ValueError(
                f"key {key.name!r}: the same key is listed for {holders[key.digest].name!r} too"
            )
    return tuple(holders.values())


class Gate:
    """Decides who the caller is and what they may do."""

    def __init__(self, keys: tuple[ApiKey, ...], public_reads: bool) -> None:
        self.keys = keys
        self.public_reads = public_reads

    def caller(self, request: Request) -> ApiKey | None:
        given = request.headers.getlist("authorization")
        if len(given) > 1:
            raise AuthError(401, "send one Authorization header, not several")
        header = given[0] if given else ""
        scheme, _, token = header.partition(" ")
        if not header:
            return None
        if scheme.lower() != "bearer" or not token.strip():
            raise AuthError(401, "send the API key as 'Authorization: Bearer <key>'")
        presented = digest(token.strip())
        for key in self.keys:
            if hmac.compare_digest(key.digest, presented):
                return key
        raise AuthError(401, "the API key is not known")

    def check(self, request: Request, permission: str) -> None:
        if permission == "read" and request.scope["path"] in OPEN_PATHS:
            return
        if not self.keys:
            request.state.actor = "anonymous"
            return
        caller = self.caller(request)
        if caller is None:
            if permission == "read" and self.public_reads:
                request.state.actor = "anonymous"
                return
            raise AuthError(401, "this needs an API key: 'Authorization: Bearer <key>'")
        if permission not in GRANTS[caller.role]:
            raise AuthError(403, f"the key {caller.name!r} ({caller.role}) may not {permission}")
        request.state.actor = caller.name


class Requires(SecurityBase):
    """A route dependency admitting callers whose role grants `permission`; OpenAPI documents
    it as the bearer scheme `apiKey`, so the interactive docs can send a key."""

    model = BearerScheme(
        description="An API key, sent as 'Authorization: Bearer <key>'. What a key's role may do: "
        + "; ".join(f"{role}: {', '.join(sorted(GRANTS[role]))}" for role in ROLES)
        + "."
    )
    scheme_name = "apiKey"

    def __init__(self, permission: Permission) -> None:
        self.permission = permission

    def check(self, request: Request) -> None:
        request.app.state.gate.check(request, self.permission)

    async def __call__(self, request: Request) -> None:
        self.check(request)
