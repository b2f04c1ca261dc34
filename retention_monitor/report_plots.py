"""Trend plots of a report: PNGs drawn with matplotlib's Agg canvas from KPI query answers.

Figures are built without pyplot, so nothing touches matplotlib's global backend or figure
registry (a report can be built inside another program, or twice in one test session).
Undefined values (``null``) are gaps in the lines, never zeros.
"""

from __future__ import annotations

import io
import math
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator, PercentFormatter

Answer = Mapping[str, Any]
_SIZE, _DPI = (6.4, 3.1), 100
_COLOURS = {"good": "#2a9d8f", "bad": "#e76f51", "main": "#264653", "second": "#e9c46a", "third": "#8d99ae"}
_CATEGORY_COLOURS = ("#264653", "#2a9d8f", "#e9c46a", "#f4a261", "#e76f51", "#8d99ae", "#6d597a", "#b5838d")


@dataclass(frozen=True)
class Plot:
    name: str  # file-name part: report-2025-Q1-<name>.png
    title: str
    png: bytes


def value(answer: Answer, *path: str) -> float | None:
    """The number at ``path`` in a KPI answer; ``None`` when it is undefined or absent."""
    node: Any = answer
    for key in path:
        if not isinstance(node, Mapping) or key not in node:
            return None
        node = node[key]
    return float(node) if isinstance(node, int | float) and not isinstance(node, bool) else None


def tick_labels(labels: Sequence[str]) -> list[str]:
    """Short axis labels for trend sub-periods (months, days or ``START/END`` slices)."""
    out = []
    for i, label in enumerate(labels):
        if len(label) == 7:  # 2025-03
            d = date.fromisoformat(label + "-01")
            out.append(d.strftime("%b") + (f"\n{d.year}" if i == 0 or d.month == 1 else ""))
        elif len(label) == 10:  # 2025-03-14
            d = date.fromisoformat(label)
            out.append(f"{d.day}" + (d.strftime("\n%b") if i == 0 or d.day == 1 else ""))
        else:
            start, end = (datetime.fromisoformat(x.replace("Z", "+00:00")) for x in label.split("/"))
            # Hours of a day read "14" (24 of "14:00" would overlap); finer slices need the minutes.
            whole_hours = (end - start) % timedelta(hours=1) == timedelta(0)
            form = ("%H" if whole_hours else "%H:%M") if end - start < timedelta(days=1) else "%m-%d"
            out.append(start.strftime(form) + (start.strftime("\n%b %d") if i == 0 else ""))
    return out


class _Trend:
    """The sub-periods' answers, read as plot series (``nan`` where a value is undefined)."""

    def __init__(self, trend: Sequence[tuple[str, Answer]], currency: str) -> None:
        self.answers = [a for _, a in trend]
        self.x = range(len(trend))
        self.currency = currency

    def __call__(self, *path: str) -> list[float]:
        return [math.nan if (v := value(a, *path)) is None else v for a in self.answers]


def _rates(ax: Axes, t: _Trend) -> None:
    ax.plot(t.x, t("kpis", "retention_rate"), marker="o", color=_COLOURS["good"], label="retention rate")
    ax.plot(t.x, t("kpis", "churn_rate"), marker="o", color=_COLOURS["bad"], label="churn rate")
    ax.yaxis.set_major_formatter(PercentFormatter(1.0))


def _customers(ax: Axes, t: _Trend) -> None:
    ax.bar(t.x, t("inputs", "N"), color=_COLOURS["good"], label="new")
    ax.bar(t.x, [-v for v in t("inputs", "L")], color=_COLOURS["bad"], label="lost (down)")
    ax.axhline(0, color="black", linewidth=0.6)
    right = ax.twinx()
    right.plot(t.x, t("inputs", "E"), marker=".", color=_COLOURS["main"], label="active at end")
    right.set_ylim(0, right.get_ylim()[1] * 1.1)


def _satisfaction(ax: Axes, t: _Trend) -> None:
    ax.plot(t.x, t("kpis", "nps"), marker="o", color=_COLOURS["main"], label="NPS")
    ax.set_ylim(-100, 100)
    right = ax.twinx()
    right.plot(t.x, t("kpis", "csat"), marker="s", color=_COLOURS["second"], label="CSAT")
    right.set_ylim(0, 1)
    right.yaxis.set_major_formatter(PercentFormatter(1.0))


def _revenue(ax: Axes, t: _Trend) -> None:
    ax.bar(t.x, t("kpis", "net_revenue"), color=_COLOURS["main"])
    ax.set_ylabel(t.currency)


def _complaints(ax: Axes, t: _Trend) -> None:
    by_category = [a.get("kpis", {}).get("complaints_by_category") or {} for a in t.answers]
    categories = sorted({c for counts in by_category for c in counts})
    bottom = [0.0] * len(by_category)
    for i, category in enumerate(categories):
        counts = [float(c.get(category, 0)) for c in by_category]
        ax.bar(t.x, counts, bottom=bottom, color=_CATEGORY_COLOURS[i % len(_CATEGORY_COLOURS)], label=category)
        bottom = [b + c for b, c in zip(bottom, counts, strict=True)]
    # Stacked bars stick to their bottoms, so matplotlib would leave the tallest touching the frame.
    ax.set_ylim(0, max(bottom, default=0) * 1.1 + 0.5)
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))


def _first_response(ax: Axes, t: _Trend) -> None:
    ax.plot(t.x, [v / 3600 for v in t("kpis", "first_response_seconds", "p90")], marker="o", color=_COLOURS["third"])
    ax.set_ylabel("hours")
    ax.set_ylim(bottom=0)


_PLOTS: tuple[tuple[str, str, Callable[[Axes, _Trend], None]], ...] = (
    ("retention", "Retention and churn rate", _rates),
    ("customers", "Customers: new, lost and active at the end", _customers),
    ("satisfaction", "NPS (left) and CSAT (right)", _satisfaction),
    ("revenue", "Net revenue", _revenue),
    ("complaints", "Complaints by category", _complaints),
    ("first-response", "First response time, p90", _first_response),
)
PLOT_COUNT = len(_PLOTS)


def render(trend: Sequence[tuple[str, Answer]], currency: str) -> Iterator[Plot]:
    """The :data:`PLOT_COUNT` trend plots, one at a time (each takes a moment: show progress)."""
    labels = tick_labels([label for label, _ in trend])
    data = _Trend(trend, currency)
    step = max(1, math.ceil(len(labels) / 12))  # at most ~12 tick labels, or they overlap
    for name, title, draw in _PLOTS:
        fig = Figure(figsize=_SIZE, dpi=_DPI, layout="constrained")
        FigureCanvasAgg(fig)
        ax = fig.add_subplot()
        ax.set_title(title, loc="left", fontsize=11)
        ax.grid(axis="y", alpha=0.3)
        draw(ax, data)
        handles = [h for axes in fig.axes for h in axes.get_legend_handles_labels()[0]]
        if handles:  # beside the axes, where it hides no data
            fig.legend(handles=handles, loc="outside right upper", fontsize=8, frameon=False)
        ax.set_xticks(list(data.x)[::step], labels[::step], fontsize=8)
        buf = io.BytesIO()
        fig.savefig(buf, format="png")
        yield Plot(name, title, buf.getvalue())
