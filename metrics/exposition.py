"""Prometheus exposition of the KPIs: gauges computed from the KPI store, off the scrape path.

KPI gauges come from a custom Collector that reads the KPI store when scraped. A series of segment
``g`` is exported only while this worker owns the partition :func:`owner` maps ``g`` to, so exactly
one worker exports each series and a worker that loses the partition stops at once.
"""

from __future__ import annotations

import asyncio
import time
import zlib
from collections.abc import Callable, Iterator
from zoneinfo import ZoneInfo

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from core.periods import WINDOWS, window
from metrics import facts as F
from metrics import kpis as K
from metrics.segments import ALL
from metrics.store import KpiStore, oldest_pending_reply


def owner(segment: str, partitions: int) -> int:
    """The partition whose owner exports the series of ``segment`` (stable across processes)."""
    return zlib.crc32(segment.encode()) % partitions


WS = ["window", "segment"]
_GAUGES: dict[str, tuple[str, list[str]]] = {
    "active": ("retention_customers_active", ["segment"]),
    "retention": ("retention_customer_retention_ratio", WS),
    "churn": ("retention_customer_churn_ratio", WS),
    "winback": ("retention_customer_winback_ratio", WS),
    "new": ("retention_customers_new", WS),
    "lost": ("retention_customers_lost", WS),
    "reactivated": ("retention_customers_reactivated", WS),
    "reasons": ("retention_customers_lost_by_reason", ["window", "reason"]),
    "repeat": ("retention_repeat_purchase_ratio", WS),
    "refund": ("retention_refund_ratio", WS),
    "return": ("retention_return_ratio", WS),
    "revenue": ("retention_net_revenue", ["window", "segment", "currency"]),
    "clv_hist": ("retention_clv_historical_mean", ["segment", "currency"]),
    "clv_pred": ("retention_clv_predicted_mean", ["segment", "currency"]),
    "abc_customers": ("retention_abc_customers", ["class"]),
    "abc_share": ("retention_abc_clv_share_ratio", ["class"]),
    "nps": ("retention_nps_score", WS),
    "nps_responses": ("retention_nps_responses", ["window", "segment", "category"]),
    "csat": ("retention_csat_ratio", WS),
    "first_response": ("retention_first_response_seconds", ["window", "quantile"]),
    "resolution": ("retention_resolution_seconds", ["window", "quantile"]),
    "await_reply": ("retention_tickets_awaiting_first_response", []),
    "await_resolution": ("retention_tickets_awaiting_resolution", []),
    "oldest": ("retention_oldest_ticket_awaiting_first_response_age_seconds", []),
    "complaints": ("retention_complaints", ["window", "category"]),
    "complaints_rate": ("retention_complaints_per_1000_active_customers", ["window"]),
    "feedback": ("retention_feedback_response_ratio", ["window"]),
    "reps": ("retention_sales_rep_retention_ratio", ["window"]),
    "team_size": ("retention_sales_team_size_ratio", ["window"]),
}


