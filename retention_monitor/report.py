"""``retention-monitor report``: one period's KPIs against the previous period and a year earlier.

The data comes from a :class:`KpiSource` — a running worker over HTTP in the CLI, the pure
pipeline in tests — through the KPI query only, so the report needs nothing but that JSON shape.
Periods are compared as :mod:`retention_monitor.report_periods` defines; trends are drawn by
:mod:`retention_monitor.report_plots` and the document written by :mod:`retention_monitor.report_render`.
"""

from __future__ import annotations

import argparse
import json
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol

from rich.console import Console
from rich.progress import Progress

from core.config import LoadedSettings
from core.errors import PeriodError
from metrics.segments import Segmenter
from retention_monitor import report_periods as periods
from retention_monitor.commands import base_url, fetch_kpis
from retention_monitor.exceptions import ReportError
from retention_monitor.report_periods import Change, change
from retention_monitor.report_plots import PLOT_COUNT, Plot, render, value
from retention_monitor.report_render import write

DOC_FORMATS = ("md", "html")
ABC_SEGMENTS = ("abc:A", "abc:B", "abc:C")
Answer = Mapping[str, Any]
Step = Callable[[str, int, int], None]  # what is being done, steps done, steps in all


class KpiSource(Protocol):
    def answer(self, period: str, segment: str) -> dict[str, Any]: ...


class HttpSource:
    """The KPI query of a running worker."""

    def __init__(self, url: str) -> None:
        self.url = url

    def answer(self, period: str, segment: str) -> dict[str, Any]:
        return fetch_kpis(self.url, period, segment)


@dataclass(frozen=True)
class Kpi:
    key: str
    title: str
    unit: str  # ratio, money, count, score, seconds, number
    path: tuple[str, ...]
    better: int  # +1: higher is better, -1: lower is better


def _k(key: str, title: str, unit: str, better: int, *path: str) -> Kpi:
    return Kpi(key, title, unit, path or ("kpis", key), better)


KPIS = (
    _k("retention_rate", "retention rate", "ratio", 1),
    _k("churn_rate", "churn rate", "ratio", -1),
    _k("winback_rate", "win-back rate", "ratio", 1),
    _k("customers_active_at_end", "active customers at end", "count", 1),
    _k("new_customers", "new customers (N)", "count", 1, "inputs", "N"),
    _k("lost_customers", "lost customers (L)", "count", -1, "inputs", "L"),
    _k("reactivated_customers", "won back (R)", "count", 1, "inputs", "R"),
    _k("repeat_purchase_rate", "repeat purchase rate", "ratio", 1),
    _k("repeat_purchase_rate_lifetime", "repeat purchase rate, lifetime", "ratio", 1),
    _k("refund_rate", "refund rate", "ratio", -1),
    _k("return_rate", "return rate", "ratio", -1),
    _k("refund_rate_by_amount", "refund rate by amount", "ratio", -1),
    _k("return_rate_by_amount", "return rate by amount", "ratio", -1),
    _k("net_revenue", "net revenue", "money", 1),
    _k("clv_historical_mean", "historical CLV (mean)", "money", 1),
    _k("clv_predicted_mean", "predicted CLV (mean)", "money", 1),
    _k("total_clv", "total CLV (ABC)", "money", 1, "abc", "total_clv"),
    _k("nps", "NPS", "score", 1),
    _k("csat", "CSAT", "ratio", 1),
    _k("feedback_response_rate", "feedback response rate", "ratio", 1),
    _k("first_response_p50", "first response p50", "seconds", -1, "kpis", "first_response_seconds", "p50"),
    _k("first_response_p90", "first response p90", "seconds", -1, "kpis", "first_response_seconds", "p90"),
    _k("resolution_p50", "resolution p50", "seconds", -1, "kpis", "resolution_seconds", "p50"),
    _k("resolution_p90", "resolution p90", "seconds", -1, "kpis", "resolution_seconds", "p90"),
    _k("tickets_awaiting_first_response", "tickets awaiting first response", "count", -1),
    _k("tickets_awaiting_resolution", "tickets awaiting resolution", "count", -1),
    _k("reopens", "reopened tickets", "count", -1),
    _k("complaints", "complaints", "count", -1),
    _k("complaints_per_1000_active", "complaints per 1,000 active", "number", -1),
    _k("sales_rep_retention_rate", "sales-team retention", "ratio", 1),
    _k("sales_team_size_ratio", "sales-team size ratio", "ratio", 1),
)


@dataclass(frozen=True)
class Row:
    kpi: Kpi
    current: float | None
    previous: float | None
    year_earlier: float | None

    @property
    def changes(self) -> tuple[Change, Change]:
        return change(self.current, self.previous), change(self.current, self.year_earlier)


