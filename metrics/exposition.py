"""Prometheus exposition: pipeline counters, and KPI gauges computed at scrape time.

KPI gauges come from a custom Collector that reads the worker's owned partitions when scraped, so a
series disappears as soon as its partitions are handed to another worker (no stale gauge left behind).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from zoneinfo import ZoneInfo

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from metrics.index import CountView
from metrics.kpis import active_now, customer_kpis
from metrics.lifecycle import LOST_REASON
from metrics.periods import WINDOWS, window
from metrics.segments import ALL

LAG_BUCKETS = (0.1, 0.5, 1, 5, 15, 60, 300, 900, 3600, 6 * 3600, 86400, 7 * 86400, 30 * 86400)


@dataclass(frozen=True)
class PipelineMetrics:
    """Per-worker processing counters (processing time, not event time)."""

    events: Counter
    rejected: Counter
    ignored: Counter
    duplicates: Counter
    lag: Histogram
    last_update: Gauge

    @classmethod
    def create(cls, registry: CollectorRegistry) -> PipelineMetrics:
        return cls(
            events=Counter("retention_events", "Valid events applied, by type", ["type"], registry=registry),
            rejected=Counter(
                "retention_events_rejected", "Messages sent to the dead-letter topic, by reason", ["reason"],
                registry=registry,
            ),
            ignored=Counter(
                "retention_events_ignored", "Well-formed events that changed no KPI, by reason", ["reason"],
                registry=registry,
            ),
            duplicates=Counter(
                "retention_events_duplicate", "Events whose id was already applied", registry=registry
            ),
            lag=Histogram(
                "retention_event_lag_seconds", "Arrival time minus event time", buckets=LAG_BUCKETS,
                registry=registry,
            ),
            last_update=Gauge(
                "retention_kpi_last_update_timestamp_seconds", "When a KPI input last changed",
                registry=registry,
            ),
        )


class KpiCollector(Collector):
    """Windowed customer KPI gauges of METRICS.md, read from ``view()`` at scrape time.

    ``now()`` returns the instant windows end at in epoch µs, or ``None`` before any event (then no
    windowed series is exported: undefined, not 0).
    """

    def __init__(
        self,
        view: Callable[[], CountView],
        segments: Callable[[], list[str]],
        now: Callable[[], int | None],
        tz: ZoneInfo,
    ) -> None:
        self._view = view
        self._segments = segments
        self._now = now
        self._tz = tz

    def collect(self) -> Iterator[GaugeMetricFamily]:
        now = self._now()
        view = self._view()
        segments = self._segments()
        active = GaugeMetricFamily("retention_customers_active", "Active customers now", labels=["segment"])
        fams = {
            "retention": GaugeMetricFamily(
                "retention_customer_retention_ratio", "(E - N) / B (KPIS.md)", labels=["window", "segment"]
            ),
            "churn": GaugeMetricFamily("retention_customer_churn_ratio", "L / B", labels=["window", "segment"]),
            "winback": GaugeMetricFamily(
                "retention_customer_winback_ratio", "R / (lost at start + L)", labels=["window", "segment"]
            ),
            "new": GaugeMetricFamily("retention_customers_new", "N: sign-ups", labels=["window", "segment"]),
            "lost": GaugeMetricFamily("retention_customers_lost", "L: churns", labels=["window", "segment"]),
            "reactivated": GaugeMetricFamily(
                "retention_customers_reactivated", "R: won back", labels=["window", "segment"]
            ),
        }
        reasons = GaugeMetricFamily(
            "retention_customers_lost_by_reason", "L by churn reason", labels=["window", "reason"]
        )
        if now is not None:
            for segment in segments:
                active.add_metric([segment], active_now(view, segment, now))
                for name in WINDOWS:
                    p = window(name, now, self._tz)
                    k = customer_kpis(view, segment, p.start_us, p.end_us)
                    values = {
                        "retention": k.retention_rate, "churn": k.churn_rate, "winback": k.winback_rate,
                        "new": k.N, "lost": k.L, "reactivated": k.R,
                    }
                    for key, value in values.items():
                        if value is not None:
                            fams[key].add_metric([name, segment], value)
                    if segment == ALL:
                        for reason in sorted(view.kinds(ALL, LOST_REASON)):
                            n = view.count(ALL, reason, p.start_us, p.end_us)
                            reasons.add_metric([name, reason.removeprefix(LOST_REASON)], n)
        yield active
        yield from fams.values()
        yield reasons


def now_us() -> int:
    return time.time_ns() // 1000
