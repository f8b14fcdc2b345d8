"""Column types shared by both services' read models."""

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import DateTime
from sqlalchemy.types import TypeDecorator

POSITION_COLUMN_MAX = 2**31 - 1
"""The largest value a read model's integer position column holds (32 bits on PostgreSQL)."""


def after_bound(after: int) -> int:
    """`after` as a bound a position column can be compared with: past its largest value, no
    row comes after it anyway, and PostgreSQL refuses a larger number outright."""
    return min(after, POSITION_COLUMN_MAX)


class UtcDateTime(TypeDecorator[datetime]):
    """A timestamp column that always reads back as an aware UTC datetime."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)
