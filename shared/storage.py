"""One storage URL per service, mapped once onto the event store and the read-model engine."""

import fcntl
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import SplitResult, parse_qs, unquote, urlsplit

from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.engine import URL, make_url

from shared.holds import KEEPALIVE, AdvisoryHold, FileHold, Hold

SQLITE_LOCK_TIMEOUT_SECONDS = 30
READ_MODEL_CONNECTIONS = 15
"""Connections the read models' pool opens at most, and keeps once opened: a burst of reads does
not open and close connections, on PostgreSQL each a new server process."""
CONNECT_SECONDS = 5
"""How long a new PostgreSQL connection may take to open: a database slow to let a new process
in (a checkpoint writing, a busy machine) delays a start or a read, rather than failing it."""
LOCK_WAIT_SECONDS = 3.0
"""How long a start waits for a PostgreSQL store's lock that a stopping process still holds."""
IN_USE = (
    "another process already serves this store; run one process per service, and give each "
    "service a store of its own"
)


class StorageConfigError(RuntimeError):
    """A storage URL that cannot be used; the message is one line naming the setting."""


@dataclass(frozen=True)
class Storage:
    """Where one service keeps its events and read models."""

    setting: str
    url: str
    kind: str
    sqlite_path: Path | None = None
    host: str = ""
    port: int = 5432
    user: str = ""
    password: str = ""
    dbname: str = ""
    schema: str = ""

    def eventsourcing_env(self) -> dict[str, str]:
        """The eventsourcing environment for this storage."""
        if self.kind == "sqlite":
            assert self.sqlite_path is not None
            return {
                "PERSISTENCE_MODULE": "eventsourcing.sqlite",
                "SQLITE_DBNAME": str(self.sqlite_path),
                "SQLITE_LOCK_TIMEOUT": str(SQLITE_LOCK_TIMEOUT_SECONDS),
            }
        return {
            "PERSISTENCE_MODULE": "eventsourcing.postgres",
            "POSTGRES_DBNAME": self.dbname,
            "POSTGRES_HOST": self.host,
            "POSTGRES_PORT": str(self.port),
            "POSTGRES_USER": self.user,
            "POSTGRES_PASSWORD": self.password,
            "POSTGRES_SCHEMA": self.schema,
            "POSTGRES_CONNECT_TIMEOUT": "1",
            "POSTGRES_PRE_PING": "y",
            "POSTGRES_POOL_SIZE": "5",
            "POSTGRES_MAX_OVERFLOW": "10",
        }

    def create_engine(
        self,
        connect_args: Mapping[str, object] | None = None,
        connections: int = READ_MODEL_CONNECTIONS,
    ) -> Engine:
        """The SQLAlchemy engine for this service's read models, opening at most `connections`
        and keeping them; on PostgreSQL, `connect_args` add to the connection's parameters."""
        pool = {"pool_size": connections, "max_overflow": 0}
        if self.kind == "sqlite":
            assert self.sqlite_path is not None
            engine = create_engine(
                URL.create("sqlite", database=str(self.sqlite_path)),
                connect_args={"check_same_thread": False, "timeout": SQLITE_LOCK_TIMEOUT_SECONDS},
                **pool,
            )
            event.listen(engine, "connect", _sqlite_pragmas)
            return engine
        url = make_url("postgresql+psycopg://").set(
            username=self.user or None,
            password=self.password or None,
            host=self.host,
            port=self.port,
            database=self.dbname,
        )
        arguments: dict[str, object] = {"connect_timeout": CONNECT_SECONDS, **(connect_args or {})}
        if self.schema:
            arguments["options"] = f"-csearch_path={self.schema}"
        return create_engine(url, connect_args=arguments, pool_pre_ping=True, **pool)

    def prepare(self) -> None:
        """Create what must exist before the stores open: the SQLite file's folder, if the
        folder it goes in exists (so that a mistyped path does not start a store elsewhere),
        or the PostgreSQL schema."""
        if self.kind == "sqlite":
            assert self.sqlite_path is not None
            folder = self.sqlite_path.parent
            if not folder.is_dir() and not folder.parent.is_dir():
                raise self.error(f"the folder {folder.parent} does not exist; create it first")
            try:
                folder.mkdir(exist_ok=True)
            except OSError as error:
                raise self.error(f"cannot create {folder}: {error}") from None
        engine = self.create_engine()
        try:
            with engine.begin() as connection:
                if self.kind == "postgresql" and self.schema:
                    connection.execute(text(f'CREATE SCHEMA IF NOT EXISTS "{self.schema}"'))
                else:
                    connection.execute(text("SELECT 1"))
        except Exception as error:
            raise self.error(f"cannot connect: {first_line(error)}") from None
        finally:
            engine.dispose()

    def hold(self) -> Hold:
        """Become the one process that serves this store, until the hold is released;
        StorageConfigError if another process serves it.

        Each process chains the events it records to the last one it knows of, so a second
        process writing to the same store would fork the chain.
        """
        return self._hold_file() if self.kind == "sqlite" else self._hold_advisory_lock()

    def _hold_file(self) -> FileHold:
        assert self.sqlite_path is not None
        database = self.sqlite_path.resolve()
        path = database.with_name(f"{database.name}.lock")
        try:
            handle = path.open("a")
        except OSError as error:
            raise self.error(f"cannot open {path}: {error.strerror or error}") from None
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as error:
            handle.close()
            reason = IN_USE if isinstance(error, BlockingIOError) else f"cannot lock {path}"
            raise self.error(reason) from None
        return FileHold(handle)

    def _hold_advisory_lock(self) -> AdvisoryHold:
        """A lock on the schema; a process that has just stopped, or died, may take a moment
        to let it go."""
        engine = self.create_engine(KEEPALIVE).execution_options(isolation_level="AUTOCOMMIT")
        hold = AdvisoryHold(engine, f"factcheck:{self.schema or 'public'}")
        deadline = time.monotonic() + LOCK_WAIT_SECONDS
        try:
            while not hold.take()[0]:
                if time.monotonic() > deadline:
                    raise self.error(IN_USE)
                time.sleep(0.1)
        except StorageConfigError:
            hold.release()
            raise
        except Exception as error:
            hold.release()
            raise self.error(f"cannot connect: {first_line(error)}") from None
        return hold

    def error(self, reason: str) -> StorageConfigError:
        return StorageConfigError(f"{self.setting}={self.redacted_url}: {reason}")

    @property
    def redacted_url(self) -> str:
        return redacted(self.url)


