"""A small HTTP client for both services, as the command line and the scenario loader use them."""

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx

from shared.settings import DEFAULT_CLAIMS_URL, DEFAULT_SOURCES_URL


class ServiceError(RuntimeError):
    """A service answered with an error (its problem detail is the message) or not at all."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status
        """The answer's status, if there was an answer."""


class FactcheckClient:
    """Talks to the claims and sources services over HTTP."""

    def __init__(
        self,
        claims_url: str = DEFAULT_CLAIMS_URL,
        sources_url: str = DEFAULT_SOURCES_URL,
        timeout: float = 30.0,
        api_key: str | None = None,
    ) -> None:
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self.claims = httpx.Client(base_url=claims_url, timeout=timeout, headers=headers)
        self.sources = httpx.Client(base_url=sources_url, timeout=timeout, headers=headers)

    def close(self) -> None:
        self.claims.close()
        self.sources.close()

    def wait_until_up(self, timeout: float = 60.0) -> None:
        """Block until both services answer /health."""
        deadline = time.monotonic() + timeout
        for client in (self.claims, self.sources):
            while True:
                try:
                    client.get("/health").raise_for_status()
                    break
                except httpx.HTTPError as error:
                    if time.monotonic() > deadline:
                        raise ServiceError(f"{client.base_url} did not come up: {error}") from None
                    time.sleep(0.2)

    def check_services(self, *names: str) -> dict[str, dict[str, Any]]:
        """Each named service's `/health` (both, if none is named); ServiceError unless each
        URL answers as the service it is given for."""
        healths = {}
        for name, client in (("claims", self.claims), ("sources", self.sources)):
            if names and name not in names:
                continue
            health = self.call(client, "GET", "/health")
            found = health.get("service") if isinstance(health, dict) else None
            if found != name:
                raise ServiceError(
                    f"{client.base_url} is the {found or 'unknown'} service, not the {name} "
                    f"service; check the {name} URL"
                )
            healths[name] = health
        return healths

    def call(self, client: httpx.Client, method: str, path: str, **kwargs: Any) -> Any:
        try:
            response = client.request(method, path, **kwargs)
        except httpx.HTTPError as error:
            raise ServiceError(f"{_url(client, path)}: {error}") from None
        if response.is_error:
            raise ServiceError(
                f"{method} {_url(client, path)}: {response.status_code} {_detail(response)}",
                response.status_code,
            )
        try:
            return response.json()
        except ValueError:
            kind = response.headers.get("content-type", "no content type")
            raise ServiceError(
                f"{method} {_url(client, path)}: {response.status_code} answered with {kind}, "
                "not JSON; "
                "is this a factcheck service?"
            ) from None

    def pages(self, client: httpx.Client, path: str, **params: Any) -> Iterator[dict[str, Any]]:
        """Every item of a paged listing (`items`, `next_after`)."""
        after = 0
        while True:
            page = self.call(client, "GET", path, params={**params, "after": after, "limit": 1000})
            yield from page["items"]
            if not page["items"]:
                return
            if page["next_after"] <= after:
                raise ServiceError(f"{_url(client, path)} did not page past position {after}")
            after = page["next_after"]

    def claims_list(self) -> Iterator[dict[str, Any]]:
        return self.pages(self.claims, "/claims")

    def sources_list(self) -> list[dict[str, Any]]:
        return self.call(self.sources, "GET", "/sources")

    def evidence_for(self, claim_id: str) -> Iterator[dict[str, Any]]:
        return self.pages(self.sources, "/evidence", claim_id=claim_id)

    def evidence_labels(self, claim_id: str) -> dict[str, str]:
        """Each of the claim's evidence ids to a short label: the id's first eight characters
        and its source's name, as the sources service holds them now."""
        names = {source["id"]: source["name"] for source in self.sources_list()}
        return {
            item["id"]: f"{item['id'][:8]} ({names.get(item['source_id'], 'unknown source')})"
            for item in self.evidence_for(claim_id)
        }

    def post_claims(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        return self.call(self.claims, "POST", path, json=body)

    def post_sources(
        self, path: str, body: dict[str, Any], idempotency_key: str | None = None
    ) -> dict[str, Any]:
        headers = {"Idempotency-Key": idempotency_key} if idempotency_key else {}
        return self.call(self.sources, "POST", path, json=body, headers=headers)

    def claim_answer(self, claim_id: str, what: str, **params: Any) -> dict[str, Any]:
        """GET /claims/{id}/{what} (verdict, timeline, history, evidence), without empty params."""
        given = {key: value for key, value in params.items() if value is not None}
        return self.call(self.claims, "GET", f"/claims/{claim_id}/{what}", params=given)

    def export(self, client: httpx.Client, path: Path, params: dict[str, Any]) -> int:
        """Stream the service's event log to `path`, byte for byte; return how many events
        it held: one a line, and only "\\n" ends a line.

        The log is written beside `path` first, and takes its name only once whole: an export
        that breaks off, for whatever reason, leaves no partial file and keeps an earlier one.
        """
        count = 0
        partial = path.with_name(f".{path.name}.partial")
        try:
            with client.stream("GET", "/audit/export", params=params) as response:
                if response.is_error:
                    response.read()
                    raise ServiceError(
                        f"GET {_url(client, '/audit/export')}: {response.status_code} "
                        f"{_detail(response)}"
                    )
                with partial.open("wb") as out:
                    for chunk in response.iter_bytes():
                        out.write(chunk)
                        count += chunk.count(b"\n")
            partial.replace(path)
        except httpx.HTTPError as error:
            if count:
                raise ServiceError(
                    f"{_url(client, '/audit/export')} broke off after {count} events ({error}); "
                    f"{path} was not written. `factcheck verify` names the first event that "
                    "breaks the log"
                ) from None
            raise ServiceError(f"{_url(client, '/audit/export')}: {error}") from None
        finally:
            partial.unlink(missing_ok=True)
        return count


def _detail(response: httpx.Response) -> str:
    """An error answer's problem detail, or its text if it is not a problem."""
    try:
        return str(response.json().get("detail", response.text))
    except (ValueError, AttributeError):
        return response.text


def _url(client: httpx.Client, path: str) -> str:
    return f"{str(client.base_url).rstrip('/')}{path}"
