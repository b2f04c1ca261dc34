"""Periods ``[start, end)`` on event time: calendar periods in a time zone, rolling windows, ranges."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

from core.errors import PeriodError

ROLLING = {"1d": 1, "7d": 7, "30d": 30, "90d": 90}
CALENDAR = ("day", "week", "month", "quarter", "year")
WINDOWS = (*ROLLING, *CALENDAR)
FORMATS = "2025, 2025-Q1, 2025-03, 2025-W07, 2025-03-14 or START/END in RFC 3339"

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_YEAR = re.compile(r"^(\d{4})$")
_QUARTER = re.compile(r"^(\d{4})-Q([1-4])$")
_MONTH = re.compile(r"^(\d{4})-(\d{2})$")
_WEEK = re.compile(r"^(\d{4})-W(\d{2})$")
_DAY = re.compile(r"^(\d{4})-(\d{2})-(\d{2})$")


@dataclass(frozen=True)
class Period:
    """A half-open interval of event time, in epoch microseconds, with the text it came from."""

    label: str
    start_us: int
    end_us: int

    @property
    def start(self) -> datetime:
        return from_us(self.start_us)

    @property
    def end(self) -> datetime:
        return from_us(self.end_us)


def to_us(t: datetime) -> int:
    delta = t - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def from_us(us: int) -> datetime:
    return _EPOCH + timedelta(microseconds=us)


def _local(d: date, tz: ZoneInfo) -> int:
    return to_us(datetime(d.year, d.month, d.day, tzinfo=tz))


def _next_month(year: int, month: int) -> date:
    return date(year + 1, 1, 1) if month == 12 else date(year, month + 1, 1)


def parse_period(text: str, tz: ZoneInfo) -> Period:
    """Parse one of :data:`FORMATS`; calendar periods start and end at midnight in ``tz``."""
    s = text.strip()
    try:
        if m := _YEAR.match(s):
            y = int(m.group(1))
            return Period(s, _local(date(y, 1, 1), tz), _local(date(y + 1, 1, 1), tz))
        if m := _QUARTER.match(s):
            y, q = int(m.group(1)), int(m.group(2))
            first = 3 * (q - 1) + 1
            return Period(s, _local(date(y, first, 1), tz), _local(_next_month(y, first + 2), tz))
        if m := _MONTH.match(s):
            y, mo = int(m.group(1)), int(m.group(2))
            return Period(s, _local(date(y, mo, 1), tz), _local(_next_month(y, mo), tz))
        if m := _WEEK.match(s):
            monday = date.fromisocalendar(int(m.group(1)), int(m.group(2)), 1)
            return Period(s, _local(monday, tz), _local(monday + timedelta(days=7), tz))
        if m := _DAY.match(s):
            d = date(int(m.group(1)), int(m.group(2)), int(m.group(3)))
            return Period(s, _local(d, tz), _local(d + timedelta(days=1), tz))
        if "/" in s:
            return _range(s)
    except ValueError as exc:
        raise PeriodError(f"period {text!r}: {exc}; use {FORMATS}") from exc
    raise PeriodError(f"period {text!r} is not one of {FORMATS}")


def _range(s: str) -> Period:
    left, _, right = s.partition("/")
    start, end = (datetime.fromisoformat(x.strip().replace("Z", "+00:00")) for x in (left, right))
    if start.tzinfo is None or end.tzinfo is None:
        raise ValueError("START and END need an offset, e.g. 2025-01-01T00:00:00Z")
    if end <= start:
        raise ValueError("END must be after START")
    return Period(s, to_us(start), to_us(end))


def calendar_start(kind: str, now_us: int, tz: ZoneInfo) -> int:
    """Start of the calendar ``kind`` (day, week, month, quarter, year) that contains ``now_us``."""
    today = from_us(now_us).astimezone(tz).date()
    if kind == "day":
        first = today
    elif kind == "week":
        first = today - timedelta(days=today.weekday())
    elif kind == "month":
        first = today.replace(day=1)
    elif kind == "quarter":
        first = date(today.year, 3 * ((today.month - 1) // 3) + 1, 1)
    elif kind == "year":
        first = date(today.year, 1, 1)
    else:
        raise PeriodError(f"calendar period {kind!r} is not one of {', '.join(CALENDAR)}")
    return _local(first, tz)


def window(name: str, now_us: int, tz: ZoneInfo) -> Period:
    """The window ``name`` of :data:`WINDOWS` ending at ``now_us`` (calendar windows: period to date)."""
    if name in ROLLING:
        return Period(name, now_us - ROLLING[name] * 86_400_000_000, now_us)
    if name in CALENDAR:
        return Period(name, calendar_start(name, now_us, tz), now_us)
    raise PeriodError(f"window {name!r} is not one of {', '.join(WINDOWS)}")
