"""Range presets in the site's time zone: boundaries, intervals, DST days of 23 and 25 hours, custom
ranges and their limits. Pure: no database."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest

from pentad.apps.analytics.query import resolve_range
from pentad.core.errors import BadRequest

NOW = datetime(2026, 3, 29, 10, 30, tzinfo=UTC)  # Europe/Berlin switches to summer time this night


def test_presets_end_tomorrow_at_local_midnight() -> None:
    day = resolve_range("day", "Europe/Berlin", now=NOW)
    assert (day.start.isoformat(), day.end.isoformat()) == (
        "2026-03-29T00:00:00+01:00",
        "2026-03-30T00:00:00+02:00",
    )
    assert day.interval == "hour"
    assert len(day.buckets()) == 23  # the night the clocks go forward
    assert day.end_ms - day.start_ms == 23 * 3_600_000

    week = resolve_range("7d", "UTC", now=NOW)
    assert (week.start.date(), week.end.date(), week.interval) == (
        date(2026, 3, 23),
        date(2026, 3, 30),
        "day",
    )
    assert len(week.buckets()) == 7
    month = resolve_range("month", "UTC", now=NOW)
    assert (month.start.date(), len(month.buckets())) == (date(2026, 3, 1), 29)
    year = resolve_range("12mo", "America/New_York", now=NOW)
    assert (year.start.date(), year.interval, len(year.buckets())) == (date(2025, 4, 1), "month", 12)
    half = resolve_range("6mo", "UTC", now=datetime(2026, 1, 15, tzinfo=UTC))
    assert half.start.date() == date(2025, 8, 1)


def test_the_local_day_differs_from_the_utc_day() -> None:
    late = datetime(2026, 7, 1, 23, 30, tzinfo=UTC)
    assert resolve_range("day", "Asia/Tokyo", now=late).start.date() == date(2026, 7, 2)
    assert resolve_range("day", "America/Los_Angeles", now=late).start.date() == date(2026, 7, 1)


def test_autumn_day_has_25_hours() -> None:
    autumn = resolve_range("custom", "Europe/Berlin", start=date(2026, 10, 25), end=date(2026, 10, 25))
    assert autumn.interval == "hour"
    assert len(autumn.buckets()) == 25
    assert autumn.end - autumn.start == timedelta(hours=24)  # wall clock; 25 real hours
    assert autumn.end_ms - autumn.start_ms == 25 * 3_600_000


def test_custom_ranges_are_checked() -> None:
    span = resolve_range("custom", "UTC", start=date(2026, 1, 1), end=date(2026, 1, 31))
    assert (span.interval, len(span.buckets())) == ("day", 31)
    for start, end in [
        (None, date(2026, 1, 1)),
        (date(2026, 2, 1), date(2026, 1, 1)),
        (date(2020, 1, 1), date(2026, 1, 1)),
        (date(1, 1, 1), date(1, 1, 1)),  # date arithmetic would overflow: a 400, never a 500
        (date(9999, 12, 31), date(9999, 12, 31)),
    ]:
        with pytest.raises(BadRequest):
            resolve_range("custom", "UTC", start=start, end=end)
    with pytest.raises(BadRequest):
        resolve_range("fortnight", "UTC")
