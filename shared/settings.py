"""Settings of both services, read from the environment in one place."""

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Self
from urllib.parse import urlsplit

from shared.auth import Gate, parse_keys
from shared.feed import FEED_MAX_LIMIT, FEED_MAX_WAIT_SECONDS
from shared.schemas import http_url_fault
from shared.storage import Storage, parse_storage_url, redacted

DEFAULT_SOURCES_DATABASE_URL = "sqlite:///var/sources.db"
DEFAULT_CLAIMS_DATABASE_URL = "sqlite:///var/claims.db"
DEFAULT_SOURCES_URL = "http://127.0.0.1:8001"
DEFAULT_CLAIMS_URL = "http://127.0.0.1:8000"


MAX_SECONDS = 600.0
"""The longest any wait or timeout setting may be."""


class SettingError(RuntimeError):
    """A setting with a value that cannot be used; the message names the setting."""


def _seconds_setting(
    environ: Mapping[str, str], name: str, default: float, high: float = MAX_SECONDS
) -> float:
    raw = environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        raise SettingError(f"{name}={raw!r}: expected a number of seconds") from None
    if not 0 < value <= high:
        raise SettingError(f"{name}={raw!r}: must be more than 0 and at most {high:g} seconds")
    return value


def _int_setting(environ: Mapping[str, str], name: str, default: int, high: int) -> int:
    raw = environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise SettingError(f"{name}={raw!r}: expected a whole number") from None
    if not 1 <= value <= high:
        raise SettingError(f"{name}={raw!r}: must be between 1 and {high}")
    return value


def _optional_url_setting(environ: Mapping[str, str], name: str) -> str | None:
    if not environ.get(name, "").strip():
        return None
    return _url_setting(environ, name, "")


def _url_setting(environ: Mapping[str, str], name: str, default: str) -> str:
    return service_url(name, environ.get(name, "").strip() or default)


def service_url(name: str, value: str) -> str:
    """The base URL `value` of setting `name`, checked: http or https, a host, a port if any
    from 1 to 65535, and no query, fragment, space, user or password."""

    def fail(reason: str) -> SettingError:
        return SettingError(f"{name}={redacted(value)!r}: {reason}")

    fault = http_url_fault(value)
    if fault is not None:
        raise fail(fault)
    url = urlsplit(value)
    if url.query or url.fragment or value.endswith(("?", "#")):
        raise fail("a base URL takes no query or fragment")
    return value.rstrip("/")


def _flag_setting(environ: Mapping[str, str], name: str, default: bool) -> bool:
    raw = environ.get(name, "").strip().lower()
    if not raw:
        return default
    if raw in ("1", "true", "yes", "on"):
        return True
    if raw in ("0", "false", "no", "off"):
        return False
    raise SettingError(f"{name}={raw!r}: expected true or false")


@dataclass(frozen=True)
class Access:
    """Who may call a service: API key digests, and whether reads need a key."""

    api_keys: str = ""
    api_keys_file: str | None = None
    public_reads: bool = True

    def gate(self) -> Gate:
        try:
            return Gate(parse_keys(self.api_keys, self.api_keys_file), self.public_reads)
        except (OSError, ValueError) as error:
            setting = "FACTCHECK_API_KEYS_FILE" if self.api_keys_file else "FACTCHECK_API_KEYS"
            raise SettingError(f"{setting}: {error}") from None

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> "Access":
        return cls(
            api_keys=environ.get("FACTCHECK_API_KEYS", ""),
            api_keys_file=environ.get("FACTCHECK_API_KEYS_FILE", "").strip() or None,
            public_reads=_flag_setting(environ, "FACTCHECK_PUBLIC_READS", True),
        )


@dataclass(frozen=True)
class SourcesSettings:
    """Settings of the sources service."""

    database_url: str = DEFAULT_SOURCES_DATABASE_URL
    claims_url: str = DEFAULT_CLAIMS_URL
    claims_timeout: float = 3.0
    claims_api_key: str | None = None
    access: Access = Access()

    @property
    def storage(self) -> Storage:
        return parse_storage_url("SOURCES_DATABASE_URL", self.database_url)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] = os.environ) -> Self:
        return cls(
            database_url=environ.get("SOURCES_DATABASE_URL", "").strip()
            or DEFAULT_SOURCES_DATABASE_URL,
            claims_url=_url_setting(environ, "CLAIMS_URL", DEFAULT_CLAIMS_URL),
            claims_timeout=_seconds_setting(environ, "CLAIMS_TIMEOUT", 3.0),
            claims_api_key=environ.get("CLAIMS_API_KEY", "").strip() or None,
            access=Access.from_env(environ),
        )


@dataclass(frozen=True)
class ClaimsSettings:
    """Settings of the claims service."""

    database_url: str = DEFAULT_CLAIMS_DATABASE_URL
    sources_url: str = DEFAULT_SOURCES_URL
    follow: bool = True
    follower_wait: float = 1.0
    follower_page_size: int = FEED_MAX_LIMIT
    follower_linger: float = 0.2
    read_wait: float = 5.0
    publisher: str = "factcheck"
    public_url: str | None = None
    sources_api_key: str | None = None
    access: Access = Access()

    @property
    def storage(self) -> Storage:
        return parse_storage_url("CLAIMS_DATABASE_URL", self.database_url)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] = os.environ) -> Self:
        return cls(
            database_url=environ.get("CLAIMS_DATABASE_URL", "").strip()
            or DEFAULT_CLAIMS_DATABASE_URL,
            sources_url=_url_setting(environ, "SOURCES_URL", DEFAULT_SOURCES_URL),
            follower_wait=_seconds_setting(
                environ, "FOLLOWER_WAIT", 1.0, high=FEED_MAX_WAIT_SECONDS
            ),
            follower_page_size=_int_setting(
                environ, "FOLLOWER_PAGE_SIZE", FEED_MAX_LIMIT, FEED_MAX_LIMIT
            ),
            follower_linger=_seconds_setting(environ, "FOLLOWER_LINGER", 0.2),
            read_wait=_seconds_setting(environ, "READ_WAIT", 5.0),
            publisher=environ.get("FACTCHECK_PUBLISHER", "").strip() or "factcheck",
            public_url=_optional_url_setting(environ, "FACTCHECK_PUBLIC_URL"),
            sources_api_key=environ.get("SOURCES_API_KEY", "").strip() or None,
            access=Access.from_env(environ),
        )
