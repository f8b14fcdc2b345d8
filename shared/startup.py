"""Opening a service's event store, failing in one line that names the setting."""

from collections.abc import Callable
from typing import TypeVar

from shared.storage import Storage

T = TypeVar("T")


def open_store(storage: Storage, construct: Callable[[], T]) -> T:
    """Prepare `storage` and construct the application on it, or raise StorageConfigError."""
    storage.prepare()
    try:
        return construct()
    except Exception as error:
        reason = str(error).strip().splitlines()[0] if str(error).strip() else repr(error)
        raise storage.error(f"cannot open the event store: {reason}") from None
