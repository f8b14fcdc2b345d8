"""Inserting many new rows at once by the driver's own bulk path, with each value bound exactly
as SQLAlchemy binds it: COPY on PostgreSQL, one prepared statement run per row on SQLite."""

from collections.abc import Callable, Sequence
from functools import lru_cache
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


def _bound(row: dict[str, Any], column: BoundColumn) -> Any:
    """The column's value as SQLAlchemy sends it."""
    value = row.get(column.key, column.default)
    if value is REQUIRED:
        raise ValueError(f"a row leaves out its key {column.key!r}")
    if value is ABSENT:
        return None
    return value if column.bind is None else column.bind(value)


def insert_rows(connection: Connection, table: Table, rows: Sequence[dict[str, Any]]) -> None:
    """Insert `rows` (columns by key; one left out takes its default, or NULL, as with
    SQLAlchemy's insert) into `table` in the connection's transaction.

    The driver's errors are raised as SQLAlchemy's, as its own statements raise them.
    """
    if not rows:
        return
    dialect = connection.dialect
    columns = _columns(table, dialect)
    values = [tuple(_bound(row, column) for column in columns) for row in rows]
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
