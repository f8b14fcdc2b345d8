"""Whether the read-model tables a store holds have the shape this release gives them.

Read models are derived from the events alone, so a release that adds, renames or removes a
table or a column, or widens an integer column, refills them from the log at start instead of
failing on the old tables. A missing index is created where it stands.
"""

import logging
from collections.abc import Iterable, Sequence

from sqlalchemy import Connection, Engine, Integer, Table, inspect

logger = logging.getLogger("factcheck")


def shape_faults(bind: Engine | Connection, tables: Sequence[Table]) -> list[str]:
    """How the stored tables differ from the code's, one line a table missing, a column or an
    integer column's width; a store that holds none of them is new, and left for their
    creation."""
    inspector = inspect(bind)
    present = [table for table in tables if inspector.has_table(table.name)]
    if not present:
        return []
    stored_names = {table.name for table in present}
    faults = [f"{table.name} is missing" for table in tables if table.name not in stored_names]
    for table in present:
        stored = {column["name"]: column for column in inspector.get_columns(table.name)}
        expected = {column.name for column in table.columns}
        faults += [f"{table.name}.{name} is missing" for name in sorted(expected - set(stored))]
        faults += [f"{table.name}.{name} is unknown" for name in sorted(set(stored) - expected)]
        for column in table.columns:
            if column.name in stored and isinstance(column.type, Integer):
                held = stored[column.name]["type"].compile(bind.dialect)
                wanted = column.type.compile(bind.dialect)
                if held != wanted:
                    faults.append(f"{table.name}.{column.name} is {held}, not {wanted}")
    return faults


def unlike_code(name: str, engine: Engine, tables: Sequence[Table]) -> bool:
    """Whether the stored tables differ from the code's; if so, log how, as a refill."""
    faults = shape_faults(engine, tables)
    if faults:
        logger.warning(
            "%s: the read models are not this release's (%s); refilling them from the log",
            name,
            "; ".join(faults),
        )
    return bool(faults)


def create_missing_indexes(bind: Engine | Connection, tables: Iterable[Table]) -> None:
    """Create every index the tables declare that the store lacks."""
    for table in tables:
        for index in table.indexes:
            index.create(bind, checkfirst=True)
