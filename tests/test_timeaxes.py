"""Client times: every RFC 3339 rendering of an instant reads back as that instant in UTC."""

from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shared.timeaxes import TimeParseError, format_instant, parse_instant

offsets = st.integers(min_value=-(24 * 60 - 1), max_value=24 * 60 - 1).map(
    lambda minutes: timezone(timedelta(minutes=minutes))
)
instants = st.datetimes(
    min_value=datetime(1900, 1, 1), max_value=datetime(2100, 1, 1), timezones=offsets
)


@given(instants, st.sampled_from(["seconds", "milliseconds", "microseconds"]))
def test_an_rfc_3339_date_time_reads_back_as_its_instant(instant: datetime, spec: str) -> None:
    text = instant.isoformat(timespec=spec)
    parsed = parse_instant(text)
    kept = instant.replace(microsecond=instant.microsecond // 1000 * 1000)
    expected = {"seconds": instant.replace(microsecond=0), "milliseconds": kept}.get(spec, instant)
    assert parsed == expected
    if text.endswith("+00:00"):
        assert parse_instant(text.removesuffix("+00:00") + "Z") == parsed
    assert parsed.tzinfo is UTC
    assert parse_instant(format_instant(parsed)) == parsed


def test_a_date_alone_is_told_apart_from_a_date_that_does_not_exist() -> None:
    with pytest.raises(TimeParseError, match="is a date alone"):
        parse_instant("2024-01-06")
    with pytest.raises(TimeParseError, match="is not a valid date"):
        parse_instant("2024-13-01")
