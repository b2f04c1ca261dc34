"""What the workers mode prints (one table, the targets) and writes (bench/out/workers.json)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from bench.report import duration, number, targets_table
from bench.stats import Target
from bench.workers_stats import Compared, ScaleResult, compare

COLUMNS = ("workers", "partitions owned", "events/s (share timed)", "CPU µs/event (all workers)", "CPU vs 1 worker",
           "RSS growth B/customer/worker mean / max", "memory vs 1 worker (max) / goal", "hand-over: own all",
           "exact again: first / every survivor", "exact across workers", "/kpis answer ms")  # fmt: skip


def _ratio(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2f} x"


def owned_cell(owned: Sequence[Sequence[int]]) -> str:
    """How many partitions each worker owned, e.g. ``2+2+2+2``."""
    return "+".join(str(len(parts)) for parts in owned) or "n/a"


def rate_cell(result: ScaleResult) -> str:
    """events/s and, when the first workers began before the last was ready, the share of the backlog timed."""
    share = result.timed_share
    shown = number(result.events_per_s)
    return shown if share is None or share >= 1 else f"{shown} ({100 * share:.0f} %)"


def row_cells(result: ScaleResult, compared: Compared) -> list[str]:
    """One line of the table: a cluster size and its ratios to one worker."""
    one = result.workers == 1
    growth = "n/a" if result.growth_max is None else f"{result.growth_mean:,.0f} / {result.growth_max:,.0f}"
    memory = "—" if one else f"{_ratio(compared.memory_ratio)} / ≤ {compared.memory_goal:.2f} x"
    hand = result.handover
    own = "—" if hand is None else duration(hand.owned_s)
    exact_again = "—" if hand is None else f"{duration(hand.first_exact_s)} / {duration(hand.all_exact_s)}"
    exact = {True: "yes", False: "[red]no[/]", None: "n/a"}[result.exact]
    label = str(result.workers) + ("" if result.status == "ok" else f" [red]({result.status})[/]")
    cpu = "n/a" if result.cpu_us_per_event is None else f"{result.cpu_us_per_event:,.1f}"
    return [label, owned_cell(result.owned), rate_cell(result), cpu,
            "—" if one else _ratio(compared.cpu_ratio), growth, memory, own, exact_again, exact,
            "n/a" if result.answer_ms is None else f"{result.answer_ms:,.0f}"]  # fmt: skip


def scaling_table(results: Sequence[ScaleResult], partitions: int) -> Table:
    events = results[0].events if results else 0
    customers = results[0].customers if results else 0
    table = Table(title=f"the same backlog ({events or 0:,} events, {customers or 0:,} customers), {partitions} "
                        "partitions, consumed by N workers of one app id", title_justify="left")  # fmt: skip
    for name in COLUMNS:
        table.add_column(name, justify="left" if name == "workers" else "right")
    for result, compared in zip(results, compare(results), strict=True):
        table.add_row(*row_cells(result, compared))
    return table


def print_scaling(console: Console, results: Sequence[ScaleResult], targets: list[Target], partitions: int) -> None:
    console.print(scaling_table(results, partitions))
    for result in results:
        for note in result.notes:
            console.print(f"[dim]· {note}[/]", soft_wrap=True)
    console.print("[dim]· hand-over: the last worker killed with SIGKILL after the backlog; seconds until the "
                  "survivors' /ready partitions cover every partition once, and until a survivor's (every "
                  "survivor's) /kpis answer equals the one before the kill[/]", soft_wrap=True)  # fmt: skip
    console.print(targets_table(targets))


def write_scaling(path: Path, meta: dict[str, Any], results: Sequence[ScaleResult], targets: list[Target]) -> None:
    rows = []
    for result, compared in zip(results, compare(results), strict=True):
        rows.append({**asdict(result), "growth_per_customer": result.growth_per_customer,
                     "growth_mean": result.growth_mean, "growth_max": result.growth_max,
                     "cpu_ratio": compared.cpu_ratio, "memory_ratio": compared.memory_ratio,
                     "memory_goal": compared.memory_goal})  # fmt: skip
    payload = {**meta, "mode": "workers", "workers": rows, "targets": [asdict(t) for t in targets]}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(payload, indent=1))
