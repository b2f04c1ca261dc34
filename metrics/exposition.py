"""Prometheus exposition of the KPI gauges: computed in the background, served from the last snapshot.

A series of segment ``g`` is exported only while this worker owns the partition
:func:`metrics.gauges.owner` maps ``g`` to, so exactly one worker exports each series and a worker
that loses the partition stops at once.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Iterator
from zoneinfo import ZoneInfo

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from metrics.abc_classes import AbcSummary
from metrics.cohorts import REUSE_FACTOR
from metrics.exceptions import Unavailable
from metrics.gauges import GAUGES, Row, abc_rows, cohort_rows, gauge_plans
from metrics.planning import Runner, abc
from metrics.segments import ALL

ABC_REUSE_FACTOR = 10
# The pause after a refresh, in what the refresh took: with a million customers a refresh takes seconds
# of CPU (quantiles, the ABC ranking, cohort tables), so it may take at most a tenth of the time and the
# events keep the rest (a refresh of 2 s then runs every 20 s, a 200,000-customer one every few seconds).
REFRESH_PAUSE_FACTOR = 9
log = logging.getLogger(__name__)


class GaugeBoard(Collector):
    """Serves the KPI gauges of the segments this worker owns from a snapshot computed in the background.

    Computing every gauge asks the whole cluster (``run``, see :mod:`metrics.planning`) and, with many
    customers, ranks all of them for ABC: too long for a scrape. :meth:`run` computes a snapshot at most
    every ``min_interval`` seconds, or :data:`REFRESH_PAUSE_FACTOR` times what the last one took. A
    scrape returns the last snapshot, less the series of segments this worker no longer owns: a lost
    partition stops its series at once. ``now()`` is the instant windows end at (epoch µs), or ``None``
    before any event: then no KPI series is exported (undefined, not 0).
    """

    def __init__(self, segments: Callable[[], list[str]], now: Callable[[], Awaitable[int | None]], *, tz: ZoneInfo,
                 currency: str, thresholds: tuple[float, float], run: Runner, min_interval: float = 1.0,
                 pinned: Runner | None = None) -> None:
        self.segments, self.now, self.tz, self.currency = segments, now, tz, currency
        self.thresholds, self.run_plan, self.min_interval = thresholds, run, min_interval
        self.run_pinned = pinned or run  # for the ranking and the cohort tables: no store stops writing
        self._snapshot: list[GaugeMetricFamily] = []
        self.computed_at: float | None = None
        self.wall_seconds = 0.0
        self._ranking: tuple[float, float, int, AbcSummary] | None = None  # began, took, at, summary
        self._cohorts: tuple[float, float, tuple[str, ...], list[Row]] | None = None  # began, took, segments, rows

    async def run(self) -> None:
        while True:
            try:
                await self.refresh()
            except Unavailable as exc:  # a rebalance: the last snapshot stays, with its timestamp
                log.info("KPI gauges not refreshed: %s", exc)
            await asyncio.sleep(max(self.min_interval, REFRESH_PAUSE_FACTOR * self.wall_seconds))

    async def refresh(self) -> None:
        """Compute a new snapshot of every gauge of the owned segments."""
        started = time.monotonic()
        now, segments = await self.now(), self.segments()
        fams = families()
        if now is not None and segments:
            rows = []
            for job in gauge_plans(segments, now, self.tz, self.currency):
                rows += await self.run_plan(job)
            if ALL in segments:
                rows += abc_rows(await self.ranking(now))
            rows += await self.cohorts(segments, now)
            for key, labels, value in rows:
                fams[key].add_metric(labels, value)
        self.wall_seconds = time.monotonic() - started
        self._snapshot = list(fams.values())
        self.computed_at = time.time()

    async def ranking(self, now: int) -> AbcSummary:
        """The ABC summary as of ``now``; a ranking is reused while younger than ten times what it took
        (ranking a million customers takes about a second), for an instant at most that far from its own."""
        cached = self._ranking
        if cached is not None:
            began, took, at, summary = cached
            window = ABC_REUSE_FACTOR * took
            if time.monotonic() - began < window and abs(now - at) <= window * 1_000_000:
                return summary
        began = time.monotonic()
        _, summary = await self.run_pinned(abc(now, self.thresholds))
        self._ranking = (began, time.monotonic() - began, now, summary)
        return summary

    async def cohorts(self, segments: list[str], now: int) -> list[Row]:
        """The cohort gauges of ``segments``, reused for :data:`REUSE_FACTOR` times what they took."""
        cached, key = self._cohorts, tuple(sorted(segments))
        if cached is not None:
            began, took, segments_then, rows = cached
            if segments_then == key and time.monotonic() - began < REUSE_FACTOR * took:
                return rows
        began = time.monotonic()
        rows = await self.run_pinned(cohort_rows(list(key), now, self.tz))
        self._cohorts = (began, time.monotonic() - began, key, rows)
        return rows

    def describe(self) -> Iterator[GaugeMetricFamily]:
        return iter(())

    def collect(self) -> Iterator[GaugeMetricFamily]:
        if self.computed_at is not None:
            yield GaugeMetricFamily("retention_kpi_gauges_timestamp_seconds",
                                    "When the KPI gauges served now were computed", value=self.computed_at)
        owned = set(self.segments())
        for fam in self._snapshot:
            kept = GaugeMetricFamily(fam.name, fam.documentation)
            kept.samples = [s for s in fam.samples if s.labels.get("segment", ALL) in owned]
            yield kept


def families() -> dict[str, GaugeMetricFamily]:
    return {key: GaugeMetricFamily(name, f"retention-monitor KPI ({key})", labels=labels)
            for key, (name, labels) in GAUGES.items()}


def now_us() -> int:
    return time.time_ns() // 1000
