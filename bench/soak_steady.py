"""The soak with a steady population (``bench.soak --population steady``), and the flat-RSS verdict.

The simulator grows its active population towards ``customers``; once there it keeps signing up
newcomers to replace churned customers, who stay tracked, so the customers a worker holds grow for
as long as the soak runs. Here a history is published first, stamped just before the load starts,
until the active population reaches its target; then the population is frozen: no sign-ups and no new
reps, and churned customers come back as often as active ones churn. The measured minutes then see
the same customers only, and RSS per minute can be judged flat within ±``--max-rss-growth`` %.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

from rich.console import Console

from bench.soak_stats import Check, MinuteRow, Sample, measured, trend
from bench.waiting import settle, wait_progress
from core.settings import Settings
from streams.producers.publish import produce
from streams.producers.simulate import _ACTIONS, Message, Simulator

HISTORY_FACTOR = 20  # at most this many history events per target customer (about 4 suffice)
MAX_HISTORY_US = 3 * 86_400 * 1_000_000  # history within 3 days of the load: well inside the 7-day lateness
# What one KPI fact costs in the store's columns (time, value, customer, day, segment combination); the
# store keeps every fact (KPIs for any past period), so RSS grows by at least this per fact by design.
FACT_BYTES = 27


class SteadyPopulation(Simulator):
    """The simulator, whose population stops changing once :meth:`freeze` is called."""

    frozen = False

    def freeze(self) -> None:
        self.frozen = True

    @property
    def population(self) -> int:
        """Customers ever signed up (active or churned): what the worker tracks."""
        return len(self.active) + len(self.churned)

    def _weights(self) -> list[float]:
        weights = super()._weights()
        if not self.frozen:
            return weights
        named = dict(zip(_ACTIONS, weights, strict=True))
        named["sign_up"] = named["rep_join"] = named["rep_leave"] = 0.0
        named["reactivate"] = named["churn"] if self.churned else 0.0  # as many come back as leave
        return [named[action] for action in _ACTIONS]

    def history(self, end_us: int, rate: float) -> Iterator[Message]:
        """Events stamped before ``end_us`` (``rate`` per second) until the active population reaches its
        target; then the population freezes."""
        cap = HISTORY_FACTOR * self.target
        step_us = min(1e6 / rate, MAX_HISTORY_US / cap)
        start_us = end_us - round(cap * step_us)
        n = 0
        while len(self.active) < self.target and n < cap:
            yield self.emit(start_us + round(n * step_us))
            n += 1
        self.freeze()


@dataclass(frozen=True)
class Prefill:
    """The published history: its events, the population it left, and how long publish + processing took."""

    events: int
    customers: int
    seconds: float


def prefill(settings: Settings, simulator: SteadyPopulation, rate: float, *, processed: Callable[[], int],
            visible: Callable[[], float | None], alive: Callable[[], bool], last_words: Callable[[], str],
            console: Console, timeout: float) -> Prefill:  # fmt: skip
    """Publish the history as fast as the broker takes it, then wait until the worker has processed it all
    and its KPI store has read it (``visible`` stops moving), so the load starts on a caught-up worker."""
    began = time.perf_counter()
    done = processed()
    stats = asyncio.run(produce(settings.kafka, simulator.history(time.time_ns() // 1000, rate)))
    end = wait_progress(console, "history", done + stats.sent, processed, alive=alive, timeout=timeout, start=done,
                        interval=1.0, last_words=last_words)  # fmt: skip
    if not end.reached:
        console.print(f"[yellow]the worker processed {end.count - done:,} of {stats.sent:,} history events in "
                      f"{timeout:.0f} s; the load starts anyway[/]")  # fmt: skip
    with console.status("history: waiting until the KPI store has read it"):
        settle(visible, quiet_s=2.0, limit_s=timeout, tolerance=0.0)
    return Prefill(stats.sent, simulator.population, time.perf_counter() - began)


def rss_deviations(rows: Sequence[MinuteRow]) -> list[float | None]:
    """Each minute's RSS against the first minute after the warm-up, in percent (None: warm-up or unknown)."""
    reference = next((r.rss_bytes for r in rows if not r.warmup and r.rss_bytes), None)
    return [None if r.warmup or r.rss_bytes is None or not reference else 100 * (r.rss_bytes / reference - 1)
            for r in rows]  # fmt: skip


def rss_band(rows: Sequence[MinuteRow], limit: float) -> Check:
    """Flat: the RSS of every minute after the warm-up within ±``limit`` % of the first such minute's."""
    rule = f"every minute after the warm-up within ±{limit:g} % of the first one"
    measured = [(row, d) for row, d in zip(rows, rss_deviations(rows), strict=True) if d is not None]
    if len(measured) < 2:
        return Check("RSS per minute", "n/a", "fewer than two minutes after the warm-up", rule)
    (first, _), (last, _) = measured[0], measured[-1]
    low, high = min(d for _, d in measured), max(d for _, d in measured)
    shown = (f"minutes {first.minute} to {last.minute} against minute {first.minute} "
             f"({(first.rss_bytes or 0) / 2**20:,.0f} MiB): {low:+.1f} % … {high:+.1f} %")  # fmt: skip
    return Check("RSS per minute", "pass" if max(-low, high) <= limit else "fail", shown, rule)


def beyond_facts(samples: Sequence[Sample], warmup_s: float, limit: float) -> Check:
    """Flat beyond the retained data: RSS minus what the KPI store's fact columns hold, fitted over the
    measured span (their allocated bytes, or ``FACT_BYTES`` per fact where the worker does not say).

    A steady population still adds facts with every event (the store answers any past period), so RSS
    itself cannot be flat; what a leak would add is memory the facts do not explain."""
    span = [s for s in measured(samples, warmup_s) if s.rss_bytes is not None and s.scrape.facts is not None]
    exact = bool(span) and all(s.scrape.fact_bytes is not None for s in span)
    rule = (f"RSS minus {'the store columns' if exact else f'{FACT_BYTES} B per KPI fact held'}: "
            f"fitted growth < {limit:g} %")  # fmt: skip

    def held(s: Sample) -> int:
        return (s.scrape.fact_bytes or 0) if exact else FACT_BYTES * (s.scrape.facts or 0)

    line = trend([(s.t, float((s.rss_bytes or 0) - held(s))) for s in span])
    columns = trend([(s.t, float(held(s))) for s in span])
    if line is None or columns is None or line.start_fit <= 0:
        return Check("memory beyond KPI facts", "n/a", "not enough samples with retention_kpi_store_facts", rule)
    growth = 100 * line.rise / line.start_fit
    shown = (f"{line.first / 2**20:,.0f} → {line.last / 2**20:,.0f} MiB (growth {growth:+.1f} %), while the "
             f"store's columns took {columns.rise / 2**20:,.0f} MiB more")
    return Check("memory beyond KPI facts", "pass" if growth < limit else "fail", shown, rule)
