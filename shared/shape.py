"""Whether the read-model tables a store holds have the shape this release gives them.

Read models are derived from the events alone, so a release that adds, renames or removes a
column rebuilds them from the log at start instead of failing on the old table. A missing
index is created where it stands.
"""

import logging
from collections.abc import Iterable

from sqlalchemy import Connection, Engine, Table, inspect

logger = logging.getLogger("factcheck")


def shape_faults(bind: Engine | Connection, tables: Iterable[Table]) -> list[str]:
    """How each stored table's columns differ from the code's, one line a column; a table not
    stored yet is left for its creation."""
    inspector = inspect(bind)
    faults = []
    for table in tables:
        if not inspector.has_table(table.name):
            continue
        stored = {column["name"] for column in inspector.get_columns(table.name)}
        expected = {column.name for column in table.columns}
        faults += [f"{table.name}.{name} is missing" for name in sorted(expected - stored)]
        faults += [f"{table.name}.{name} is unknown" for name in sorted(stored - expected)]
    return faults


def unlike_code(name: str, engine: Engine, tables: Iterable[Table]) -> bool:
    """Whether the stored tables' columns differ from the code's; if so, log how, as a refill."""
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
