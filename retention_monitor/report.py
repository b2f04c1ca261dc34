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
from retention_monitor.report_cohorts import CohortSource, HttpCohorts, collect_cohorts
from retention_monitor.report_model import Report
from retention_monitor.report_plots import PLOT_COUNT, render
from retention_monitor.report_render import write

DOC_FORMATS = ("md", "html")
ABC_SEGMENTS = ("abc:A", "abc:B", "abc:C")
Answer = Mapping[str, Any]
Step = Callable[[str, int, int], None]  # what is being done, steps done, steps in all


class KpiSource(Protocol):
    def answer(self, period: str, segment: str) -> dict[str, Any]: ...


class HttpSource:
    """The KPI query of a running worker."""

    def __init__(self, url: str, headers: Mapping[str, str] | None = None) -> None:
        self.url = url
        self.headers = headers

    def answer(self, period: str, segment: str) -> dict[str, Any]:
        return fetch_kpis(self.url, period, segment, headers=self.headers)


def collect(source: KpiSource, label: str, segment: str = "all", currency: str = "EUR", *,
            trend: bool = True, step: Step | None = None, cohorts: CohortSource | None = None) -> Report:
    """Ask ``source`` for the period, its comparison periods and (``trend``) the sub-periods, and plot;
    with ``cohorts``, the cohort section too (with the trends: it is a table and a plot)."""
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
        if cohorts is not None:
            if step:
                step("cohorts", done, total)
            report.cohorts = collect_cohorts(cohorts, a, segment)
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
    source = HttpSource(args.url or base_url(settings), settings.web.auth_header)
    err = Console(stderr=True)
    # Only on a terminal: elsewhere a progress display would just add blank lines to stderr.
    with Progress(console=err, transient=True, disable=not err.is_terminal) as progress:
        task = progress.add_task("report", total=None)
        report = collect(source, args.period, args.segment, settings.currency, trend=not args.json,
                         cohorts=None if args.json else HttpCohorts(source.url),
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
