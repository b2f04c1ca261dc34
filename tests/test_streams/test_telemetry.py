"""The worker's own metrics, with a fresh registry per test."""

from __future__ import annotations

from prometheus_client import CollectorRegistry

from streams.telemetry import ConsumerMetrics, PipelineMetrics


def test_pipeline_counters_have_prometheus_names() -> None:
    registry = CollectorRegistry()
    m = PipelineMetrics.create(registry)
    m.rejected.labels("not_json").inc()
    m.events.labels("customer.signed_up").inc(2)
    m.lag.observe(3.0)
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
