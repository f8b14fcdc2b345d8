"""The two time axes: valid time (`at`) set by clients, transaction time (`known_at`) by the server.

Everything inside the services is a timezone-aware UTC datetime. Client input is parsed strictly:
an RFC 3339 date-time (the one ISO 8601 form with an explicit offset), or, where a query allows
it, a bare date, which means the end of that day in UTC.
"""

import re
import threading
from datetime import UTC, date, datetime, time, timedelta
from typing import Annotated, Any

from pydantic import BeforeValidator, PlainSerializer, WithJsonSchema

END_OF_DAY = time(23, 59, 59, 999999, tzinfo=UTC)
ONE_MICROSECOND = timedelta(microseconds=1)
_DATE = r"[0-9]{4}-[0-9]{2}-[0-9]{2}"
FULL_DATE = re.compile(_DATE)
DATE_TIME = re.compile(
    _DATE + r"T[0-9]{2}:[0-9]{2}:[0-9]{2}(?:\.[0-9]{1,6})?(?:Z|[+-][0-9]{2}:[0-9]{2})"
)
"""RFC 3339's `date-time`, with an upper-case T and Z and at most six decimals."""
LOCAL_DATE_TIME = re.compile(_DATE + r"[T ][0-9]{2}:[0-9]{2}(?::[0-9]{2}(?:[.,][0-9]+)?)?")
FINER_THAN_MICROSECONDS = re.compile(r"[.,][0-9]{7,}")
BARE_DECIMAL_POINT = re.compile(r"[.,](?![0-9])")
OFFSET_WITH_SECONDS = re.compile(r"[+-][0-9]{2}:?[0-9]{2}:?[0-9]{2}(?:[.,][0-9]+)?$")
CLOCK_SKEW = timedelta(minutes=5)
"""How far ahead of this server's clock a client's time may be before it counts as future."""
FUTURE = (
    f"is in the future, more than {CLOCK_SKEW // timedelta(minutes=1)} minutes ahead of this"
    " service's clock"
)
"""Why a client's valid time is refused when `is_future` holds."""
EXAMPLE = "such as 2024-01-06T12:00:00Z or 2024-01-06T14:00:00+02:00"


class TimeParseError(ValueError):
    """Raised when a client's time value is not a strict, timezone-aware RFC 3339 value."""


def parse_instant(value: Any, *, allow_date: bool = False) -> datetime:
    """Parse a client's time value into an aware UTC datetime, or raise TimeParseError.

    A string must be an RFC 3339 date-time, exactly: no surrounding space, no other ISO 8601
    form. With `allow_date`, a full date alone (`YYYY-MM-DD`) means the end of that day in UTC.
    """
    if isinstance(value, datetime):
        if value.tzinfo is None or value.utcoffset() is None:
            raise TimeParseError("must carry a timezone offset, such as Z or +02:00")
        return _in_utc(value)
    if not isinstance(value, str):
        raise TimeParseError("must be an RFC 3339 date-time string with a timezone offset")
    if allow_date and FULL_DATE.fullmatch(value):
        try:
            return datetime.combine(date.fromisoformat(value), END_OF_DAY)
        except ValueError:
            raise TimeParseError(f"{value!r} is not a valid date (YYYY-MM-DD)") from None
    if not DATE_TIME.fullmatch(value):
        raise TimeParseError(f"{value!r} {_fault(value, allow_date)}")
    if value[17:19] == "60":
        raise TimeParseError(f"{value!r} is a leap second, which cannot be stored; use :59.999999")
    if value[-1] != "Z" and (int(value[-5:-3]) > 23 or int(value[-2:]) > 59):
        raise TimeParseError(f"{value!r} has an offset beyond 23:59")
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError as error:
        raise TimeParseError(f"{value!r} is not a valid date-time: {error}") from None
    return _in_utc(parsed)


def _fault(text: str, allow_date: bool) -> str:
    """What keeps `text` from being an RFC 3339 date-time, as plainly as it can be told."""
    if text[-6:-5] == " " and DATE_TIME.fullmatch(f"{text[:-6]}+{text[-5:]}"):
        return (
            "has a space where its offset's + belongs; if it came in a URL query, where a + "
            "stands for a space, send it as %2B, or give the time in UTC with Z"
        )
    if BARE_DECIMAL_POINT.search(text):
        return "has a decimal point without digits after it"
    if FINER_THAN_MICROSECONDS.search(text):
        return "is finer than a microsecond; give at most six decimals"
    if OFFSET_WITH_SECONDS.search(text):
        return "has an offset that is not whole minutes (+HH:MM)"
    if text != text.strip():
        return f"has space around it; send the time alone, {EXAMPLE}"
    if "," in text:
        return "has a decimal comma; RFC 3339 takes a decimal point"
    if DATE_TIME.fullmatch(f"{text[:10]}T{text[11:].upper()}"):
        return f"needs an upper-case T between date and time, and Z in upper case, {EXAMPLE}"
    if LOCAL_DATE_TIME.fullmatch(text):
        return f"has no timezone offset; add Z or +HH:MM, {EXAMPLE}"
    if FULL_DATE.fullmatch(text):
        try:
            date.fromisoformat(text)
        except ValueError:
            return f"is not a valid date, nor a date-time with a timezone offset, {EXAMPLE}"
        return f"is a date alone; give a date-time with a timezone offset, {EXAMPLE}"
    expected = "an RFC 3339 date-time with a timezone offset" + (" or a date" if allow_date else "")
    return f"is not {expected}, {EXAMPLE}"


def _in_utc(value: datetime) -> datetime:
    try:
        return value.astimezone(UTC)
    except OverflowError:
        raise TimeParseError("is out of range once converted to UTC") from None


def is_future(value: datetime) -> bool:
    """Whether a client's valid time lies in the future, allowing for clock skew."""
    return value > datetime.now(UTC) + CLOCK_SKEW


def is_today(value: str, now: datetime) -> bool:
    """Whether a query's time is the bare date of `now`'s day in UTC, which means now."""
    return value.strip() == now.astimezone(UTC).date().isoformat()


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
