"""The two time axes: valid time (`at`) set by clients, transaction time (`known_at`) by the server.

Everything inside the services is a timezone-aware UTC datetime. Client input is parsed strictly:
an ISO 8601 date-time with an explicit offset, or, where a query allows it, a bare date, which means
the end of that day in UTC.
"""

import re
import threading
from datetime import UTC, date, datetime, time, timedelta
from typing import Annotated, Any

from pydantic import BeforeValidator, PlainSerializer, WithJsonSchema

END_OF_DAY = time(23, 59, 59, 999999, tzinfo=UTC)
ONE_MICROSECOND = timedelta(microseconds=1)
FINER_THAN_MICROSECONDS = re.compile(r"[.,][0-9]{7,}")
BARE_DECIMAL_POINT = re.compile(r"[.,](?![0-9])")
LEAP_SECOND = re.compile(r"[T ][0-9]{2}:?[0-9]{2}:?60")
CLOCK_SKEW = timedelta(minutes=5)
"""How far ahead of this server's clock a client's time may be before it counts as future."""


class TimeParseError(ValueError):
    """Raised when a client's time value is not a strict, timezone-aware ISO 8601 value."""


def parse_instant(value: Any, *, allow_date: bool = False) -> datetime:
    """Parse a client's time value into an aware UTC datetime, or raise TimeParseError."""
    if isinstance(value, datetime):
        if value.tzinfo is None or value.utcoffset() is None:
            raise TimeParseError("must carry a timezone offset, such as Z or +02:00")
        return _in_utc(value)
    if not isinstance(value, str):
        raise TimeParseError("must be an ISO 8601 date-time string with a timezone offset")
    text = value.strip()
    if allow_date and len(text) == 10:
        try:
            return datetime.combine(date.fromisoformat(text), END_OF_DAY)
        except ValueError:
            raise TimeParseError(f"{value!r} is not a valid date (YYYY-MM-DD)") from None
    if "T" not in text and " " not in text:
        expected = "a date-time with a timezone offset" + (" or a date" if allow_date else "")
        raise TimeParseError(f"{value!r} is not {expected}, such as 2024-01-06T12:00:00Z")
    if BARE_DECIMAL_POINT.search(text):
        raise TimeParseError(f"{value!r} has a decimal point without digits after it")
    if FINER_THAN_MICROSECONDS.search(text):
        raise TimeParseError(f"{value!r} is finer than a microsecond; give at most six decimals")
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        if LEAP_SECOND.search(text):
            raise TimeParseError(
                f"{value!r} is a leap second, which cannot be stored; use :59.999999"
            ) from None
        raise TimeParseError(f"{value!r} is not an ISO 8601 date-time") from None
    offset = parsed.utcoffset()
    if offset is None:
        raise TimeParseError(
            f"{value!r} has no timezone offset; add Z or +HH:MM, such as 2024-01-06T12:00:00Z"
        )
    if offset % timedelta(minutes=1):
        raise TimeParseError(f"{value!r} has an offset that is not whole minutes (+HH:MM)")
    return _in_utc(parsed)


def _in_utc(value: datetime) -> datetime:
    try:
        return value.astimezone(UTC)
    except OverflowError:
        raise TimeParseError("is out of range once converted to UTC") from None


def is_future(value: datetime) -> bool:
    """Whether a client's valid time lies in the future, allowing for clock skew."""
    return value > datetime.now(UTC) + CLOCK_SKEW


def format_instant(value: datetime) -> str:
    """Render an aware datetime as ISO 8601 UTC with a trailing Z."""
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _strict_instant(value: Any) -> datetime:
    try:
        return parse_instant(value)
    except TimeParseError as error:
        raise ValueError(str(error)) from None


UtcDatetime = Annotated[
    datetime,
    BeforeValidator(_strict_instant),
    PlainSerializer(format_instant, return_type=str, when_used="json"),
    WithJsonSchema({"type": "string", "format": "date-time"}),
]
"""A request or response field holding an aware UTC datetime, parsed strictly."""


class RecordingClock:
    """The server's transaction-time clock: UTC, and strictly increasing.

    Seeded with the newest recorded time when a store opens, it stays increasing across
    restarts even if the wall clock has gone back meanwhile.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._last = datetime.min.replace(tzinfo=UTC)

    def now(self) -> datetime:
        with self._lock:
            current = datetime.now(UTC)
            if current <= self._last:
                current = self._last + ONE_MICROSECOND
            self._last = current
            return current

    def not_before(self, moment: datetime) -> None:
        """From now on, give only times later than `moment` (a time already recorded)."""
        with self._lock:
            self._last = max(self._last, moment)


recording_clock = RecordingClock()
"""The process's single transaction-time clock; every recorded event takes its time from it."""


EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def to_micros(value: datetime) -> int:
    """Microseconds since the Unix epoch: the integer form both axes are indexed by."""
    return (value - EPOCH) // ONE_MICROSECOND


def from_micros(value: int) -> datetime:
    return EPOCH + timedelta(microseconds=value)
