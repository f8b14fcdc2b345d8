"""The sources service's view of the claims service: does a claim exist?"""

import logging
import threading
import time
from typing import Protocol
from uuid import UUID

import httpx

from shared.errors import Unavailable
from shared.problems import PROBLEM_JSON

logger = logging.getLogger("factcheck")


class ClaimDirectory(Protocol):
    """Answers whether a claim exists; raises Unavailable when it cannot tell."""

    fault: str | None
    """Why the claims service cannot be asked as it is set up, if it cannot."""

    def exists(self, claim_id: UUID) -> bool: ...


KNOWN_CLAIMS_KEPT = 100_000
SETTING_CHECK_SECONDS = 1.0
ANSWERED_WITHIN = 1.0
"""Seconds since the claims service last answered within which a claim once found is taken
without asking; after that, the claim is asked about again, so a claims service that is down is
found within this time."""


class HttpClaimDirectory:
    """Asks the claims service over HTTP: `GET /claims/{id}`.

    Claims are never removed, so a claim once found is remembered (the newest
    KNOWN_CLAIMS_KEPT of them) and taken without asking while the claims service answered within
    ANSWERED_WITHIN seconds; after that it is asked again, and taken if the claims service
    answers at all, even that it cannot tell now (its own 503, as while it rebuilds). If the
    question times out, the claim is taken if the claims service's `/health` answers in time:
    it does not wait behind reads, so a claims service busy with reads answers it, while a
    frozen or cut off one does not. An unknown claim is asked about every time.
    """

    def __init__(self, base_url: str, timeout: float, api_key: str | None = None) -> None:
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._client = httpx.Client(base_url=base_url, timeout=timeout, headers=headers)
        self._url = base_url
        self._timeout = timeout
        self._checked: str | None = None
        """The fault the last check found, so that each is logged once."""
        self._keyed = bool(api_key)
        self._known: dict[UUID, None] = {}
        self._remembering = threading.Lock()
        self._answered_at = -ANSWERED_WITHIN
        self.fault: str | None = None
        """Why CLAIMS_URL or CLAIMS_API_KEY does not work, as the last answer showed."""

    def exists(self, claim_id: UUID) -> bool:
        known = claim_id in self._known
        if known and time.monotonic() - self._answered_at < ANSWERED_WITHIN:
            return True
        found = self._ask(claim_id, known)
        if found:
            with self._remembering:
                self._known[claim_id] = None
                if len(self._known) > KNOWN_CLAIMS_KEPT:
                    self._known.pop(next(iter(self._known)), None)
        return found

    def watch_setting(self, stopping: threading.Event) -> None:
        """Check the setting every SETTING_CHECK_SECONDS until the claims service answers that
        it works, or until `stopping` is set: a fault found is checked again, so that one a
        proxy's answer showed while the claims service started is cleared once it is up."""
        while not stopping.is_set():
            if self.check_setting() and self.fault is None:
                return
            stopping.wait(SETTING_CHECK_SECONDS)

    def check_setting(self) -> bool:
        """Ask the claims service for one claim, to find a wrong CLAIMS_URL or CLAIMS_API_KEY
        before the first evidence does; False if it could not tell (unreachable, or a 5xx)."""
        try:
            response = self._client.get(
                "/claims", params={"limit": 1}, timeout=min(self._timeout, SETTING_CHECK_SECONDS)
            )
        except (httpx.HTTPError, RuntimeError):
            return False
        if response.status_code >= 500:
            return False
        if response.status_code == 200 and _lists_claims(response):
            self.fault = None
        else:
            self.fault = self._setting_fault(response, "GET /claims?limit=1")
            if self.fault != self._checked:
                logger.warning("the claims service cannot be asked about claims: %s", self.fault)
            self._checked = self.fault
        return True

    def _ask(self, claim_id: UUID, known: bool) -> bool:
        try:
            response = self._client.get(f"/claims/{claim_id}")
        except httpx.TimeoutException:
            if known and self._alive():
                return True
            raise Unavailable(
                f"the claims service did not answer within {self._timeout:g} s "
                "(CLAIMS_TIMEOUT); nothing was recorded"
            ) from None
        except httpx.HTTPError as error:
            raise Unavailable(f"the claims service cannot be reached: {error}") from None
        unsure = response.status_code == 503 and _is_problem(response)
        named = response.status_code == 404 and _names_the_claim(response)
        if response.status_code == 200 or named or (known and unsure):
            self._answered_at = time.monotonic()
            self.fault = None
            return not named
        if response.status_code in (401, 403, 404):
            self.fault = self._setting_fault(response, f"GET /claims/{claim_id}")
            raise Unavailable(f"{self.fault}; nothing was recorded", retry_after=None)
        raise Unavailable(f"the claims service answered {response.status_code}")

    def _alive(self) -> bool:
        """Whether the claims service answers its `/health` in time; if it does, that counts as
        an answer."""
        try:
            response = self._client.get("/health")
        except httpx.HTTPError:
            return False
        try:
            alive = response.status_code == 200 and response.json().get("service") == "claims"
        except (ValueError, AttributeError):
            return False
        if alive:
            self._answered_at = time.monotonic()
        return alive

    def _setting_fault(self, response: httpx.Response, asked: str) -> str:
        """Which setting an answer the claims service would not give shows to be wrong: the
        key for a 401 or 403, else the URL."""
        if response.status_code not in (401, 403):
            return (
                f"CLAIMS_URL {self._url} answered {response.status_code} to {asked}, not as the "
                "claims service does, so it does not look like the claims service's base URL"
            )
        key = "refused CLAIMS_API_KEY" if self._keyed else "needs CLAIMS_API_KEY, which is unset"
        return (
            f"the claims service at CLAIMS_URL {self._url} {key} "
            f"({response.status_code}): set a key it takes, with read access"
        )

    def close(self) -> None:
        self._client.close()


def _lists_claims(response: httpx.Response) -> bool:
    """Whether an answer to GET /claims is the claims service's page of claims."""
    try:
        page = response.json()
    except ValueError:
        return False
    return isinstance(page, dict) and isinstance(page.get("items"), list)


def _is_problem(response: httpx.Response) -> bool:
    """Whether the answer is a factcheck service's own error, not a proxy's page."""
    return response.headers.get("content-type") == PROBLEM_JSON


def _names_the_claim(response: httpx.Response) -> bool:
    """Whether a 404 is the claims service's own "no claim with id", not a path it lacks."""
    if not _is_problem(response):
        return False
    try:
        errors = response.json().get("errors")
    except ValueError:
        return False
    return isinstance(errors, list) and any(
        isinstance(error, dict) and error.get("field") == "claim_id" for error in errors
    )
