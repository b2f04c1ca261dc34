"""KPI gauges read from the index at scrape time, with a fresh registry per test."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from prometheus_client import CollectorRegistry

from metrics.exposition import KpiCollector, PipelineMetrics
from metrics.index import build
from metrics.lifecycle import LOST, LOST_REASON, NEW
from metrics.periods import to_us

NOW = to_us(datetime(2025, 2, 15, 12, tzinfo=UTC))
DAY = 86_400_000_000


def registry_with(contributions: list[tuple[int, str, str]], now: int | None) -> CollectorRegistry:
    index = build(contributions)
    registry = CollectorRegistry()
    registry.register(KpiCollector(lambda: index, lambda: ["all", "plan:pro"], lambda: now, ZoneInfo("UTC")))
    return registry


def test_gauges_follow_the_index() -> None:
    contributions = [(NOW - 100 * DAY + i, NEW, "all") for i in range(10)]
    contributions += [(NOW - 2 * DAY, LOST, "all"), (NOW - 2 * DAY, LOST_REASON + "price", "all")]
    reg = registry_with(contributions, NOW)
    assert reg.get_sample_value("retention_customers_active", {"segment": "all"}) == 9
    assert reg.get_sample_value("retention_customer_churn_ratio", {"window": "7d", "segment": "all"}) == 0.1
    assert reg.get_sample_value("retention_customer_retention_ratio", {"window": "7d", "segment": "all"}) == 0.9
    assert reg.get_sample_value("retention_customer_churn_ratio", {"window": "1d", "segment": "all"}) == 0.0
    assert reg.get_sample_value("retention_customers_lost_by_reason", {"window": "month", "reason": "price"}) == 1
    assert reg.get_sample_value("retention_customers_new", {"window": "90d", "segment": "all"}) == 0


def test_undefined_ratios_are_absent_not_zero() -> None:
    reg = registry_with([], NOW)
    assert reg.get_sample_value("retention_customer_retention_ratio", {"window": "7d", "segment": "pro"}) is None
    assert reg.get_sample_value("retention_customer_retention_ratio", {"window": "7d", "segment": "all"}) is None
    assert reg.get_sample_value("retention_customers_new", {"window": "7d", "segment": "all"}) == 0


def test_no_windowed_series_before_the_first_event() -> None:
    reg = registry_with([(NOW, NEW, "all")], None)
    assert reg.get_sample_value("retention_customers_active", {"segment": "all"}) is None


def test_pipeline_counters_have_prometheus_names() -> None:
    registry = CollectorRegistry()
    m = PipelineMetrics.create(registry)
    m.rejected.labels("not_json").inc()
    m.events.labels("customer.signed_up").inc(2)
    m.lag.observe(3.0)
    assert registry.get_sample_value("retention_events_rejected_total", {"reason": "not_json"}) == 1
    assert registry.get_sample_value("retention_events_total", {"type": "customer.signed_up"}) == 2
    assert registry.get_sample_value("retention_event_lag_seconds_count", {}) == 1
