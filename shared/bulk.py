"""Inserting many new rows at once by the driver's own bulk path, with each value bound exactly
as SQLAlchemy binds it: COPY on PostgreSQL, one prepared statement run per row on SQLite."""

from collections.abc import Callable, Mapping, Sequence
from functools import lru_cache
from operator import attrgetter, itemgetter
from typing import Any, NamedTuple

import psycopg
from sqlalchemy import Connection, Table
from sqlalchemy.engine import Dialect
from sqlalchemy.exc import DBAPIError

ABSENT = object()
"""A column left out of a row, with no default: SQLAlchemy leaves it NULL."""
REQUIRED = object()
"""A primary-key column, which every row must give."""


class BoundColumn(NamedTuple):
    """How one column's value goes to the driver."""

    key: str
    bind: Callable[[Any], Any] | None
    """SQLAlchemy's own function for binding the column's values, if it has one."""
    default: Any
    """The value a row that leaves the column out takes: its scalar default, or a marker."""


@lru_cache(maxsize=256)
def _columns(table: Table, dialect: Dialect) -> tuple[BoundColumn, ...]:
    """Every column of `table`, in order, as its values go to the driver."""
    columns = []
    for column in table.columns:
        default = column.default
        if column.server_default is not None or (default is not None and not default.is_scalar):
            raise ValueError(f"{table.name}.{column.name}: only scalar defaults are supported")
        fallback = ABSENT if default is None else default.arg
        bind = column.type.dialect_impl(dialect).bind_processor(dialect)
        columns.append(BoundColumn(column.key, bind, REQUIRED if column.primary_key else fallback))
    return tuple(columns)


@lru_cache(maxsize=256)
def _statement(table: Table, dialect: Dialect) -> str:
    """The driver-level statement that takes one row of every column, in table order."""
    if dialect.name == "postgresql":
        preparer = dialect.identifier_preparer
        columns = ", ".join(preparer.quote(column.name) for column in table.columns)
        return f"COPY {preparer.format_table(table)} ({columns}) FROM STDIN"
    return str(table.insert().compile(dialect=dialect))


Row = Mapping[str, Any] | tuple[Any, ...]
"""A new row: its columns by key, or a named tuple whose fields are named as every column is."""


def _bound(row: Mapping[str, Any], column: BoundColumn) -> Any:
    """The column's value as SQLAlchemy sends it."""
    value = row.get(column.key, column.default)
    if value is REQUIRED:
        raise ValueError(f"a row leaves out its key {column.key!r}")
    if value is ABSENT:
        return None
    return value if column.bind is None else column.bind(value)


@lru_cache(maxsize=256)
def _reader(table: Table, dialect: Dialect) -> Callable[[Row], Sequence[Any]]:
    """How a row's values, in table order, go to the driver.

    A row that gives every column is read in one call, and only the columns that have a bind
    function pass through it; a row that leaves some out is read value by value.
    """
    columns = _columns(table, dialect)

    def by_value(row: Row) -> Sequence[Any]:
        if isinstance(row, tuple):
            row = row._asdict()  # type: ignore[attr-defined]
        return tuple(_bound(row, column) for column in columns)

    if len(columns) < 2:
        return by_value
    keys = [column.key for column in columns]
    by_key, by_field = itemgetter(*keys), attrgetter(*keys)
    binds = [(index, column.bind) for index, column in enumerate(columns) if column.bind]

    def read(row: Row) -> Sequence[Any]:
        try:
            given = by_field(row) if isinstance(row, tuple) else by_key(row)
        except KeyError:
            return by_value(row)
        if not binds:
            return given
        values = list(given)
        for index, bind in binds:
            values[index] = bind(values[index])
        return tuple(values)

    return read


def insert_rows(connection: Connection, table: Table, rows: Sequence[Row]) -> None:
    """Insert `rows` (columns by key, one left out taking its default, or NULL, as with
    SQLAlchemy's insert; or named tuples that give every column) into `table` in the
    connection's transaction.

    The driver's errors are raised as SQLAlchemy's, as its own statements raise them.
    """
    if not rows:
        return
    dialect = connection.dialect
    read = _reader(table, dialect)
    values = [read(row) for row in rows]
    statement = _statement(table, dialect)
    if dialect.name != "postgresql":
        connection.exec_driver_sql(statement, values)
        return
    driver = connection.connection.driver_connection
    assert isinstance(driver, psycopg.Connection)
    try:
        with driver.cursor() as cursor, cursor.copy(statement) as copy:
            for value in values:
                copy.write_row(value)
    except psycopg.Error as error:
        raise DBAPIError.instance(statement, None, error, psycopg.Error, dialect=dialect) from error
