"""A process's hold on its store, so that one process alone serves it: each process chains the
events it records to the last one it knows of, and a second writer would fork the chain."""

import logging
import threading
from collections.abc import Callable
from contextlib import suppress
from datetime import datetime
from typing import IO, Protocol

from sqlalchemy import Connection, Engine, text

logger = logging.getLogger("factcheck")

LOCK_CHECK_SECONDS = 1.0
"""How often a PostgreSQL store's lock is checked; a lock lost with its connection, as when the
database restarts, is taken again at the next check."""
RELEASE_WAIT_SECONDS = 15.0
"""How long letting a store go waits for a check in progress to end."""
KEEPALIVE: dict[str, object] = {
    "keepalives": 1,
    "keepalives_idle": 5,
    "keepalives_interval": 2,
    "keepalives_count": 3,
    "tcp_user_timeout": 10_000,
}
"""The lock connection's TCP settings: a connection that the network dropped silently is found
dead within about ten seconds, not after the system's retransmissions give up."""
TRY_LOCK = text("SELECT pg_try_advisory_lock(hashtextextended(:key, 0))")
UNLOCK = text("SELECT pg_advisory_unlock(hashtextextended(:key, 0))")
HOLDER = text(
    "SELECT lock.pid, activity.backend_start FROM pg_locks AS lock"
    " JOIN pg_stat_activity AS activity ON activity.pid = lock.pid"
    " WHERE lock.locktype = 'advisory' AND lock.granted AND lock.objsubid = 1"
    " AND lock.database = (SELECT oid FROM pg_database WHERE datname = current_database())"
    " AND ((lock.classid::text::bigint << 32) | lock.objid::text::bigint)"
    " = hashtextextended(:key, 0)"
)
"""The session holding the lock in this database: a bigint key is kept as two oids."""
OWN_SESSION = text("SELECT pid, backend_start FROM pg_stat_activity WHERE pid = pg_backend_pid()")
TAKEN = (
    "another process took this store over while its lock was lost with the database connection "
    "holding it; stop one of the two, then restart the other"
)

Session = tuple[int, datetime | None]
"""A database session: its process id and when it began, since process ids are reused."""


class Hold(Protocol):
    """A process's hold on its store: see `Storage.hold`."""

    def watch(self, on_lost: Callable[[str], None]) -> None:
        """From now on, call `on_lost` with the reason if the hold is lost for good."""

    def release(self) -> None:
        """Let the store go."""


class FileHold:
    """An exclusive lock on a file beside a SQLite database; released by the kernel if the
    process dies, and never lost while it lives."""

    def __init__(self, handle: IO[str]) -> None:
        self.handle = handle

    def watch(self, on_lost: Callable[[str], None]) -> None:
        return None

    def release(self) -> None:
        self.handle.close()


class AdvisoryHold:
    """A PostgreSQL advisory lock held by a connection of its own, checked every
    LOCK_CHECK_SECONDS once watched.

    The lock ends with its connection, as when the database restarts. A check that finds the
    connection gone takes the lock again on a new one. If it cannot, because a session other
    than the lost connection's holds it, another process has taken the store over: the check
    calls `on_lost` and stops. While the lost connection's own session still holds it on the
    server (a connection cut off by the network), the check tries again.
    """

    def __init__(self, engine: Engine, key: str) -> None:
        self.engine = engine
        self.key = {"key": key}
        self.connection: Connection | None = None
        self.session: Session | None = None
        self.stopping = threading.Event()
        self.checker: threading.Thread | None = None

    def take(self) -> tuple[bool, Session | None]:
        """Take the lock on a new connection and keep it there; if it cannot be taken, the
        session that holds it (None if it was let go meanwhile)."""
        connection = self.engine.connect()
        try:
            if connection.execute(TRY_LOCK, self.key).scalar():
                pid, began = connection.execute(OWN_SESSION).one()
                self.connection, self.session = connection, (pid, began)
                return True, None
            holder = connection.execute(HOLDER, self.key).first()
        except BaseException:
            connection.close()
            raise
        connection.close()
        return False, None if holder is None else (holder[0], holder[1])

    def watch(self, on_lost: Callable[[str], None]) -> None:
        self.checker = threading.Thread(
            target=self._check, args=(on_lost,), name="store-lock", daemon=True
        )
        self.checker.start()

    def _check(self, on_lost: Callable[[str], None]) -> None:
        lost: Session | None = None
        while not self.stopping.wait(LOCK_CHECK_SECONDS):
            if lost is None:
                if self._alive():
                    continue
                lost = self.session
                logger.warning("the store's lock was lost with its connection; taking it again")
            try:
                taken, holder = self.take()
            except Exception:
                continue
            if taken:
                lost = None
                logger.warning("the store's lock is held again")
            elif holder is not None and holder != lost:
                logger.error(TAKEN)
                on_lost(TAKEN)
                return

    def _alive(self) -> bool:
        """Whether the lock's connection still answers; it is closed if not."""
        if self.connection is None:
            return False
        try:
            self.connection.execute(text("SELECT 1"))
        except Exception:
            with suppress(Exception):
                self.connection.close()
            return False
        return True

    def release(self) -> None:
        self.stopping.set()
        if self.checker is not None:
            self.checker.join(RELEASE_WAIT_SECONDS)
        if self.connection is not None:
            with suppress(Exception):
                self.connection.execute(UNLOCK, self.key)
            with suppress(Exception):
                self.connection.close()
        self.engine.dispose()