@dataclass
class Report:
    segment: str
    currency: str
    answers: tuple[Answer, Answer, Answer]  # the period, the previous one, the one a year earlier
    trend: list[tuple[str, Answer]] = field(default_factory=list)
    plots: list[Plot] = field(default_factory=list)

    @property
    def labels(self) -> tuple[str, str, str]:
        a, b, c = (str(x["period"]["label"]) for x in self.answers)
        return a, b, c

    def rows(self) -> list[Row]:
        return [Row(k, *(value(a, *k.path) for a in self.answers)) for k in KPIS]

    def to_json(self) -> dict[str, Any]:
        """The KPI comparison table as data (``--json``)."""
        def pair(c: Change) -> dict[str, float | None]:
            return {"absolute": c.absolute, "relative": c.relative}

        return {
            "period": self.answers[0]["period"], "previous": self.answers[1]["period"],
            "year_earlier": self.answers[2]["period"], "segment": self.segment, "currency": self.currency,
            "kpis": [{"key": r.kpi.key, "title": r.kpi.title, "unit": r.kpi.unit, "better": r.kpi.better,
                      "value": r.current, "previous": r.previous, "year_earlier": r.year_earlier,
                      "change_previous": pair(r.changes[0]), "change_year_earlier": pair(r.changes[1])}
                     for r in self.rows()],
        }


def collect(source: KpiSource, label: str, segment: str = "all", currency: str = "EUR", *,
            trend: bool = True, step: Step | None = None) -> Report:
    """Ask ``source`` for the period, its comparison periods and (``trend``) the sub-periods, and plot."""
    periods.kind(label)  # a bad label fails here, before any query
    labels = (label, periods.previous(label), periods.year_earlier(label))
    total = len(set(labels)) + (PLOT_COUNT if trend else 0)
    done = 0

    def ask(what: str) -> dict[str, Any]:
        nonlocal done
        if step:
            step(f"KPIs {what}", done, total)
        done += 1
        return source.answer(what, segment)

    a, b = ask(labels[0]), ask(labels[1])
    c = b if labels[2] == labels[1] else ask(labels[2])  # for a year, the previous one is the year earlier
    report = Report(segment, currency, (a, b, c))
    if trend:
        bounds = (datetime.fromisoformat(a["period"][k]) for k in ("start", "end"))
        sub = periods.trend(label, *bounds)
        total += len(sub)
        report.trend = [(x, ask(x)) for x in sub]
        for plot in render(report.trend, currency):
            report.plots.append(plot)
            done += 1
            if step:
                step(f"plot {plot.name}", done, total)
    return report


# -- the command -------------------------------------------------------------------------------------


def check_segment(segment: str, dimensions: Mapping[str, Sequence[str]]) -> None:
    segmenter = Segmenter(dimensions)
    if not (segmenter.is_valid(segment) or segment in ABC_SEGMENTS):
        allowed = ", ".join([*segmenter.all_keys(), *ABC_SEGMENTS])
        raise PeriodError(f"segment {segment!r} is not one of {allowed}")


def report_command(args: argparse.Namespace, loaded: LoadedSettings, console: Console) -> int:
    settings = loaded.settings
    fmt_name = args.format or ("md" if str(args.output or "").endswith(".md") else "html")
    if fmt_name not in DOC_FORMATS:
        raise ReportError(f"--format {fmt_name!r} is not one of {', '.join(DOC_FORMATS)}")
    periods.kind(args.period)
    check_segment(args.segment, settings.segments)
    source = HttpSource(args.url or base_url(settings))
    err = Console(stderr=True)
    # Only on a terminal: elsewhere a progress display would just add blank lines to stderr.
    with Progress(console=err, transient=True, disable=not err.is_terminal) as progress:
        task = progress.add_task("report", total=None)
        report = collect(source, args.period, args.segment, settings.currency, trend=not args.json,
                         step=lambda what, done, total: progress.update(task, description=what, completed=done,
                                                                        total=total))
    if args.json:
        console.print_json(json.dumps(report.to_json()))
        return 0
    name = f"retention-report-{args.period}" + ("" if args.segment == "all" else f"-{args.segment}")
    path = Path(args.output or re.sub(r"[^A-Za-z0-9._-]", "_", name) + f".{fmt_name}")
    try:
        written = write(report, path, fmt_name)
    except OSError as exc:
        raise ReportError(f"--output {str(path)!r}: cannot write: {exc.strerror or exc}") from exc
    console.print(f"wrote {', '.join(map(str, written))}", highlight=False, soft_wrap=True)
    return 0
