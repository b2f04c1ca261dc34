"""What a soak run prints (a row per minute, the verdict) and writes (bench/out/soak.json)."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from bench.soak_stats import Interval, Limits, MinuteRow, Sample, Verdict, lag_seconds
from bench.soak_steady import rss_deviations

MIB = 2**20


def _n(value: float | None, fmt: str = ",.0f", scale: float = 1.0) -> str:
    return "n/a" if value is None else format(value * scale, fmt)


ELEMENTARY_STAGES = ("route", "queue", "apply", "follow")


def minute_table(rows: list[MinuteRow], rate: float) -> Table:
    table = Table(title=f"soak at {rate:,.0f} events/s offered, per minute", title_justify="left")
    columns = ("min", "RSS MiB", "RSS vs 1st measured", "customers", "route lag max", "apply lag max", "events/s",
               "visible p50 ms", "p99 ms", "slowest stage p99", "loop stall max ms", "worker cores", "bench cores",
               "rest cores", "load 1m", "scrape max ms")  # fmt: skip
    for name in columns:
        table.add_column(name, justify="right")
    for row, deviation in zip(rows, rss_deviations(rows), strict=True):
        cells = minute_cells(row)
        table.add_row(*cells[:2], _n(deviation, "+.1f") + ("" if deviation is None else " %"), *cells[2:],
                      style="dim" if row.warmup else None)  # fmt: skip
    return table


def minute_cells(row: MinuteRow) -> list[str]:
    span = row.span
    return [
        f"{row.minute}{' w' if row.warmup else ''}", _n(row.rss_bytes, ",.0f", 1 / MIB), _n(row.customers),
        _n(row.route_lag_max), _n(row.apply_lag_max), _n(span.events_per_s), _n(span.p50_s, ",.1f", 1000),
        _n(span.p99_s, ",.1f", 1000), slowest_stage(span), _n(span.loop_stall_max_s, ",.0f", 1000),
        _n(span.worker_cores, ".2f"), _n(span.bench_cores, ".2f"),
        _n(span.rest_cores, ".2f"), f"{row.load1:.2f}", _n(row.scrape_max_s, ",.0f", 1000),
    ]  # fmt: skip


def slowest_stage(span: Interval) -> str:
    """The elementary stage (route, queue, apply, follow) with the highest p99 in the span, e.g. ``queue 1,200 ms``;
    ``route_apply`` is left out, being route + queue + apply."""
    known = [(p99, stage) for stage, p99 in span.stage_p99_s.items()
             if p99 is not None and stage in ELEMENTARY_STAGES]  # fmt: skip
    if not known:
        return "-"
    p99, stage = max(known)
    return f"{stage} {p99 * 1000:,.0f} ms"


def verdict_table(verdict: Verdict, warmup_s: float) -> Table:
    title = (f"flat? measured span {verdict.span_s / 60:.1f} min after a {warmup_s / 60:g} min warm-up: "
             f"{'PASS' if verdict.passed else 'FAIL'}")  # fmt: skip
    table = Table(title=title, title_justify="left")
    for name in ("check", "verdict", "measured", "rule"):
        table.add_column(name)
    colour = {"pass": "green", "fail": "red"}
    for c in verdict.checks:
        shown = f"[{colour[c.verdict]}]{c.verdict}[/]" if c.verdict in colour else c.verdict
        table.add_row(c.name, shown, c.measured, c.rule)
    return table


def summary_lines(verdict: Verdict, rows: list[MinuteRow], producer: dict[str, Any], ready_rss: int | None,
                  load: dict[str, Any]) -> list[str]:  # fmt: skip
    lines = []
    o: Interval | None = verdict.overall
    if o is not None:
        lines.append(f"measured span: {_n(o.events_per_s)} events/s processed, visible latency p50 "
                     f"{_n(o.p50_s, ',.1f', 1000)} ms / p99 {_n(o.p99_s, ',.1f', 1000)} ms over {o.latency_samples:,} "
                     f"events; CPU: worker {_n(o.worker_cores, '.2f')} cores, bench (producer + scraping) "
                     f"{_n(o.bench_cores, '.2f')}, rest of the machine {_n(o.rest_cores, '.2f')}")  # fmt: skip
    achieved = _n(producer["achieved_rate"], ",.1f")
    lines.append(f"producer: offered {producer['offered_rate']:,.0f}/s, achieved {achieved}/s "
                 f"({producer['sent']:,} acknowledged, {producer['errors']:,} errors), "
                 f"schedule slip max {1000 * producer['max_slip_s']:,.0f} ms")  # fmt: skip
    if verdict.customers is not None:
        c = verdict.customers
        lines.append(f"customers tracked: {c.first:,.0f} → {c.last:,.0f} ({c.per_10min:+,.0f}/10 min); "
                     f"memory per new customer (RSS slope / customer slope): {_n(verdict.bytes_per_new_customer)} B; "
                     f"per processed event: {_n(_per_event(verdict))} B; "
                     f"RSS when ready, before any event: {_n(ready_rss, ',.0f', 1 / MIB)} MiB")  # fmt: skip
    if verdict.route_lag is not None and verdict.apply_lag is not None:
        lines.append(f"lag: route max {_n(verdict.route_lag_max)} events = {verdict.route_lag.max:.2f} s, slope "
                     f"{verdict.route_lag.per_10min:+.2f} s/10 min; apply max {_n(verdict.apply_lag_max)} packs = "
                     f"{verdict.apply_lag.max:.2f} s, slope {verdict.apply_lag.per_10min:+.2f} s/10 min "
                     f"(mean {_n(verdict.pack_rate)} packs/s into events-by-customer)")  # fmt: skip
    lines.extend(_drift(rows))
    lines.append(f"load average (1 min): {load['before'][0]:.2f} before, mean {load['during_mean']:.2f} / max "
                 f"{load['during_max']:.2f} during, {load['after'][0]:.2f} after (2 cores)")  # fmt: skip
    return lines


def _per_event(verdict: Verdict) -> float | None:
    """RSS slope over the event rate: bytes kept per event processed, if all the growth were state."""
    o = verdict.overall
    if verdict.rss is None or o is None or not o.events_per_s:
        return None
    return verdict.rss.per_10min / (o.events_per_s * 600)


def _drift(rows: list[MinuteRow]) -> list[str]:
    """Latency and CPU of the first measured minute against the last: what the lag checks do not show."""
    measured = [r for r in rows if not r.warmup]
    if len(measured) < 2:
        return []
    a, b = measured[0], measured[-1]
    ms = ",.0f"
    return [
        f"visible latency, minute {a.minute} → {b.minute}: p50 {_n(a.span.p50_s, ms, 1000)} → "
        f"{_n(b.span.p50_s, ms, 1000)} ms, p99 {_n(a.span.p99_s, ms, 1000)} → {_n(b.span.p99_s, ms, 1000)} ms; "
        f"worker CPU {_n(a.span.worker_cores, '.2f')} → {_n(b.span.worker_cores, '.2f')} cores; "
        f"scrape max {_n(a.scrape_max_s, ms, 1000)} → {_n(b.scrape_max_s, ms, 1000)} ms",
    ]  # fmt: skip


def print_report(console: Console, rows: list[MinuteRow], verdict: Verdict, *, rate: float, warmup_s: float,
                 producer: dict[str, Any], ready_rss: int | None, load: dict[str, Any],
                 notes: list[str]) -> None:  # fmt: skip
    console.print(minute_table(rows, rate))
    console.print(verdict_table(verdict, warmup_s))
    for line in summary_lines(verdict, rows, producer, ready_rss, load):
        console.print(line, soft_wrap=True)
    for note in notes:
        console.print(f"[yellow]· {note}[/]", soft_wrap=True)


def payload(meta: dict[str, Any], samples: list[Sample], rows: list[MinuteRow], verdict: Verdict,
            limits: Limits) -> dict[str, Any]:  # fmt: skip
    flat = [s.flat(samples[i - 1] if i else None) for i, s in enumerate(samples)]
    for row, (_, route_s, apply_s) in zip(flat, lag_seconds(samples, limits.rate), strict=True):
        row.update(route_lag_s=route_s, apply_lag_s=apply_s)
    return {
        **meta,
        "limits": asdict(limits),
        "verdict": {"passed": verdict.passed, **asdict(verdict)},
        "minutes": [asdict(r) for r in rows],
        "samples": flat,
    }


def write_json(path: Path, data: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=1))
