"""Opening a service's event store, failing in one line that names the setting."""

from collections.abc import Callable
from typing import TypeVar

from shared.eventstore import FactcheckApplication
from shared.storage import Storage, first_line

A = TypeVar("A", bound=FactcheckApplication)


def open_store(storage: Storage, construct: Callable[[], A]) -> A:
    """Prepare `storage`, become the one process serving it, and construct the application on
    it, which lets the store go when it closes; or raise StorageConfigError."""
    storage.prepare()
    release = storage.hold()
    try:
        application = construct()
    except Exception as error:
        release()
        raise storage.error(f"cannot open the event store: {first_line(error)}") from None
    application.after_close(release)
    return application
