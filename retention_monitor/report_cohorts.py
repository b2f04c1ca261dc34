"""The report's cohort section: the monthly cohorts of the 12 months up to the period's end, as they stood at
its end — customer and revenue retention tables shaded by value, and the customer retention curves.

Read through the cohort query (``GET /cohorts``, :mod:`metrics.cohorts`) with ``as_of`` the period's end, so
the section of a past period does not change with what happened after it.
"""

from __future__ import annotations

import html
import io
import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol
from zoneinfo import ZoneInfo

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.colors import LinearSegmentedColormap
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator, PercentFormatter

from core.periods import to_us
from metrics.cohort_grid import recent
from retention_monitor.cohorts_cli import HIGH, LOW, shade_rgb
from retention_monitor.report_plots import Plot
from retention_monitor.worker_http import get_json

MONTHS = 12
UNDEFINED = "—"
Table = Mapping[str, Any]  # a /cohorts answer


class CohortSource(Protocol):
    def cohorts(self, params: Mapping[str, str]) -> dict[str, Any]: ...


class HttpCohorts:
    """The cohort query of a running worker."""

    def __init__(self, url: str) -> None:
        self.url = url

    def cohorts(self, params: Mapping[str, str]) -> dict[str, Any]:
        return get_json(self.url, "/cohorts", dict(params), 30.0)


@dataclass(frozen=True)
class Cohorts:
    customers: Table | None  # None: not available for this segment (see ``note``)
    revenue: Table | None
    plot: Plot | None
    note: str


def collect_cohorts(source: CohortSource, answer: Mapping[str, Any], segment: str) -> Cohorts:
    """The section for the period of the KPI ``answer`` (its end and the worker's time zone)."""
    if segment.startswith("abc:"):
        return Cohorts(None, None, None, "Cohorts are by sign-up segment: not shown for an ABC class.")
    end = answer["period"]["end"]
    last_instant = to_us(datetime.fromisoformat(end)) - 1
    tz = ZoneInfo(str(answer.get("timezone", "UTC")))
    params = {"by": "month", "from": recent("month", last_instant, tz, MONTHS - 1),
              "to": recent("month", last_instant, tz, 0), "segment": segment, "as_of": end}
    customers = source.cohorts({**params, "kind": "customers"})
    revenue = source.cohorts({**params, "kind": "revenue"})
    note = (f"Monthly cohorts by sign-up segment {segment}, as they stood at {end}. Cell: the share of the cohort "
            "active at the end of that month of age (revenue: its net revenue in that month over its sign-up "
            "month's); * the month was still running; — undefined (no customers, or no revenue in age 0).")
    return Cohorts(customers, revenue, curves(customers), note)


def _cells(table: Table) -> list[tuple[str, int, list[Mapping[str, Any]]]]:
    return [(str(row["cohort"]), int(row["customers"]), list(row["ages"])) for row in table["cohorts"]]


def curves(table: Table) -> Plot:
    """Customer retention by age, one line per cohort: older cohorts lighter, the newest darkest."""
    fig = Figure(figsize=(6.4, 3.1), dpi=100, layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    ax.set_title("Customer retention by cohort and age (months)", loc="left", fontsize=11)
    ax.grid(axis="y", alpha=0.3)
    ramp = LinearSegmentedColormap.from_list("cohorts", [tuple(c / 255 for c in LOW), tuple(c / 255 for c in HIGH)])
    rows = [(label, ages) for label, size, ages in _cells(table) if size]
    for i, (label, ages) in enumerate(rows):
        values = [math.nan if a["value"] is None else float(a["value"]) for a in ages]
        ax.plot(range(len(values)), values, marker=".", color=ramp(0.25 + 0.75 * (i + 1) / len(rows)), label=label)
    ax.set_ylim(0, 1.05)
    ax.yaxis.set_major_formatter(PercentFormatter(1.0))
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    if rows:
        fig.legend(loc="outside right upper", fontsize=7, frameon=False)
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return Plot("cohorts", "Customer retention by cohort and age", buf.getvalue())


def _text(cell: Mapping[str, Any]) -> str:
    value = cell["value"]
    return UNDEFINED if value is None else f"{100 * value:.1f} %" + ("*" if cell["provisional"] else "")


def _width(table: Table) -> int:
    return max((len(ages) for _, _, ages in _cells(table)), default=0)


def table_html(title: str, table: Table) -> str:
    """One row per cohort, one column per age; each cell's background shaded by its value."""
    e = html.escape
    head = "".join(f"<th>{k}</th>" for k in range(_width(table)))
    body = []
    for label, size, ages in _cells(table):
        cells = []
        for cell in ages:
            r, g, b = shade_rgb(cell["value"])
            ink = "#fff" if cell["value"] is not None and min(max(cell["value"], 0), 1) > 0.55 else "#222"
            cells.append(f'<td style="background:rgb({r},{g},{b});color:{ink}">{e(_text(cell))}</td>')
        body.append(f"<tr><td>{e(label)}</td><td>{size:,}</td>{''.join(cells)}</tr>")
    return (f"<h3>{e(title)}</h3><table class=\"cohorts\"><thead><tr><th>cohort</th><th>customers</th>{head}"
            f"</tr></thead><tbody>{''.join(body)}</tbody></table>")


def table_markdown(title: str, table: Table) -> list[str]:
    header = ["cohort", "customers", *(f"age {k}" for k in range(_width(table)))]
    lines = [f"### {title}", "", "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for label, size, ages in _cells(table):
        lines.append("| " + " | ".join([label, f"{size:,}", *(_text(c) for c in ages)]) + " |")
    return [*lines, ""]


TITLES = ("Customer retention", "Revenue retention (net revenue in the month / in the sign-up month)")
