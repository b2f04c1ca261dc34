"""The worker's own metrics: events processed, dead-lettered and ignored, latencies, consumer lag.

Counted once per batch (one ``labels()`` lookup per label, not per event); the KPI gauges are
:mod:`metrics.exposition`'s.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

LAG_BUCKETS = (0.1, 0.5, 1, 5, 15, 60, 300, 900, 3600, 6 * 3600, 86400, 7 * 86400, 30 * 86400)
# publish -> KPI visible: fine below a second (the latency target), coarse above
VISIBLE_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.6, 0.8, 1.0, 1.5, 2.0,
                   3.0, 5.0, 10.0, 30.0, 60.0)


@dataclass(frozen=True)
class PipelineMetrics:
    """Per-worker processing counters (processing time, not event time)."""

    events: Counter
    rejected: Counter
    ignored: Counter
    duplicates: Counter
    lag: Histogram
    last_update: Gauge
    visible: Histogram
    restored: Counter
    repaired: Counter
    stage: Histogram
    facts: Gauge

    @classmethod
    def create(cls, registry: CollectorRegistry) -> PipelineMetrics:
        return cls(
            events=Counter(
                "retention_events", "Valid events processed, by type (duplicates included)", ["type"], registry=registry
            ),
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
            visible=Histogram(
                "retention_event_visible_seconds",
                "Kafka timestamp of an input message -> its KPI facts visible in this worker's KPI store",
                buckets=VISIBLE_BUCKETS, registry=registry,
            ),
            restored=Counter(
                "retention_state_restored", "Changelog entries read to restore owned partitions' states",
                registry=registry,
            ),
            repaired=Counter(
                "retention_kpi_store_repairs", "Customers whose facts were replaced because changelog entries "
                "were skipped (compacted away under the reader)", registry=registry,
            ),
            stage=Histogram(
                "retention_stage_seconds", "Where the publish -> visible time goes: input message to its pack "
                "written (stage=route, per pack, its oldest message), pack written to picked up by the apply "
                "agent (queue, per pack), apply of a batch until its changelog entries are acknowledged "
                "(apply), input message to its changelog entry written (route_apply), changelog entry "
                "written to read into the KPI store (follow)", ["stage"], buckets=VISIBLE_BUCKETS, registry=registry,
            ),
            facts=Gauge(
                "retention_kpi_store_facts", "KPI facts held in this worker's KPI store (the share of its "
                "partitions); its memory grows with them", registry=registry,
            ),
        )

    def count(self, events: dict[str, int], duplicates: int, ignored: dict[str, int],
              event_times_us: list[int], now: float) -> None:
        """Count one batch's outcomes (one ``labels()`` lookup per label, not per event)."""
        for name, n in events.items():
            self.events.labels(name).inc(n)
        if duplicates:
            self.duplicates.inc(duplicates)
        for reason, n in ignored.items():
            self.ignored.labels(reason).inc(n)
        observe = self.lag.observe
        for t in event_times_us:
            observe(max(now - t / 1e6, 0.0))


class ConsumerMetrics(Collector):
    """The batched consumers' own metrics: lag per owned partition, commit latency, rebalances."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.rebalances = Counter("retention_consumer_rebalances", "Partition revocations seen, by stage",
                                  ["stage"], registry=registry)
        self.commit_seconds = Histogram("retention_consumer_commit_seconds", "Offset commit latency, by stage",
                                        ["stage"], buckets=(0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5),
                                        registry=registry)
        self._lags: dict[str, Callable[[], list[tuple[str, int, int]]]] = {}
        registry.register(self)

    def register(self, stage: str, lag: Callable[[], list[tuple[str, int, int]]]) -> None:
        self._lags[stage] = lag

    def describe(self) -> Iterator[GaugeMetricFamily]:
        return iter(())

    def collect(self) -> Iterator[GaugeMetricFamily]:
        fam = GaugeMetricFamily("retention_consumer_lag_records",
                                "Messages in an owned partition not handled yet (high watermark - next offset)",
                                labels=["stage", "topic", "partition"])
        for stage, lag in self._lags.items():
            for topic, partition, n in lag():
                fam.add_metric([stage, topic, str(partition)], n)
        yield fam
