"""``retention-monitor at-risk``: the customers at risk now (for win-back), from any running worker."""

from __future__ import annotations

import argparse
import json
from collections.abc import Mapping
from typing import Any

from rich.console import Console
from rich.table import Table

from core.config import LoadedSettings
from retention_monitor.worker_http import get_json

CLASSES = ("A", "B", "C", "none")
MAX_LIMIT = 10_000  # as /at-risk allows


def add_parser(sub: Any) -> None:
    p = sub.add_parser("at-risk", help="customers at risk now, with score and reasons (for win-back)",
                       description="The customers a worker's at-risk scoring flags now (docs/at-risk.md), highest "
                       "score first, from GET /at-risk of any worker.")
    p.add_argument("--class", dest="abc_class", choices=CLASSES, help="only this ABC class (none: not ranked yet)")
    p.add_argument("--limit", type=_bounded("--limit", 1, MAX_LIMIT), default=50, metavar="N",
                   help="at most N rows (default: 50)")
    p.add_argument("--min-score", type=_bounded("--min-score", 0, 100), default=0, metavar="S",
                   help="only scores >= S (default: 0, everyone at risk)")
    p.add_argument("--url", help="worker base URL (default: http://web_host:web_port)")
    p.add_argument("--json", action="store_true", help="print the raw JSON answer")


def _bounded(name: str, low: int, high: int) -> Any:
    def parse(text: str) -> int:
        if not text.isdigit() or not low <= int(text) <= high:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number {low}-{high}")
        return int(text)

    parse.__name__ = name  # argparse names the type in "invalid <name> value" messages
    return parse


def fetch(url: str, abc_class: str | None, limit: int, min_score: int, timeout: float = 10.0, *,
          headers: Mapping[str, str] | None = None) -> dict[str, Any]:
    """``GET {url}/at-risk``; raises :class:`QueryError` with a one-line reason."""
    params: dict[str, Any] = {"limit": limit, "min_score": min_score}
    if abc_class:
        params["class"] = abc_class
    return get_json(url, "/at-risk", params, timeout, headers)


def table(answer: dict[str, Any]) -> Table:
    """The answer as a table: one row per customer, one line per reason."""
    counts = answer["counts"]
    shown = len(answer["customers"])
    where = f"class {answer['class']}, " if answer["class"] else ""
    t = Table(title=f"customers at risk: {answer['total']} ({where}score >= {answer['min_score']}; showing {shown})",
              caption="at risk per class: " + ", ".join(f"{c} {counts.get(c, 0)}" for c in CLASSES))
    for col, justify in (("customer", "left"), ("score", "right"), ("class", "center"), ("reasons", "left"),
                         ("at risk since", "left")):
        t.add_column(col, justify=justify)  # type: ignore[arg-type]
    for c in answer["customers"]:
        reasons = "\n".join(f"{r['code']} (+{r['weight']}): {r['detail']}" for r in c["reasons"])
        t.add_row(c["customer_id"], str(c["score"]), c["abc_class"] or "none", reasons, c["since"] or "")
    return t


def at_risk(args: argparse.Namespace, loaded: LoadedSettings, console: Console) -> int:
    settings = loaded.settings
    url = args.url or f"http://{settings.web_host}:{settings.web_port}"
    answer = fetch(url, args.abc_class, args.limit, args.min_score, headers=settings.web.auth_header)
    if args.json:
        console.print_json(json.dumps(answer))
    else:
        console.print(table(answer))
    return 0