SCHEMA = re.compile(r"[a-z_][a-z0-9_]{0,62}")
"""A PostgreSQL schema name that needs no quoting: lower case, at most 63 characters."""
SYSTEM_SCHEMA = re.compile(r"pg_|information_schema$")
"""Schema names PostgreSQL keeps for itself."""


def redacted(url: str) -> str:
    """The URL with its password, if it has one, replaced by ***: whatever follows the user's
    name up to the authority's last @, however the password is written."""
    scheme, separator, rest = url.partition("://")
    authority = re.split(r"[?#]", rest, maxsplit=1)[0]
    if not separator or "@" not in authority:
        return url
    at = authority.rindex("@")
    user, colon, _ = rest[:at].partition(":")
    return f"{scheme}://{user}:***@{rest[at + 1 :]}" if colon else url


def url_port(parts: SplitResult) -> int | None:
    """The port a URL names, None if it names none; ValueError unless it is 1 to 65535."""
    try:
        port = parts.port
    except ValueError:
        port = 0
    if port == 0:
        raise ValueError("the port must be a number from 1 to 65535")
    return port


def first_line(error: BaseException) -> str:
    """The first line of an error's message, or the error itself if it has none."""
    text = str(error).strip()
    return text.splitlines()[0] if text else repr(error)


def parse_storage_url(setting: str, url: str) -> Storage:
    """Map `sqlite:///path` or `postgresql://user:pass@host:port/db[?schema=s]` to a Storage."""

    def fail(reason: str) -> StorageConfigError:
        return StorageConfigError(f"{setting}={redacted(url)!r}: {reason}")

    try:
        parts = urlsplit(url)
    except ValueError as error:
        raise fail(str(error)) from None
    scheme = parts.scheme.lower()
    if scheme == "sqlite":
        if parts.netloc or not parts.path.startswith("/") or len(parts.path) < 2:
            raise fail("expected sqlite:///relative/path.db or sqlite:////absolute/path.db")
        if parts.query or parts.fragment or url.endswith(("?", "#")):
            raise fail("a SQLite URL takes no options; give only the path")
        path = unquote(parts.path[1:])
        if path == ":memory:" or path.startswith("file:"):
            raise fail("give the path of a database file; a store in memory keeps nothing")
        return Storage(setting=setting, url=url, kind="sqlite", sqlite_path=Path(path))
    if scheme in ("postgresql", "postgres", "postgresql+psycopg"):
        try:
            port = url_port(parts) or 5432
        except ValueError as error:
            raise fail(str(error)) from None
        dbname = unquote(parts.path.lstrip("/"))
        if not parts.hostname or not dbname:
            raise fail("expected postgresql://user:password@host:port/database")
        if parts.fragment or url.endswith("#"):
            raise fail("a PostgreSQL URL takes no fragment")
        query = parse_qs(parts.query, keep_blank_values=True)
        unknown = sorted(set(query) - {"schema"})
        if unknown:
            raise fail(f"unknown option {unknown[0]!r}; only 'schema' is understood")
        if len(query.get("schema", [])) > 1:
            raise fail("give the schema once")
        schema = query.get("schema", [None])[0]
        if schema is not None and (not SCHEMA.fullmatch(schema) or SYSTEM_SCHEMA.match(schema)):
            raise fail(
                "the schema must be lower-case letters, digits and underscores, at most 63, "
                "not starting with a digit, nor one of PostgreSQL's own (pg_..., "
                "information_schema)"
            )
        return Storage(
            setting=setting,
            url=url,
            kind="postgresql",
            host=parts.hostname,
            port=port,
            user=unquote(parts.username or ""),
            password=unquote(parts.password or ""),
            dbname=dbname,
            schema=schema or "",
        )
    raise fail("the scheme must be sqlite or postgresql")


def _sqlite_pragmas(connection: object, _record: object) -> None:
    """Read-model connections: WAL, and (in WAL only) no sync at each commit but at checkpoints.

    A read-model commit lost to a power cut is lost together with its projection position,
    so the projector applies those events again; the events themselves are synced as before.
    """
    cursor = connection.cursor()  # type: ignore[attr-defined]
    mode = cursor.execute("PRAGMA journal_mode=WAL").fetchone()
    if mode and str(mode[0]).lower() == "wal":
        cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()
