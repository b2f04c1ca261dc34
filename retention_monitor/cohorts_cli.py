"""``retention-monitor cohorts``: a cohort retention table from any running worker, shaded by value."""

from __future__ import annotations

import argparse
import json
from collections.abc import Mapping
from typing import Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

from core.config import LoadedSettings
from metrics.cohort_grid import KINDS, UNITS
from retention_monitor.worker_http import get_json

# The shade of a cell: white at 0 % to deep green at 100 % (revenue retention above 100 % stays deepest).
LOW, HIGH = (250, 250, 250), (26, 127, 55)


def add_parser(sub: Any) -> None:
    p = sub.add_parser("cohorts", help="cohort retention: customers (or revenue) by sign-up period and age",
                       description="The share of each sign-up cohort active at the end of each age (or its net "
                       "revenue in each age against its first period), from GET /cohorts of any worker "
                       "(docs/contract/kpis.md, Cohorts). Cells of the current, unfinished period are marked *.")
    p.add_argument("--by", choices=list(UNITS), default="month", help="cohort period (default: month)")
    p.add_argument("--from", dest="first", required=True, metavar="PERIOD",
                   help="first cohort: 2025-01 (month), 2025-W07 (week) or 2025-Q1 (quarter)")
    p.add_argument("--to", dest="last", metavar="PERIOD", help="last cohort (default: up to the current period)")
    p.add_argument("--segment", default="all", help="sign-up segment: all or DIMENSION:VALUE (default: all)")
    p.add_argument("--kind", choices=KINDS, default="customers",
                   help="customers: share active; revenue: net revenue against age 0 (default: customers)")
    p.add_argument("--as-of", metavar="TIME", help="the table as it was at TIME (RFC 3339; default: the newest event)")
    p.add_argument("--url", help="worker base URL (default: http://web_host:web_port)")
    p.add_argument("--json", action="store_true", help="print the raw JSON answer")


def fetch(url: str, args: argparse.Namespace, headers: Mapping[str, str], timeout: float = 30.0) -> dict[str, Any]:
    """``GET {url}/cohorts``; raises :class:`QueryError` (or BadRequest) with a one-line reason."""
    params = {"by": args.by, "from": args.first, "segment": args.segment, "kind": args.kind}
    params |= {name: value for name, value in (("to", args.last), ("as_of", args.as_of)) if value}
    return get_json(url, "/cohorts", params, timeout, headers)


def recent(url: str, year: int, month: int, months: int, headers: Mapping[str, str]) -> dict[str, Any]:
    """The monthly customer cohorts of the ``months`` months up to ``year-month`` (the demo's summary)."""
    index = year * 12 + month - 1 - (months - 1)
    first = f"{index // 12}-{index % 12 + 1:02d}"
    return get_json(url, "/cohorts", {"by": "month", "from": first, "segment": "all", "kind": "customers"}, 30.0,
                    headers)


def shade_rgb(value: float | None) -> tuple[int, int, int]:
    """The background of a share: the higher, the greener (white when undefined)."""
    x = 0.0 if value is None else min(max(value, 0.0), 1.0)
    r, g, b = (round(lo + (hi - lo) * x) for lo, hi in zip(LOW, HIGH, strict=True))
    return r, g, b


def shade(value: float | None) -> str:
    """A rich style for a share's cell: its background, and ink that stays readable on it."""
    if value is None:
        return ""
    r, g, b = shade_rgb(value)
    return f"{'white' if min(max(value, 0.0), 1.0) > 0.55 else 'black'} on rgb({r},{g},{b})"


def table(answer: dict[str, Any]) -> Table:
    """One row per cohort, one column per age; a cell is the share (numerator below it in --json)."""
    rows = answer["cohorts"]
    ages = max((len(row["ages"]) for row in rows), default=0)
    what = "share of customers active" if answer["kind"] == "customers" else "net revenue retained"
    t = Table(title=f"cohorts by {answer['by']}: {what}  segment={answer['segment']}  "
                    f"as of {answer['as_of']} ({answer.get('timezone', 'UTC')})",
              caption="* provisional: the age still running; empty: no customers or no revenue in age 0")
    t.add_column("cohort")
    t.add_column("customers", justify="right")
    for k in range(ages):
        t.add_column(f"age {k}", justify="right")
    for row in rows:
        cells: list[Text | str] = [row["cohort"] + ("*" if row["provisional"] else ""), str(row["customers"])]
        for cell in row["ages"]:
            value = cell["value"]
            text = "" if value is None else f"{100 * value:.1f} %" + ("*" if cell["provisional"] else "")
            cells.append(Text(text, style=shade(value)))
        t.add_row(*cells)
    return t


def cohorts(args: argparse.Namespace, loaded: LoadedSettings, console: Console) -> int:
    settings = loaded.settings
    url = args.url or f"http://{settings.web_host}:{settings.web_port}"
    answer = fetch(url, args, settings.web.auth_header)
    if args.json:
        console.print_json(json.dumps(answer))
    else:
        console.print(table(answer))
    return 0
