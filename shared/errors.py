"""Why a command was refused; the API answers each as problem+json, and nothing is recorded."""


class Rejected(ValueError):
    """Invalid input, naming the field at fault (422)."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason


class NotFound(LookupError):
    """No such aggregate for an id in the path (404)."""

    def __init__(self, what: str, identifier: object) -> None:
        super().__init__(f"no {what} with id {identifier}")
        self.what = what
        self.identifier = identifier


class Conflict(RuntimeError):
    """The command does not fit the aggregate's current state (409)."""

    def __init__(self, detail: str, current_version: int | None = None) -> None:
        super().__init__(detail)
        self.current_version = current_version


def check_version(kind: str, current: int, expected: int | None) -> None:
    """Refuse an update made against a version the aggregate no longer has (If-Match)."""
    if expected is not None and expected != current:
        raise Conflict(f"the {kind} is at version {current}, not {expected}", current)


class Unavailable(RuntimeError):
    """Something the command depends on cannot be reached now (503); retry later."""
