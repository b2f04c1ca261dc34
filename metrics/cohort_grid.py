"""The calendar of a cohort table: cohort periods (ISO week, month, quarter) in a time zone.

A cohort table is laid on consecutive periods ``p_0, p_1, ... p_n-1`` of one unit, from the first
cohort's period to the one holding the table's instant (``as_of``). Cohort ``c`` is period ``p_c``;
its age ``k`` is period ``p_c+k``. Everything the stores need is the list of period starts in epoch µs
(:attr:`Grid.bounds`), computed here once, on the worker that plans the query, so every store cuts
time at the same instants whatever its own time zone setting.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from core.errors import PeriodError
from core.periods import from_us, to_us

UNITS = {"week": "2025-W07", "month": "2025-03", "quarter": "2025-Q1"}
KINDS = ("customers", "revenue")  # what a table shows: the share of customers active, or of revenue retained
MAX_PERIODS = 520  # ten years of weeks: a table (and its JSON) of at most ~135,000 cells
_PATTERNS = {"week": re.compile(r"^(\d{4})-W(\d{2})$"), "month": re.compile(r"^(\d{4})-(\d{2})$"),
             "quarter": re.compile(r"^(\d{4})-Q([1-4])$")}


def _first_day(by: str, label: str) -> date:
    """The first local day of the period ``label`` of unit ``by``."""
    if by not in _PATTERNS:
        raise PeriodError(f"cohort unit {by!r} is not one of {', '.join(UNITS)}")
    m = _PATTERNS[by].match(label.strip())
    if m is None:
        raise PeriodError(f"cohort period {label!r} is not a {by} like {UNITS[by]}")
    year, n = int(m.group(1)), int(m.group(2))
    try:
        if by == "week":
            return date.fromisocalendar(year, n, 1)
        return date(year, n if by == "month" else 3 * (n - 1) + 1, 1)
    except ValueError as exc:
        raise PeriodError(f"cohort period {label!r}: {exc}") from exc


def _shift(by: str, d: date, n: int = 1) -> date:
    """The start of the period ``n`` periods after (``n < 0``: before) the one starting on ``d``."""
    if by == "week":
        return d + timedelta(days=7 * n)
    month = d.month - 1 + n * (1 if by == "month" else 3)
    return date(d.year + month // 12, month % 12 + 1, 1)


def recent(by: str, as_of_us: int, tz: ZoneInfo, back: int) -> str:
    """The label of the period ``back`` periods before the one holding the instant ``as_of_us``."""
    day = from_us(as_of_us).astimezone(tz).date()
    if by == "week":
        start = day - timedelta(days=day.weekday())
    else:
        start = date(day.year, day.month if by == "month" else 3 * ((day.month - 1) // 3) + 1, 1)
    return label_of(by, _shift(by, start, -back))


def label_of(by: str, d: date) -> str:
    """The label of the period of unit ``by`` starting on ``d``."""
    if by == "week":
        year, week, _ = d.isocalendar()
        return f"{year}-W{week:02d}"
    if by == "month":
        return f"{d.year}-{d.month:02d}"
    return f"{d.year}-Q{(d.month - 1) // 3 + 1}"


@dataclass(frozen=True)
class Grid:
    """Periods ``p_0 .. p_n-1``; the first ``cohorts`` of them are the table's cohorts."""

    by: str
    labels: tuple[str, ...]
    bounds: tuple[int, ...]  # n + 1 instants: the start of each period, then the end of the last
    cohorts: int
    as_of_us: int

    @property
    def periods(self) -> int:
        return len(self.labels)


def grid(by: str, first: str, last: str | None, as_of_us: int, tz: ZoneInfo) -> Grid:
    """The grid of cohorts ``first`` .. ``last`` (labels of unit ``by``; ``None``: up to now) as seen at
    ``as_of_us``. Cohorts that start at or after ``as_of_us`` have no customers yet and are left out; ages
    run up to the period holding ``as_of_us`` (the current, provisional one)."""
    day = _first_day(by, first)
    end_day = date.max if last is None else _first_day(by, last)
    if end_day < day:
        raise PeriodError(f"cohort period to={last!r} is before from={first!r}")
    labels: list[str] = []
    bounds = [_local(day, tz)]
    cohorts = 0
    while bounds[-1] < as_of_us:
        if len(labels) == MAX_PERIODS:
            raise PeriodError(f"cohorts from {first!r} span more than {MAX_PERIODS} {by}s up to now; "
                              "use a later from= or a longer unit")
        if day <= end_day:
            cohorts += 1
        labels.append(label_of(by, day))
        day = _shift(by, day)
        bounds.append(_local(day, tz))
    return Grid(by, tuple(labels), tuple(bounds), cohorts, as_of_us)


def _local(d: date, tz: ZoneInfo) -> int:
    return to_us(datetime(d.year, d.month, d.day, tzinfo=tz))
