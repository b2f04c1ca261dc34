"""The sizing model of docs/scaling.md, derived from a workers-mode run (bench/out/workers.json).

A worker's RSS growth over an idle worker is fitted to ``F + S / N`` over the cluster sizes of the run
(least squares): ``F`` is what every worker carries whatever its share (bounded caches, buffers, the
high-water mark of reading a backlog), ``S / customers`` the bytes per customer that divide over the
workers. CPU per event is the median over the cluster sizes. From those, for each business size and
event rate: workers for the CPU (one core each at ``--utilisation``), workers for the memory (pods of
``--pod-memory-gib``), partitions (at least twice the workers, ≤ ``--customers-per-partition`` each, a power of two)
and each worker's memory and cores. Prints a table (``--markdown`` for the docs)::

    .venv/bin/python -m bench.sizing --input bench/out/workers.json --markdown
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from bench.events import OUT

CUSTOMERS = (1_000_000, 10_000_000, 100_000_000)
RATES = (10_000, 100_000, 1_000_000)
COLUMNS = ("customers", "events/s", "workers (CPU / memory)", "partitions", "memory per worker", "cores per worker")


@dataclass(frozen=True)
class Costs:
    fixed_bytes: float  # per worker, on top of an idle worker, whatever its share
    idle_bytes: float  # an idle worker
    customer_bytes: float  # per customer, divided over the workers
    cpu_us_per_event: float  # all stages, one event


@dataclass(frozen=True)
class Size:
    customers: int
    rate: int
    cpu_workers: int
    memory_workers: int
    partitions: int
    worker_bytes: float
    worker_cores: float

    @property
    def workers(self) -> int:
        return max(self.cpu_workers, self.memory_workers)


def fit(points: list[tuple[int, float]]) -> tuple[float, float]:
    """Least squares of ``growth = F + S / n`` over (workers n, growth of one worker in bytes)."""
    xs, ys = [1 / n for n, _ in points], [growth for _, growth in points]
    if len(set(xs)) < 2:
        raise ValueError("the fit needs at least two cluster sizes")
    mx, my = statistics.fmean(xs), statistics.fmean(ys)
    slope = sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / sum((x - mx) ** 2 for x in xs)
    return my - slope * mx, slope


def costs(run: dict[str, Any]) -> Costs:
    """The model's inputs from a workers-mode results file (the largest worker of each cluster size)."""
    rows = [row for row in run["workers"] if row.get("growth_max") is not None]
    fixed, shared = fit([(row["workers"], row["growth_max"] * row["customers"]) for row in rows])
    idle = statistics.median(b for row in rows for b in row["rss_idle_bytes"])
    return Costs(fixed_bytes=fixed, idle_bytes=idle, customer_bytes=shared / rows[0]["customers"],
                 cpu_us_per_event=statistics.median(row["cpu_us_per_event"] for row in rows))  # fmt: skip


def size(c: Costs, customers: int, rate: int, *, utilisation: float, pod_bytes: float, per_partition: int) -> Size:
    cpu_workers = math.ceil(rate * c.cpu_us_per_event / 1e6 / utilisation)
    room = pod_bytes - c.idle_bytes - c.fixed_bytes
    memory_workers = math.ceil(customers * c.customer_bytes / room)
    workers = max(cpu_workers, memory_workers)
    partitions = 2 ** math.ceil(math.log2(max(2 * workers, customers / per_partition)))
    worker_bytes = c.idle_bytes + c.fixed_bytes + customers * c.customer_bytes / workers
    return Size(customers, rate, cpu_workers, memory_workers, partitions, worker_bytes,
                rate * c.cpu_us_per_event / 1e6 / workers)  # fmt: skip


def cells(s: Size) -> list[str]:
    return [f"{s.customers:,}", f"{s.rate:,}", f"**{s.workers}** ({s.cpu_workers} / {s.memory_workers})",
            f"{s.partitions:,}", f"{s.worker_bytes / 2**30:.1f} GiB", f"{s.worker_cores:.2f}"]  # fmt: skip


def markdown(rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    return "\n".join([*lines, *("| " + " | ".join(row) + " |" for row in rows)])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench.sizing", description=__doc__.split("\n\n")[0])
    parser.add_argument("--input", type=Path, default=OUT / "workers.json")
    parser.add_argument("--utilisation", type=float, default=0.7, help="share of a core a worker may use")
    parser.add_argument("--pod-memory-gib", type=float, default=8.0)
    parser.add_argument("--customers-per-partition", type=int, default=100_000)
    parser.add_argument("--markdown", action="store_true")
    args = parser.parse_args(argv)
    c = costs(json.loads(args.input.read_text()))
    sizes = [size(c, n, r, utilisation=args.utilisation, pod_bytes=args.pod_memory_gib * 2**30,
                  per_partition=args.customers_per_partition) for n in CUSTOMERS for r in RATES]  # fmt: skip
    head = (f"fixed per worker {c.fixed_bytes / 2**20:,.0f} MiB over an idle {c.idle_bytes / 2**20:,.0f} MiB, "
            f"{c.customer_bytes:,.0f} B per customer, {c.cpu_us_per_event:,.0f} µs CPU per event")  # fmt: skip
    if args.markdown:
        print(head + "\n\n" + markdown([cells(s) for s in sizes]))
        return 0
    table = Table(title=head, title_justify="left")
    for name in COLUMNS:
        table.add_column(name, justify="right")
    for s in sizes:
        table.add_row(*(cell.replace("**", "") for cell in cells(s)))
    Console().print(table)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
