"""The bulk insert stores, in every read-model table, exactly what SQLAlchemy's insert stores,
with every column given, with the optional ones left out, or as named tuples."""

import itertools
import uuid
from collections import namedtuple
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from sqlalchemy import JSON, Column, DateTime, Engine, Integer, String, Table, Uuid
from sqlalchemy.exc import IntegrityError
from sqlalchemy.types import TypeDecorator
from sqlmodel import Session, SQLModel

import services.claims.projections
import services.sources.projections  # both services' read models join the metadata on import
from shared.bulk import insert_rows
from shared.storage import parse_storage_url

ROWS = 48
TEXTS = ["plain", "", "tab\tnew\nline", 'quote" back\\slash', "é ü ✓", "line\u2028separator"]
DOCUMENTS: list[Any] = [None, [], {"k": ["é", 1, None, 2.5]}, ["a", "b"], {"n": {"s": "\u2028\t"}}]
OFFSETS = [UTC, timezone(timedelta(hours=5, minutes=30)), timezone(timedelta(hours=-5))]


def sample(column: Column[Any], n: int) -> Any:
    """The n-th value of a column, unique where the column's key needs it."""
    kind = column.type.impl if isinstance(column.type, TypeDecorator) else column.type
    if column.nullable and not column.primary_key and n % 7 == 3:
        return None
    if isinstance(kind, Uuid):
        return uuid.UUID(int=(n + 1) * 0x9E3779B97F4A7C15 % 2**128)
    if isinstance(kind, Integer):
        return n + 1 if column.primary_key else (n * 7919) % 2**31 - 2**30
    if isinstance(kind, DateTime):
        return datetime(2024, 1, 2, 3, 4, n % 60, n * 12347 % 10**6, OFFSETS[n % len(OFFSETS)])
    if isinstance(kind, JSON):
        return DOCUMENTS[n % len(DOCUMENTS)]
    if isinstance(kind, String):
        return f"{TEXTS[n % len(TEXTS)]}{n}"
    raise AssertionError(f"no sample for {column.table.name}.{column.name} ({kind!r})")


def stored(engine: Engine, table: Table) -> list[tuple[Any, ...]]:
    """Every row, each value as the database's own text for it, in key order."""
    names = ", ".join(f'CAST("{column.name}" AS TEXT)' for column in table.columns)
    keys = ", ".join(f'"{column.name}"' for column in table.primary_key.columns)
    with engine.connect() as connection:
        result = connection.exec_driver_sql(f"SELECT {names} FROM {table.name} ORDER BY {keys}")
        return [tuple(row) for row in result]


def test_every_table_stores_the_same_rows_either_way(
    database_url: str, claims_database_url: str
) -> None:
    engines = []
    for url in (database_url, claims_database_url):
        storage = parse_storage_url("DATABASE_URL", url)
        storage.prepare()
        engine = storage.create_engine()
        SQLModel.metadata.create_all(engine)
        engines.append(engine)
    by_sqlalchemy, by_bulk = engines
    tables = list(SQLModel.metadata.sorted_tables)
    assert services.claims.projections.TallyPoint.__table__ in tables
    try:
        for table in tables:
            optional = {
                column.name
                for column in table.columns
                if not column.primary_key and (column.nullable or column.default is not None)
            }
            given = [
                {column.name: sample(column, n) for column in table.columns} for n in range(ROWS)
            ]
            left_out = [
                {name: value for name, value in row.items() if name not in optional}
                for row in (
                    {column.name: sample(column, n) for column in table.columns}
                    for n in range(ROWS, 2 * ROWS)
                )
            ]
            named = [
                {column.name: sample(column, n) for column in table.columns}
                for n in range(2 * ROWS, 3 * ROWS)
            ]
            as_tuple = namedtuple("Row", [column.key for column in table.columns])
            for rows, bulk_rows in (
                (given, given),
                (left_out, left_out),
                (named, [as_tuple(**row) for row in named]),
            ):
                with Session(by_sqlalchemy) as session:
                    session.connection().execute(table.insert(), rows)
                    session.commit()
                with Session(by_bulk) as session:
                    insert_rows(session.connection(), table, bulk_rows)
                    session.commit()
            expected, found = stored(by_sqlalchemy, table), stored(by_bulk, table)
            assert len(found) == 3 * ROWS, table.name
            for want, got in itertools.zip_longest(expected, found):
                assert got == want, table.name
    finally:
        for engine in engines:
            engine.dispose()


def test_a_failed_bulk_insert_raises_sqlalchemys_error_and_stores_nothing(
    database_url: str,
) -> None:
    storage = parse_storage_url("DATABASE_URL", database_url)
    storage.prepare()
    engine = storage.create_engine()
    table = services.claims.projections.TallyPoint.__table__
    SQLModel.metadata.create_all(engine, tables=[table])
    rows = [{column.name: sample(column, n) for column in table.columns} for n in range(3)]
    try:
        with Session(engine) as session:
            insert_rows(session.connection(), table, rows)
            with pytest.raises(IntegrityError):
                insert_rows(session.connection(), table, rows[2:])
            session.rollback()
        with Session(engine) as session:
            without_key = [{k: v for k, v in rows[0].items() if k != "row"}]
            with pytest.raises(ValueError, match="'row'"):
                insert_rows(session.connection(), table, without_key)
        assert stored(engine, table) == []
    finally:
        engine.dispose()
