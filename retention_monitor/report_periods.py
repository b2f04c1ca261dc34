"""Which periods a report compares, and how a KPI changes between two of them.

Design notes: docs/architecture.md, "retention_monitor/report_periods.py".
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from itertools import pairwise

from core.errors import PeriodError

FORMATS = "2025, 2025-Q1, 2025-03, 2025-W07, 2025-03-14 or START/END in RFC 3339"
KINDS = ("year", "quarter", "month", "week", "day", "range")
TREND_SLICES = 12  # sub-periods of a START/END range in the trend plots

_PATTERNS = {
    "year": re.compile(r"^(\d{4})$"),
    "quarter": re.compile(r"^(\d{4})-Q(\d)$"),
    "month": re.compile(r"^(\d{4})-(\d{2})$"),
    "week": re.compile(r"^(\d{4})-W(\d{2})$"),
    "day": re.compile(r"^(\d{4})-(\d{2})-(\d{2})$"),
}


@dataclass(frozen=True)
class Change:
    """Current minus other, and that relative to |other|; ``None`` where undefined."""

    absolute: float | None
    relative: float | None


def change(current: float | None, other: float | None) -> Change:
    """The change from ``other`` to ``current``: undefined when either is, relative undefined at 0.

    The relative change divides by |other| so that its sign is the direction of the move even for
    negative bases such as an NPS of -20.
    """
    if current is None or other is None:
        return Change(None, None)
    diff = current - other
    return Change(diff, diff / abs(other) if other else None)


def kind(label: str) -> str:
    """The kind of a period label (one of :data:`KINDS`); a :class:`PeriodError` names a bad one."""
    try:
        return _parse(label)[0]
    except ValueError as exc:
        raise PeriodError(f"period {label!r}: {exc}; use {FORMATS}") from exc


def previous(label: str) -> str:
    k, v = _checked(label)
    if k == "year":
        return f"{v[0] - 1}"
    if k == "quarter":
        y, q = v
        return f"{y - 1}-Q4" if q == 1 else f"{y}-Q{q - 1}"
    if k == "month":
        y, m = v
        return f"{y - 1}-12" if m == 1 else f"{y}-{m - 1:02d}"
    if k == "week":
        return _week(date.fromisocalendar(v[0], v[1], 1) - timedelta(days=7))
    if k == "day":
        return (date(*v) - timedelta(days=1)).isoformat()
    start, end = _range(label)
    return _range_label(start - (end - start), start)


def year_earlier(label: str) -> str:
    k, v = _checked(label)
    if k == "year":
        return f"{v[0] - 1}"
    if k in ("quarter", "month"):
        return label.replace(f"{v[0]}-", f"{v[0] - 1}-", 1)
    if k == "week":
        y, w = v
        return f"{y - 1}-W{min(w, _weeks_in(y - 1)):02d}"
    if k == "day":
        return _back_a_year(date(*v)).isoformat()
    start, end = _range(label)
    moved = start.replace(year=start.year - 1, day=_back_a_year(start.date()).day)
    return _range_label(moved, moved + (end - start))


def trend(label: str, start: datetime, end: datetime) -> list[str]:
    """Sub-periods leading up to the end of ``label``, oldest first, for the trend plots.

    Year and quarter: the 12 months ending with its last month; month and week: its days; day:
    its hours (23 or 25 on a DST change); a range: :data:`TREND_SLICES` equal slices. ``start`` and
    ``end`` are the period's instants as the KPI query answered them (they carry its time zone).
    """
    k, v = _checked(label)
    if k in ("year", "quarter"):
        y, last = (v[0], 12) if k == "year" else (v[0], 3 * v[1])
        months = [(y * 12 + last - 1 - back) for back in range(11, -1, -1)]
        return [f"{n // 12}-{n % 12 + 1:02d}" for n in months]
    if k in ("month", "week"):
        first = date(v[0], v[1], 1) if k == "month" else date.fromisocalendar(v[0], v[1], 1)
        after = date(v[0] + v[1] // 12, v[1] % 12 + 1, 1) if k == "month" else first + timedelta(days=7)
        return [(first + timedelta(days=i)).isoformat() for i in range((after - first).days)]
    if k == "day":
        hours = round((end - start).total_seconds() / 3600)
        bounds = [start + timedelta(hours=h) for h in range(hours + 1)]
    else:
        start, end = _range(label)
        step = (end - start) / TREND_SLICES
        bounds = [start + step * i for i in range(TREND_SLICES)] + [end]
    return [_range_label(a.astimezone(start.tzinfo), b.astimezone(start.tzinfo)) for a, b in pairwise(bounds)]


def _checked(label: str) -> tuple[str, tuple[int, ...]]:
    try:
        return _parse(label)
    except ValueError as exc:
        raise PeriodError(f"period {label!r}: {exc}; use {FORMATS}") from exc


def _parse(label: str) -> tuple[str, tuple[int, ...]]:
    """Kind and numbers of a label, checking that the period exists (``ValueError`` otherwise)."""
    for k, pattern in _PATTERNS.items():
        if m := pattern.match(label):
            v = tuple(int(g) for g in m.groups())
            if k == "quarter" and not 1 <= v[1] <= 4:
                raise ValueError("the quarter must be Q1 to Q4")
            if k == "month":
                date(v[0], v[1], 1)
            if k == "week":
                date.fromisocalendar(v[0], v[1], 1)
            if k == "day":
                date(*v)
            return k, v
    if "/" in label:
        _range(label)
        return "range", ()
    raise ValueError("not a known period format")


def _range(label: str) -> tuple[datetime, datetime]:
    left, _, right = label.partition("/")
    start, end = (datetime.fromisoformat(x.strip().replace("Z", "+00:00")) for x in (left, right))
    if start.tzinfo is None or end.tzinfo is None:
        raise ValueError("START and END need an offset, e.g. 2025-01-01T00:00:00Z")
    if end <= start:
        raise ValueError("END must be after START")
    return start, end


def _range_label(start: datetime, end: datetime) -> str:
    return f"{_stamp(start)}/{_stamp(end)}"


def _stamp(t: datetime) -> str:
    return t.isoformat().replace("+00:00", "Z")


def _week(d: date) -> str:
    y, w, _ = d.isocalendar()
    return f"{y}-W{w:02d}"


def _weeks_in(iso_year: int) -> int:
    # 28 December is always in the last ISO week of its year.
    return date(iso_year, 12, 28).isocalendar()[1]


def _back_a_year(d: date) -> date:
    return d.replace(year=d.year - 1, day=28) if (d.month, d.day) == (2, 29) else d.replace(year=d.year - 1)
