"""Draw a soak run over time: RSS (with its fitted line), consumer lag, visible latency and CPU.

    .venv/bin/python -m bench.soak_plot [--input bench/out/soak.json] [--output bench/out/soak.png]
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

OUT = ROOT / "bench" / "out"


def _series(samples: list[dict[str, Any]], key: str, scale: float = 1.0) -> tuple[list[float], list[float]]:
    xs, ys = [], []
    for s in samples:
        value = s.get(key)
        if value is not None:
            xs.append(s["t"] / 60)
            ys.append(value * scale)
    return xs, ys


def _warmup(ax: Axes, minutes: float, *, label: bool) -> None:
    ax.axvspan(0, minutes, color="#eeeeee", zorder=0, label="warm-up (not fitted)" if label else None)
    ax.grid(alpha=0.3)


def _band(ax: Axes, minutes: list[dict[str, Any]], limit: float) -> None:
    """The ±limit % band around the first measured minute's RSS, which every later minute must stay in."""
    first = next((m for m in minutes if not m["warmup"] and m.get("rss_bytes")), None)
    if first is not None:
        mib = first["rss_bytes"] / 2**20
        ax.axhspan(mib * (1 - limit / 100), mib * (1 + limit / 100), color="#e8743b", alpha=0.12,
                   label=f"±{limit:g} % of minute {first['minute']}")  # fmt: skip


def _rss(ax: Axes, samples: list[dict[str, Any]], verdict: dict[str, Any], warmup_s: float) -> None:
    ax.plot(*_series(samples, "rss_bytes", 1 / 2**20), color="#e8743b", label="worker RSS")
    fit = verdict.get("rss")
    measured = [s["t"] for s in samples if s["t"] >= warmup_s and s.get("rss_bytes") is not None]
    if fit and len(measured) > 1:
        t0, t1 = measured[0], measured[-1]
        y0 = fit["start_fit"] / 2**20
        y1 = y0 + fit["per_10min"] / 2**20 * (t1 - t0) / 600
        label = f"fit {fit['per_10min'] / 2**20:+.1f} MiB/10 min"
        ax.plot([t0 / 60, t1 / 60], [y0, y1], "--", color="#333", label=label)
    ax.set_ylabel("MiB")
    ax.set_ylim(bottom=0)
    twin = ax.twinx()
    twin.plot(*_series(samples, "customers", 1 / 1000), color="#5b8def", alpha=0.6, label="customers tracked")
    twin.set_ylabel("customers (thousands)")
    twin.set_ylim(bottom=0)
    lines, labels = ax.get_legend_handles_labels()
    more, more_labels = twin.get_legend_handles_labels()
    ax.legend(lines + more, labels + more_labels, fontsize=7, loc="lower right")
    ax.set_title("memory")


def _lag(ax: Axes, samples: list[dict[str, Any]], limits: dict[str, Any]) -> None:
    ax.plot(*_series(samples, "route_lag_s"), color="#e8743b", label="route (input events / offered rate)")
    ax.plot(*_series(samples, "apply_lag_s"), color="#5b8def", label="apply (packs / pack rate)")
    bound, commit = limits["max_lag_s"], limits["commit_s"]
    ax.axhline(bound, color="#e8743b", linestyle=":", label=f"route bound {bound:g} s")
    ax.axhline(bound + commit, color="#5b8def", linestyle=":", label=f"apply bound {bound + commit:g} s (+ commit)")
    ax.set_ylim(bottom=0)
    ax.set_ylabel("seconds of traffic")
    ax.set_title("consumer lag")
    ax.legend(fontsize=7)


def _latency(ax: Axes, samples: list[dict[str, Any]]) -> None:
    ax.plot(*_series(samples, "p50_s", 1000), color="#5b8def", label="p50")
    ax.plot(*_series(samples, "p99_s", 1000), color="#e8743b", label="p99")
    ax.set_yscale("log")
    ax.set_ylabel("ms")
    ax.set_title("publish → KPI visible, per sample interval")
    ax.legend(fontsize=7)


def _cpu(ax: Axes, samples: list[dict[str, Any]]) -> None:
    ax.plot(*_series(samples, "worker_cores"), color="#e8743b", label="worker")
    ax.plot(*_series(samples, "bench_cores"), color="#5b8def", label="bench (producer, scrapes)")
    ax.plot(*_series(samples, "rest_cores"), color="#9e9e9e", label="rest (Kafka, others)")
    ax.plot(*_series(samples, "load1"), color="#333", linestyle=":", label="load average 1 min")
    ax.set_ylim(bottom=0)
    ax.set_title("CPU (cores)")
    ax.legend(fontsize=7)


def draw(data: dict[str, Any], output: Path) -> None:
    samples: list[dict[str, Any]] = data["samples"]
    args, machine, verdict = data["args"], data["machine"], data["verdict"]
    warmup_s = 60 * args["warmup_minutes"]
    fig = Figure(figsize=(13, 7.5))
    axes = fig.subplots(2, 2, sharex=True)
    for i, ax in enumerate(axes.flat):
        _warmup(ax, warmup_s / 60, label=i == 0)
    _band(axes[0][0], data.get("minutes", []), data["limits"]["max_rss_growth"])  # first: in _rss's legend
    _rss(axes[0][0], samples, verdict, warmup_s)
    _lag(axes[0][1], samples, data["limits"])
    _latency(axes[1][0], samples)
    _cpu(axes[1][1], samples)
    for ax in axes[1]:
        ax.set_xlabel("minutes since the load started")
    outcome = "flat: PASS" if verdict["passed"] else "flat: FAIL"
    fig.suptitle(f"soak: {args['rate']:,.0f} events/s for {args['minutes']:g} min, {args['customers']:,} simulated "
                 f"customers, {args['partitions']} partitions, one worker — {machine.get('cores', '?')} cores "
                 f"{machine.get('cpu', '')} — {outcome}", fontsize=10)  # fmt: skip
    fig.tight_layout()
    output.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(output, dpi=110)


def main() -> None:
    parser = OneLineParser(prog="bench.soak_plot", description=__doc__,
                           formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    parser.add_argument("--input", type=Path, default=OUT / "soak.json")
    parser.add_argument("--output", type=Path, default=OUT / "soak.png")
    args = parser.parse_args()
    try:
        data = json.loads(args.input.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        parser.error(f"argument --input: cannot read {str(args.input)!r} ({exc.__class__.__name__})")
    draw(data, args.output)
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
