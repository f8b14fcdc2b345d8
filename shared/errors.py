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


class Unavailable(RuntimeError):
    """Something the command depends on cannot be reached now (503); retry later."""
