"""The worker's own metrics, with a fresh registry per test."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry, Histogram, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from streams.telemetry import LAG_BUCKETS, BatchHistogram, ConsumerMetrics, PipelineMetrics, exposition


def test_pipeline_counters_have_prometheus_names() -> None:
    registry = CollectorRegistry()
    m = PipelineMetrics.create(registry)
    m.rejected.labels("not_json").inc()
    m.events.labels("customer.signed_up").inc(2)
    m.lag.observe_many([3.0])
    assert registry.get_sample_value("retention_events_rejected_total", {"reason": "not_json"}) == 1
    assert registry.get_sample_value("retention_events_total", {"type": "customer.signed_up"}) == 2
    assert registry.get_sample_value("retention_event_lag_seconds_count", {}) == 1


def test_batch_counts_are_added_once_per_label() -> None:
    registry = CollectorRegistry()
    m = PipelineMetrics.create(registry)
    m.count({"order.placed": 3}, duplicates=1, ignored={"churn_not_active": 2}, event_times_us=[0, 0], now=10.0)
    assert registry.get_sample_value("retention_events_total", {"type": "order.placed"}) == 3
    assert registry.get_sample_value("retention_events_duplicate_total", {}) == 1
    assert registry.get_sample_value("retention_events_ignored_total", {"reason": "churn_not_active"}) == 2
    assert registry.get_sample_value("retention_event_lag_seconds_sum", {}) == 20.0


def test_consumer_lag_is_read_at_scrape_time() -> None:
    registry = CollectorRegistry()
    lags = [("in", 0, 5)]
    ConsumerMetrics(registry).register("route", lambda: lags)
    labels = {"stage": "route", "topic": "in", "partition": "0"}
    assert registry.get_sample_value("retention_consumer_lag_records", labels) == 5
    lags[0] = ("in", 0, 0)
    assert registry.get_sample_value("retention_consumer_lag_records", labels) == 0


@given(st.lists(st.floats(0, 1e7, allow_nan=False) | st.sampled_from(LAG_BUCKETS), max_size=60),
       st.lists(st.integers(0, 60), max_size=5))
def test_a_batch_histogram_exposes_what_a_histogram_does(values: list[float], cuts: list[int]) -> None:
    """Observed in batches of any split, the same buckets, count and sum as one observe per value."""
    one, batched = CollectorRegistry(), CollectorRegistry()
    reference = Histogram("h_seconds", "doc", ["stage"], buckets=LAG_BUCKETS, registry=one)
    histogram = BatchHistogram("h_seconds", "doc", LAG_BUCKETS, ["stage"], registry=batched)
    for value in values:
        reference.labels("follow").observe(value)
    bounds = sorted({0, len(values), *(min(c, len(values)) for c in cuts)})
    for start, end in itertools.pairwise(bounds):
        histogram.labels("follow").observe_many(values[start:end])
    samples = {(s.name, tuple(sorted(s.labels.items()))): s.value for s in
               next(iter(text_string_to_metric_families(generate_latest(batched).decode()))).samples}  # fmt: skip
    expected = {(s.name, tuple(sorted(s.labels.items()))): s.value for s in reference.collect()[0].samples
                if not s.name.endswith("_created")}  # fmt: skip
    assert samples.keys() == expected.keys()
    for key, value in expected.items():
        assert samples[key] == pytest.approx(value, rel=1e-9, abs=1e-6), key


@pytest.mark.asyncio
async def test_the_exposition_rendered_on_a_thread_is_what_prometheus_client_renders() -> None:
    registry = CollectorRegistry()
    metrics = PipelineMetrics.create(registry)
    metrics.events.labels("order.placed").inc(3)
    visible = BatchHistogram("retention_test_seconds", "test", LAG_BUCKETS, ["stage"], registry=registry)
    visible.labels("apply").observe_many([0.2, 0.7, 30.0])
    ConsumerMetrics(registry).register("route", lambda: [("orders", 0, 5)])
    assert await exposition(registry) == generate_latest(registry)
