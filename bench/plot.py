"""Draw a bench run side by side: events/s, latency p50/p99 and memory of each system it measured.

    .venv/bin/python -m bench.plot [--input bench/out/results.json] [--output docs/performance.png]

A run of the workers mode (``bench/run.py --workers …``, bench/out/workers.json) is drawn by
bench/workers_plot.py: ``--input bench/out/workers.json --output bench/out/workers.png``.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from matplotlib.axes import Axes
from matplotlib.figure import Figure  # the object API renders with Agg and never needs a display or pyplot

from bench.cli import OneLineParser
from bench.procs import ROOT
from bench.stats import SYSTEMS

COLOURS = {"ceiling": "#9e9e9e", "quix": "#5b8def", "bytewax": "#8e6bd1", "pathway": "#3aa17e", "monitor": "#e8743b"}
SHORT = {"ceiling": "ceiling", "quix": "Quix peer", "bytewax": "Bytewax peer", "pathway": "Pathway peer",
         "monitor": "monitor"}  # fmt: skip


def _missing(ax: Axes, x: float) -> None:
    # x in data, y in axes coordinates: visible on linear and log scales alike.
    ax.text(x, 0.03, "n/a", transform=ax.get_xaxis_transform(), ha="center", fontsize=8)


def bars(ax: Axes, labels: list[str], colours: list[str], values: list[float | None], title: str, *,
          log: bool) -> None:  # fmt: skip
    shown = [v or 0.0 for v in values]
    bars = ax.bar(range(len(labels)), shown, color=colours)
    ax.set_xticks(range(len(labels)), labels, fontsize=8)
    ax.set_title(title)
    if log and any(shown):
        ax.set_yscale("log")
    for i, (bar, value) in enumerate(zip(bars, values, strict=True)):
        if value is None:
            _missing(ax, i)
        else:
            ax.annotate(f"{value:,.0f}", (bar.get_x() + bar.get_width() / 2, bar.get_height()), ha="center",
                        va="bottom", fontsize=8)  # fmt: skip


def _latency(ax: Axes, names: list[str], summary: dict[str, Any], rate: Any) -> None:
    width = 0.38
    for offset, key, alpha in ((-width / 2, "latency_p50_s", 0.6), (width / 2, "latency_p99_s", 1.0)):
        values = [summary[n].get(key) for n in names]
        xs = [i + offset for i in range(len(names))]
        ax.bar(xs, [1000 * (v or 0) for v in values], width, alpha=alpha,
               color=[COLOURS.get(n, "#777") for n in names], label=key.split("_")[1])  # fmt: skip
        for x, v in zip(xs, values, strict=True):
            if v is not None:
                ax.annotate(f"{1000 * v:,.1f}", (x, 1000 * v), ha="center", va="bottom", fontsize=7)
    for i, name in enumerate(names):
        if summary[name].get("latency_p99_s") is None:
            _missing(ax, i)
    ax.set_xticks(range(len(names)), [SHORT.get(n, n) for n in names], fontsize=8)
    ax.set_title(f"latency p50 / p99 (ms) at {rate:,.0f} events/s" if isinstance(rate, int | float) else "latency")
    if any(summary[n].get("latency_p99_s") for n in names):
        ax.set_yscale("log")
    ax.legend(fontsize=7)


def draw(results: dict[str, Any], output: Path) -> None:
    summary: dict[str, Any] = results["summary"]
    names: list[str] = [n for n in SYSTEMS if n in summary]
    args = results.get("args", {})
    fig = Figure(figsize=(max(13.0, 3.7 * len(names)), 4.2))  # room for every bar's labels
    axes = fig.subplots(1, 3)
    colours = [COLOURS.get(n, "#777") for n in names]
    rates = [summary[n].get("events_per_s") for n in names]
    bars(axes[0], [SHORT.get(n, n) for n in names], colours, rates, "events/s (log scale)", log=True)
    _latency(axes[1], names, summary, None if "latency" in args.get("skip", []) else args.get("rate"))
    peak = [summary[n].get("peak_rss_bytes") for n in names]
    labels = []
    for name in names:
        per = summary[name].get("bytes_per_customer")
        labels.append(SHORT.get(name, name) + ("" if per is None else f"\n{per / 1024:,.1f} KiB/customer"))
    bars(axes[2], labels, colours, [None if v is None else v / 2**20 for v in peak], "peak RSS (MiB)", log=False)
    save(fig, results, "", output)


def save(fig: Figure, results: dict[str, Any], setup: str, output: Path) -> None:
    """Title the figure with the run's event file, ``setup`` and machine, and write it to ``output``."""
    args, machine, events = results.get("args", {}), results.get("machine", {}), results.get("event_file", {})
    fig.suptitle(
        f"{events.get('events', 0):,} events, {events.get('distinct_customers', 0):,} customers, "
        f"{args.get('partitions', '?')} partitions{setup} — {machine.get('cores', '?')} cores {machine.get('cpu', '')}",
        fontsize=10,
    )
    fig.tight_layout()
    output.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(output, dpi=120)


def main() -> None:
    parser = OneLineParser(prog="bench.plot", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--input", type=Path, default=ROOT / "bench" / "out" / "results.json")
    parser.add_argument("--output", type=Path, default=ROOT / "docs" / "performance.png")
    args = parser.parse_args()
    try:
        results = json.loads(args.input.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        parser.error(f"argument --input: cannot read {str(args.input)!r} ({exc.__class__.__name__})")
    if results.get("mode") == "workers":
        from bench.workers_plot import draw as draw_workers  # noqa: PLC0415 - it imports this module

        draw_workers(results, args.output)
    else:
        draw(results, args.output)
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