class KpiCollector(Collector):
    """The windowed KPI gauges of docs/contract/outputs.md for the segments this worker owns.

    ``now()`` is the instant windows end at (epoch µs), or ``None`` before any event: then no KPI
    series is exported (undefined, not 0).
    """

    def __init__(
        self,
        store: KpiStore,
        segments: Callable[[], list[str]],
        now: Callable[[], int | None],
        tz: ZoneInfo,
        currency: str,
    ) -> None:
        self.store = store
        self.segments = segments
        self.now = now
        self.tz = tz
        self.currency = currency

    def describe(self) -> Iterator[GaugeMetricFamily]:
        return iter(())  # computed at scrape time; nothing to check at registration

    def collect(self) -> Iterator[GaugeMetricFamily]:
        fams = self.families()
        now = self.now()
        if now is not None:
            for _ in self.steps(fams, self.segments(), now):
                pass
        yield from fams.values()

    @staticmethod
    def families() -> dict[str, GaugeMetricFamily]:
        return {key: GaugeMetricFamily(name, f"retention-monitor KPI ({key})", labels=labels)
                for key, (name, labels) in _GAUGES.items()}

    def steps(self, fams: dict[str, GaugeMetricFamily], segments: list[str], now: int) -> Iterator[None]:
        """Fill ``fams`` a segment (and a window of the global gauges) at a time, yielding in between."""
        for segment in segments:
            yield from self._segment(fams, segment, now)
        if ALL in segments:
            yield from self._global(fams, now)

    def _segment(self, fams: dict[str, GaugeMetricFamily], seg: str, now: int) -> Iterator[None]:
        view = self.store.index
        fams["active"].add_metric([seg], K.level(view, seg, F.ACTIVE_UP, F.ACTIVE_DOWN, now))
        commerce_now = K.commerce(K.Ask(view, seg, now, now))
        _put(fams["clv_hist"], [seg, self.currency], commerce_now["clv_historical_mean"])
        _put(fams["clv_pred"], [seg, self.currency], commerce_now["clv_predicted_mean"])
        for name in WINDOWS:
            yield  # a window at a time: with a million customers a segment's windows take long
            p = window(name, now, self.tz)
            a = K.Ask(view, seg, p.start_us, p.end_us)
            cust, com, fb = K.customers(a), K.commerce(a), K.feedback(a)
            labels = [name, seg]
            for key, value in (("retention", cust["retention_rate"]), ("churn", cust["churn_rate"]),
                               ("winback", cust["winback_rate"]), ("new", cust["inputs"]["N"]),
                               ("lost", cust["inputs"]["L"]), ("reactivated", cust["inputs"]["R"]),
                               ("repeat", com["repeat_purchase_rate"]), ("refund", com["refund_rate"]),
                               ("return", com["return_rate"]), ("nps", fb["nps"]), ("csat", fb["csat"])):
                _put(fams[key], labels, value)
            fams["revenue"].add_metric([*labels, self.currency], com["net_revenue"])
            for category, key in (("promoter", "nps_promoters"), ("passive", "nps_passives"),
                                  ("detractor", "nps_detractors")):
                fams["nps_responses"].add_metric([*labels, category], fb["inputs"][key])

    def _global(self, fams: dict[str, GaugeMetricFamily], now: int) -> Iterator[None]:
        view = self.store.index
        for name in WINDOWS:
            yield
            p = window(name, now, self.tz)
            a = K.Ask(view, ALL, p.start_us, p.end_us)
            for reason, n in a.by_prefix(F.LOST_REASON).items():
                fams["reasons"].add_metric([name, reason], n)
            sup = K.support(a)
            for key, kind in (("first_response", "first_response_seconds"), ("resolution", "resolution_seconds")):
                for q in K.QUANTILES:
                    _put(fams[key], [name, str(q)], sup[kind][f"p{round(q * 100)}"])
            for category, n in sup["complaints_by_category"].items():
                fams["complaints"].add_metric([name, category], n)
            _put(fams["complaints_rate"], [name], sup["complaints_per_1000_active"])
            _put(fams["feedback"], [name], K.feedback(a)["feedback_response_rate"])
            team = K.team(a)
            _put(fams["reps"], [name], team["sales_rep_retention_rate"])
            _put(fams["team_size"], [name], team["sales_team_size_ratio"])
        sup_now = K.support(K.Ask(view, ALL, now, now))
        fams["await_reply"].add_metric([], sup_now["tickets_awaiting_first_response"])
        fams["await_resolution"].add_metric([], sup_now["tickets_awaiting_resolution"])
        oldest = oldest_pending_reply(view)
        fams["oldest"].add_metric([], 0 if oldest is None else max(now - oldest, 0) / K.US)
        yield
        summary = self.store.abc_live(now)[1].summary
        for cls, n in summary.customers.items():
            fams["abc_customers"].add_metric([cls], n)
            _put(fams["abc_share"], [cls], summary.clv_share[cls])


class GaugeBoard(Collector):
    """Serves the KPI gauges of :class:`KpiCollector` from a snapshot computed in the background.

    Computing every gauge takes long enough with many customers (ABC ranks all of them) that doing
    it inside a scrape would stall event processing for that long. :meth:`run` computes a snapshot a
    window of a segment at a time, giving the event loop back in between, at most every
    ``min_interval`` seconds (or eight times the last computation's CPU time, or twice its duration,
    whichever is longest).
    A scrape returns the last snapshot, less the series of segments this worker no longer owns: a
    lost partition stops its series at once.
    """

    def __init__(self, kpis: KpiCollector, min_interval: float = 1.0) -> None:
        self.kpis = kpis
        self.min_interval = min_interval
        self._snapshot: list[GaugeMetricFamily] = []
        self.computed_at: float | None = None
        self.seconds = self.wall_seconds = 0.0

    async def run(self) -> None:
        while True:
            await self.refresh()
            # At most a ninth of the event loop, and less when the loop is busy (the snapshot then
            # takes longer from start to end): with many customers a snapshot costs seconds of CPU,
            # and what it takes from the loop is added to the latency of every event behind it.
            await asyncio.sleep(max(self.min_interval, 8 * self.seconds, 2 * self.wall_seconds))

    async def refresh(self) -> None:
        """Compute a new snapshot a step at a time; ``seconds`` is the CPU time the steps took."""
        fams = self.kpis.families()
        now, segments = self.kpis.now(), self.kpis.segments()
        busy, started = 0.0, time.monotonic()
        if now is not None:
            steps = self.kpis.steps(fams, segments, now)
            while True:
                began = time.perf_counter()
                done = next(steps, True) is True
                busy += time.perf_counter() - began
                if done:
                    break
                await asyncio.sleep(0)
        self.seconds, self.wall_seconds = busy, time.monotonic() - started
        self._snapshot = list(fams.values())
        self.computed_at = time.time()

    def describe(self) -> Iterator[GaugeMetricFamily]:
        return iter(())

    def collect(self) -> Iterator[GaugeMetricFamily]:
        if self.computed_at is not None:
            yield GaugeMetricFamily("retention_kpi_gauges_timestamp_seconds",
                                    "When the KPI gauges served now were computed", value=self.computed_at)
        owned = set(self.kpis.segments())
        for fam in self._snapshot:
            kept = GaugeMetricFamily(fam.name, fam.documentation)
            kept.samples = [s for s in fam.samples if s.labels.get("segment", ALL) in owned]
            yield kept


def _put(fam: GaugeMetricFamily, labels: list[str], value: float | None) -> None:
    if value is not None:
        fam.add_metric(labels, value)


def now_us() -> int:
    return time.time_ns() // 1000
