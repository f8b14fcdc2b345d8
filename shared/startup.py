"""Opening a service's event store, failing in one line that names the setting, and its read
models on it."""

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TypeVar

from sqlalchemy import Engine

from shared.eventstore import FactcheckApplication
from shared.projection import Projection
from shared.storage import Storage, first_line

A = TypeVar("A", bound=FactcheckApplication)
P = TypeVar("P", bound=Projection)
PROJECTION_CONNECTIONS = 2
"""Connections the read models are written and idempotency keys looked up on, apart from the
readers' pool, so that reads holding every pooled connection hold up no write: applying one,
and the key lookup each keyed write makes under the write lock."""


def open_store(storage: Storage, construct: Callable[[], A]) -> A:
    """Prepare `storage`, become the one process serving it, and construct the application on
    it, which lets the store go when it closes; or raise StorageConfigError."""
    storage.prepare()
    hold = storage.hold()
    try:
        application = construct()
    except Exception as error:
        hold.release()
        raise storage.error(f"cannot open the event store: {first_line(error)}") from None
    application.after_close(hold.release)
    hold.watch(lambda reason: application.refuse_writes(reason, "store taken"))
    return application


@contextmanager
def closed_on_failure(application: FactcheckApplication) -> Iterator[None]:
    """Close `application`, letting its store go, if building the service on it fails: a
    later start in the same process then finds the store free."""
    try:
        yield
    except BaseException:
        application.close()
        raise


def open_service(
    storage: Storage, construct: Callable[[], A], projection_of: Callable[[Engine, A], P]
) -> tuple[A, Engine, P]:
    """Open the store as `open_store` does, and its read models on it: caught up, following
    it, and with writes refused if the log lost events they applied. The engine answered is
    the readers'; the projection writes on one of its own. Closing the application disposes
    of both."""
    application = open_store(storage, construct)
    engine = storage.create_engine()
    application.after_close(engine.dispose)
    own = storage.create_engine(connections=PROJECTION_CONNECTIONS)
    application.after_close(own.dispose)
    with closed_on_failure(application):
        projection = projection_of(own, application)
        projection.reshape()
        projection.create_tables()
        projection.catch_up_or_log()
        application.refuse_writes(projection.missing_events(), "missing events")
        projection.follow()
    return application, engine, projection
