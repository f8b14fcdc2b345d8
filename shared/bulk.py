"""Inserting many new rows at once by the driver's own bulk path, with each value bound exactly
as SQLAlchemy binds it: COPY on PostgreSQL, one prepared statement run per row on SQLite."""

from collections.abc import Callable, Sequence
from functools import cache
from typing import Any

from sqlalchemy import Connection, Table
from sqlalchemy.engine import Dialect

Binder = Callable[[Any], Any] | None
ABSENT = object()
"""A column left out of a row, with no default: SQLAlchemy leaves it NULL."""


@cache
def _columns(table: Table, dialect: Dialect) -> tuple[tuple[str, Binder, Any], ...]:
    """Each column's name, the function SQLAlchemy binds its values with (if any), and the
    value it takes when a row leaves it out: its scalar default, or ABSENT."""
    columns = []
    for column in table.columns:
        default = column.default
        if column.server_default is not None or (default is not None and not default.is_scalar):
            raise ValueError(f"{table.name}.{column.name}: only scalar defaults are supported")
        bind = column.type.dialect_impl(dialect).bind_processor(dialect)
        columns.append((column.name, bind, ABSENT if default is None else default.arg))
    return tuple(columns)


@cache
def _statement(table: Table, dialect: Dialect) -> str:
    """The driver-level statement that takes one row of every column, in table order."""
    if dialect.name == "postgresql":
        preparer = dialect.identifier_preparer
        columns = ", ".join(preparer.quote(column.name) for column in table.columns)
        return f"COPY {preparer.format_table(table)} ({columns}) FROM STDIN"
    return str(table.insert().compile(dialect=dialect))


def _bound(row: dict[str, Any], name: str, bind: Binder, default: Any) -> Any:
    """The column's value as SQLAlchemy sends it."""
    value = row.get(name, default)
    if value is ABSENT:
        return None
    return value if bind is None else bind(value)


def insert_rows(connection: Connection, table: Table, rows: Sequence[dict[str, Any]]) -> None:
    """Insert `rows` (columns by name; one left out takes its default, or NULL, as with
    SQLAlchemy's insert) into `table` in the connection's transaction."""
    dialect = connection.dialect
    columns = _columns(table, dialect)
    values = [tuple(_bound(row, *column) for column in columns) for row in rows]
    statement = _statement(table, dialect)
    if dialect.name != "postgresql":
        connection.exec_driver_sql(statement, values)
        return
    driver = connection.connection.dbapi_connection
    with driver.cursor() as cursor, cursor.copy(statement) as copy:  # type: ignore[union-attr]
        for value in values:
            copy.write_row(value)
