"""The one table a bench run prints, the targets verdict, and bench/out/results.json."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from bench.stats import Result, Target

LABELS = {
    "ceiling": "ceiling: aiokafka getmany + decode",
    "quix": "peer: Quix Streams app",
    "bytewax": "peer: Bytewax dataflow",
    "pathway": "peer: Pathway program",
    "monitor": "retention-monitor worker",
}
FELL_BEHIND_S = 5.0  # still draining this long after the last paced send: the rate was not sustained


def duration(seconds: float | None) -> str:
    if seconds is None:
        return "n/a"
    return f"{seconds * 1000:.1f} ms" if seconds < 1 else f"{seconds:.2f} s"


def mib(value: float | None) -> str:
    return "n/a" if value is None else f"{value / 2**20:,.0f} MiB"


def number(value: float | None, unit: str = "") -> str:
    return "n/a" if value is None else f"{value:,.0f}{unit}"


def latency(result: Result) -> str:
    if result.latency_p50_s is None and result.latency_p99_s is None:
        return "n/a"
    text = f"{duration(result.latency_p50_s)} / {duration(result.latency_p99_s)}"
    if result.latency_drain_s is not None and result.latency_drain_s > FELL_BEHIND_S:
        text += " (fell behind)"
    return text


def results_table(summary: dict[str, Result], rate: float | None, repeat: int) -> Table:
    title = f"same event file, one system at a time (medians of {repeat})" if repeat > 1 else "same event file"
    table = Table(title=title, title_justify="left")
    offered = f"at {rate:,.0f}/s" if rate else ""
    columns = ("system", "events", "events/s", "vs ceiling", "CPU µs/event", f"latency p50 / p99 {offered}",
               "peak RSS", "bytes/customer", "recovery")  # fmt: skip
    for name in columns:
        table.add_column(name, justify="left" if name == "system" else "right")
    ceiling = summary.get("ceiling")
    base = ceiling.events_per_s if ceiling else None
    for system, result in summary.items():
        ratio = f"{100 * result.events_per_s / base:.1f} %" if result.events_per_s and base else "n/a"
        label = LABELS.get(system, system) + ("" if result.status == "ok" else f" [red]({result.status})[/]")
        per_customer = number(result.bytes_per_customer, " B")
        recovery = duration(result.recovery_s) if result.recovery_s is not None else "—"
        if system == "ceiling":  # it keeps nothing per customer and has nothing to recover
            per_customer = "—"
        cpu = "n/a" if result.cpu_us_per_event is None else f"{result.cpu_us_per_event:,.1f}"
        table.add_row(label, number(result.events), number(result.events_per_s), ratio, cpu, latency(result),
                      mib(result.peak_rss_bytes), per_customer, recovery)  # fmt: skip
    return table


def targets_table(targets: list[Target]) -> Table:
    table = Table(title="targets (ratios within this run)", title_justify="left")
    for name in ("target", "goal", "measured", "verdict", "note"):
        table.add_column(name)
    colour = {"pass": "green", "fail": "red"}
    for t in targets:
        verdict = f"[{colour[t.verdict]}]{t.verdict}[/]" if t.verdict in colour else t.verdict
        table.add_row(t.name, t.goal, t.value, verdict, t.note)
    return table


def print_report(console: Console, summary: dict[str, Result], targets: list[Target], rate: float | None,
                 repeat: int) -> None:  # fmt: skip
    console.print(results_table(summary, rate, repeat))
    for result in summary.values():
        if result.state_disk_bytes is not None:
            console.print(f"[dim]· {result.system}: state on disk {mib(result.state_disk_bytes)} (not in RSS)[/]")
        for note in result.notes:
            console.print(f"[dim]· {note}[/]")
    console.print(targets_table(targets))


def write_results(path: Path, meta: dict[str, Any], runs: list[Result], summary: dict[str, Result],
                  targets: list[Target]) -> None:  # fmt: skip
    payload = {
        **meta,
        "runs": [asdict(r) for r in runs],
        "summary": {name: asdict(r) for name, r in summary.items()},
        "targets": [asdict(t) for t in targets],
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(payload, indent=1))
