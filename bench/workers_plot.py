"""Draw a workers-mode run (bench/out/workers.json): events/s, CPU per event, memory per worker and
hand-over times against the number of workers. ``python -m bench.plot --input bench/out/workers.json``
draws it too.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from matplotlib.axes import Axes
from matplotlib.figure import Figure  # the object API renders with Agg and never needs a display or pyplot

from bench.plot import bars, save
from bench.workers_stats import workers

COLOUR, MAX_COLOUR, GOAL_COLOUR = "#e8743b", "#b5542a", "#333333"


def series(rows: list[dict[str, Any]], key: str, scale: float = 1.0) -> list[float | None]:
    """``key`` of each row (None where not measured), times ``scale``."""
    return [None if row.get(key) is None else row[key] * scale for row in rows]


def goals(rows: list[dict[str, Any]], key: str, factor: float, *, per_worker: bool) -> list[float | None]:
    """The target line at N ≥ 2: ``factor`` (÷ N when ``per_worker``) x the one-worker value of ``key``."""
    one = next((row.get(key) for row in rows if row["workers"] == 1), None)
    return [None if one is None or row["workers"] == 1 else factor * one / (row["workers"] if per_worker else 1)
            for row in rows]  # fmt: skip


def _goal(ax: Axes, values: list[float | None], label: str) -> None:
    points = [(i, v) for i, v in enumerate(values) if v is not None]
    if points:
        ax.plot([i for i, _ in points], [v for _, v in points], "_", markersize=28, mew=2, color=GOAL_COLOUR,
                label=label)  # fmt: skip
        ax.legend(fontsize=7)


def _memory(ax: Axes, rows: list[dict[str, Any]], labels: list[str]) -> None:
    width = 0.38
    for offset, key, colour in ((-width / 2, "growth_mean", COLOUR), (width / 2, "growth_max", MAX_COLOUR)):
        values = series(rows, key)
        xs = [i + offset for i in range(len(rows))]
        ax.bar(xs, [v or 0.0 for v in values], width, color=colour, label=key.split("_")[1])
        for x, v in zip(xs, values, strict=True):
            if v is not None:
                ax.annotate(f"{v:,.0f}", (x, v), ha="center", va="bottom", fontsize=7)
    ax.set_xticks(range(len(rows)), labels, fontsize=8)
    ax.set_title("RSS growth per customer, per worker (B)")
    _goal(ax, goals(rows, "growth_max", 1.2, per_worker=True), "goal 1.2 / N x one worker")


def _handover(ax: Axes, rows: list[dict[str, Any]], labels: list[str]) -> None:
    width = 0.38
    hands = [row.get("handover") or {} for row in rows]
    for offset, key, colour, name in ((-width / 2, "owned_s", "#5b8def", "survivors own all"),
                                      (width / 2, "all_exact_s", COLOUR, "every survivor exact")):  # fmt: skip
        values = [hand.get(key) for hand in hands]
        xs = [i + offset for i in range(len(rows))]
        ax.bar(xs, [v or 0.0 for v in values], width, color=colour, label=name)
        for x, v in zip(xs, values, strict=True):
            if v is not None:
                ax.annotate(f"{v:.1f}", (x, v), ha="center", va="bottom", fontsize=7)
    ax.set_xticks(range(len(rows)), labels, fontsize=8)
    ax.set_title("hand-over after SIGKILL of one worker (s)")
    ax.legend(fontsize=7)


def draw(results: dict[str, Any], output: Path) -> None:
    rows: list[dict[str, Any]] = results["workers"]
    labels = [workers(row["workers"]) for row in rows]
    colours = [COLOUR] * len(rows)
    fig = Figure(figsize=(16.0, 4.2))
    axes = fig.subplots(1, 4)
    bars(axes[0], labels, colours, series(rows, "events_per_s"), "events/s through the backlog", log=False)
    bars(axes[1], labels, colours, series(rows, "cpu_us_per_event"), "CPU µs per event, all workers", log=False)
    _goal(axes[1], goals(rows, "cpu_us_per_event", 1.2, per_worker=False), "goal 1.2 x one worker")
    _memory(axes[2], rows, labels)
    _handover(axes[3], rows, labels)
    save(fig, results, ", N workers of one app id", output)
