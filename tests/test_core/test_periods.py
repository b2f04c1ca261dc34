"""Period parsing and windows: half-open, calendar periods in the configured time zone."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from core.errors import PeriodError
from core.periods import calendar_start, from_us, parse_period, to_us, window

BERLIN = ZoneInfo("Europe/Berlin")


@pytest.mark.parametrize(
    ("text", "start", "end"),
    [
        ("2025", "2025-01-01T00:00:00+00:00", "2026-01-01T00:00:00+00:00"),
        ("2025-Q1", "2025-01-01T00:00:00+00:00", "2025-04-01T00:00:00+00:00"),
        ("2025-Q4", "2025-10-01T00:00:00+00:00", "2026-01-01T00:00:00+00:00"),
        ("2024-02", "2024-02-01T00:00:00+00:00", "2024-03-01T00:00:00+00:00"),
        ("2025-W07", "2025-02-10T00:00:00+00:00", "2025-02-17T00:00:00+00:00"),
        ("2025-W01", "2024-12-30T00:00:00+00:00", "2025-01-06T00:00:00+00:00"),
        ("2025-03-14", "2025-03-14T00:00:00+00:00", "2025-03-15T00:00:00+00:00"),
        (
            "2025-03-14T12:00:00Z/2025-03-14T12:00:01.5Z",
            "2025-03-14T12:00:00+00:00",
            "2025-03-14T12:00:01.500000+00:00",
        ),
    ],
)
def test_parse_period_utc(text: str, start: str, end: str) -> None:
    p = parse_period(text, ZoneInfo("UTC"))
    assert (p.start.isoformat(), p.end.isoformat()) == (start, end)


def test_calendar_periods_follow_the_time_zone_including_dst() -> None:
    march = parse_period("2025-03", BERLIN)
    assert march.start == datetime(2025, 2, 28, 23, tzinfo=UTC)
    assert march.end == datetime(2025, 3, 31, 22, tzinfo=UTC)  # CEST from 30 March


BAD = [
    "2025-Q5", "2025-13", "2025-W54", "25-01", "2025-02-30", "last week",
    "2025-01-02T00:00:00Z/2025-01-01T00:00:00Z", "2025-01-01T00:00:00/2025-01-02T00:00:00",
]


@pytest.mark.parametrize("text", BAD)
def test_bad_periods_name_the_accepted_formats(text: str) -> None:
    with pytest.raises(PeriodError, match="2025-Q1"):
        parse_period(text, ZoneInfo("UTC"))


def test_windows() -> None:
    now = to_us(datetime(2025, 5, 15, 10, 30, tzinfo=UTC))  # a Thursday
    assert window("7d", now, ZoneInfo("UTC")).start == datetime(2025, 5, 8, 10, 30, tzinfo=UTC)
    assert from_us(calendar_start("week", now, ZoneInfo("UTC"))) == datetime(2025, 5, 12, tzinfo=UTC)
    assert from_us(calendar_start("quarter", now, ZoneInfo("UTC"))) == datetime(2025, 4, 1, tzinfo=UTC)
    assert window("year", now, ZoneInfo("UTC")).end_us == now
    with pytest.raises(PeriodError):
        window("fortnight", now, ZoneInfo("UTC"))
