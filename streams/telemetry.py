"""The worker's own metrics: events processed, dead-lettered and ignored, latencies, consumer lag.

Counted once per batch (one ``labels()`` lookup per label, not per event); the KPI gauges are
:mod:`metrics.exposition`'s.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

LAG_BUCKETS = (0.1, 0.5, 1, 5, 15, 60, 300, 900, 3600, 6 * 3600, 86400, 7 * 86400, 30 * 86400)
# publish -> KPI visible: fine below a second (the latency target), coarse above
VISIBLE_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.6, 0.8, 1.0, 1.5, 2.0,
                   3.0, 5.0, 10.0, 30.0, 60.0)


class Buckets:
    """One series of a :class:`BatchHistogram`: counts per bucket and the sum."""

    def __init__(self, bounds: npt.NDArray[np.float64]) -> None:
        self.bounds, self.counts, self.sum = bounds, np.zeros(len(bounds) + 1, np.int64), 0.0

    def observe_many(self, values: Sequence[float] | npt.NDArray[np.float64]) -> None:
        """Count a batch at once: one binary search per value in numpy, no lock or call per value."""
        if len(values):
            array = np.asarray(values, dtype=np.float64)
            self.counts += np.bincount(np.searchsorted(self.bounds, array, side="left"), minlength=len(self.counts))
            self.sum += float(array.sum())

    def observe(self, value: float) -> None:
        self.observe_many([value])


class BatchHistogram(Collector):
    """A histogram observed a batch at a time (the per-event latencies of a fetched batch). Exposes what
    prometheus_client's ``Histogram`` does for the same values (``le`` buckets, ``_count``, ``_sum``), at
    a fraction of the cost of one ``observe`` per event."""

    def __init__(self, name: str, documentation: str, buckets: Iterable[float], labelnames: Sequence[str] = (),
                 registry: CollectorRegistry | None = None) -> None:  # fmt: skip
        self.name, self.documentation, self.labelnames = name, documentation, tuple(labelnames)
        self.bounds = np.array(sorted(buckets), dtype=np.float64)
        self.series: dict[tuple[str, ...], Buckets] = {} if self.labelnames else {(): Buckets(self.bounds)}
        if registry is not None:
            registry.register(self)

    def labels(self, *values: str) -> Buckets:
        series = self.series.get(values)
        if series is None:
            series = self.series[values] = Buckets(self.bounds)
        return series

    def observe_many(self, values: Sequence[float] | npt.NDArray[np.float64]) -> None:
        self.series[()].observe_many(values)

    def collect(self) -> Iterator[HistogramMetricFamily]:
        family = HistogramMetricFamily(self.name, self.documentation, labels=self.labelnames)
        edges = [*(floatToGoString(bound) for bound in self.bounds), "+Inf"]  # type: ignore[no-untyped-call]
        for values, series in list(self.series.items()):
            cumulative = np.cumsum(series.counts).tolist()
            family.add_metric(list(values), list(zip(edges, cumulative, strict=True)), series.sum)
        yield family


@dataclass(frozen=True)
class PipelineMetrics:
    """Per-worker processing counters (processing time, not event time)."""

    events: Counter
    rejected: Counter
    ignored: Counter
    duplicates: Counter
    lag: BatchHistogram
    last_update: Gauge
    visible: BatchHistogram
    restored: Counter
    repaired: Counter
    stage: BatchHistogram
    facts: Gauge
    fact_bytes: Gauge

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
            duplicates=Counter("retention_events_duplicate", "Events whose id was already applied", registry=registry),
            lag=BatchHistogram("retention_event_lag_seconds", "Arrival time minus event time", LAG_BUCKETS,
                               registry=registry),
            last_update=Gauge(
                "retention_kpi_last_update_timestamp_seconds", "When a KPI input last changed",
                registry=registry,
            ),
            visible=BatchHistogram(
                "retention_event_visible_seconds",
                "Kafka timestamp of an input message -> its KPI facts visible in this worker's KPI store",
                VISIBLE_BUCKETS, registry=registry,
            ),
            restored=Counter(
                "retention_state_restored", "Changelog entries read to restore owned partitions' states",
                registry=registry,
            ),
            repaired=Counter(
                "retention_kpi_store_repairs", "Customers whose facts were replaced because changelog entries "
                "were skipped (compacted away under the reader)", registry=registry,
            ),
            stage=BatchHistogram(
                "retention_stage_seconds", "Where the publish -> visible time goes: input message to its pack "
                "written (stage=route, per pack, its oldest message), pack written to picked up by the apply "
                "agent (queue, per pack), apply of a batch until its changelog entries are acknowledged "
                "(apply), input message to its changelog entry written (route_apply), changelog entry "
                "written to read into the KPI store (follow)", VISIBLE_BUCKETS, ["stage"], registry=registry,
            ),
            facts=Gauge(
                "retention_kpi_store_facts", "KPI facts held in this worker's KPI store (the share of its "
                "partitions); its memory grows with them", registry=registry,
            ),
            fact_bytes=Gauge(
                "retention_kpi_store_bytes", "Bytes the KPI store's fact columns hold allocated (facts, "
                "retractions not yet compacted, growth room)", registry=registry,
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
        if event_times_us:
            self.lag.observe_many(np.maximum(now - np.asarray(event_times_us, dtype=np.float64) / 1e6, 0.0))


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

    def rebalanced(self, stage: str) -> None:
        self.rebalances.labels(stage).inc()

    def committed(self, stage: str, seconds: float) -> None:
        self.commit_seconds.labels(stage).observe(seconds)

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


class _Collected(Collector):
    """Families collected already, to be rendered elsewhere."""

    def __init__(self, families: list[Metric]) -> None:
        self.families = families

    def collect(self) -> Iterator[Metric]:
        return iter(self.families)


async def exposition(registry: CollectorRegistry) -> bytes:
    """What ``/metrics`` serves. The values are collected on the event loop, as the collectors read state
    the loop changes; the text is rendered on a thread: escaping and formatting every sample took
    0.15-0.25 s of the loop a scrape with a million customers."""
    collected = CollectorRegistry(auto_describe=False)
    collected.register(_Collected(list(registry.collect())))
    return await asyncio.to_thread(generate_latest, collected)
