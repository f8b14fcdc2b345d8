"""Why a command was refused; the API answers each as problem+json, and nothing is recorded."""

from collections.abc import Iterator, Sequence
from contextlib import contextmanager


class Rejected(ValueError):
    """Invalid input, naming the field at fault and why (422); `also` names more of them."""

    def __init__(self, field: str, reason: str, also: Sequence[tuple[str, str]] = ()) -> None:
        self.faults = [(field, reason), *also]
        """Every (field, reason) at fault, this one first."""
        super().__init__("; ".join(f"{name}: {why}" for name, why in self.faults))


class Checks:
    """Runs checks that may each reject a field, then rejects once, naming every field at fault."""

    def __init__(self) -> None:
        self._faults: list[tuple[str, str]] = []

    @contextmanager
    def check(self) -> Iterator[None]:
        """Run a check; a rejection is kept for `done` instead of raised."""
        try:
            yield
        except Rejected as error:
            self._faults.extend(error.faults)

    def passed(self) -> bool:
        """Whether every check so far passed."""
        return not self._faults

    def reject(self, field: str, reason: str) -> None:
        """Keep a rejection of `field` for `done`."""
        self._faults.append((field, reason))

    def done(self) -> None:
        """Raise one Rejected naming every field the checks so far rejected, if any."""
        if self._faults:
            (field, reason), *also = self._faults
            raise Rejected(field, reason, also)


class NotFound(LookupError):
    """No such aggregate for an id in the path (404)."""

    def __init__(self, what: str, identifier: object) -> None:
        super().__init__(f"no {what} with id {identifier}")
        self.what = what
        self.identifier = identifier


class Conflict(RuntimeError):
    """The command does not fit the aggregate's current state (409); `field` names the part
    of the request that met it, where one did."""

    def __init__(
        self, detail: str, current_version: int | None = None, field: str | None = None
    ) -> None:
        super().__init__(detail)
        self.current_version = current_version
        self.field = field


def check_version(kind: str, current: int, expected: int | None) -> None:
    """Refuse an update made against a version the aggregate no longer has (If-Match)."""
    if expected is not None and expected != current:
        raise Conflict(
            f"the {kind} is at version {current}, not {expected}", current, field="If-Match"
        )


RESTART_SECONDS = 5
"""The `Retry-After` of an answer a service gives as it stops: about as long as a restart takes."""


class Unavailable(RuntimeError):
    """Something the command depends on cannot be reached now (503); retry later, after
    `retry_after` seconds, or once an operator has acted if that is None."""

    def __init__(self, detail: str, retry_after: int | None = 1) -> None:
        super().__init__(detail)
        self.retry_after = retry_after
