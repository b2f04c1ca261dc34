"""KPI gauges computed from the cluster's answers and served from the snapshot, with a fresh registry per test."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from fixtures import event
from prometheus_client import CollectorRegistry
from pure_pipeline import PurePipeline

from core.periods import to_us
from metrics.exposition import GaugeBoard
from metrics.gauges import owner
from metrics.planning import Plan, run

NOW = datetime(2025, 2, 15, 12, tzinfo=UTC)


def at(days_ago: float) -> datetime:
    return NOW - timedelta(days=days_ago)


def registry_for(p: PurePipeline, segments: list[str], now: datetime | None = NOW) -> CollectorRegistry:
    registry = CollectorRegistry()
    now_us = None if now is None else to_us(now)

    async def at() -> int | None:
        return now_us

    async def runner(job: Plan[Any]) -> Any:
        return run(job, p.ask)

    board = GaugeBoard(lambda: segments, at, tz=ZoneInfo("UTC"), currency="EUR", thresholds=(0.8, 0.95), run=runner)
    asyncio.run(board.refresh())
    registry.register(board)
    return registry


def shop(workers: int = 1) -> PurePipeline:
    p = PurePipeline(workers=workers)
    for i in range(10):
        p.send(event("customer.signed_up", at(100), {"customer_id": f"c{i}", "segment": {"plan": "pro"}}))
    p.send(
        event("customer.churned", at(2), {"customer_id": "c0", "reason": "price"}),
        event("order.placed", at(3), {"customer_id": "c1", "order_id": "o1", "amount": 100, "currency": "EUR"}),
        event("order.placed", at(1), {"customer_id": "c1", "order_id": "o2", "amount": 50, "currency": "USD"}),
        event("order.refunded", at(0.5), {"customer_id": "c1", "order_id": "o2", "amount": 10, "currency": "EUR"}),
        event("survey.nps", at(1), {"customer_id": "c2", "score": 10}),
        event("survey.nps", at(1), {"customer_id": "c3", "score": 3}),
        event("ticket.opened", at(1), {"customer_id": "c4", "ticket_id": "t", "kind": "complaint",
                                       "category": "billing"}),
        event("ticket.replied", at(1) + timedelta(hours=2), {"customer_id": "c4", "ticket_id": "t",
                                                             "author": "agent"}),
        event("ticket.opened", at(0.25), {"customer_id": "c5", "ticket_id": "u"}),
    )
    return p


def test_gauges_follow_the_store() -> None:
    reg = registry_for(shop(), ["all", "plan:pro"])
    w7, seg = {"window": "7d", "segment": "all"}, "all"
    assert reg.get_sample_value("retention_customers_active", {"segment": seg}) == 9
    assert reg.get_sample_value("retention_customer_churn_ratio", w7) == 0.1
    assert reg.get_sample_value("retention_customer_retention_ratio", w7) == 0.9
    assert reg.get_sample_value("retention_customer_churn_ratio", {"window": "1d", "segment": "all"}) == 0.0
    assert reg.get_sample_value("retention_customers_lost_by_reason", {"window": "month", "reason": "price"}) == 1
    assert reg.get_sample_value("retention_net_revenue", {**w7, "currency": "EUR"}) == 100 + 46 - 10
    assert reg.get_sample_value("retention_repeat_purchase_ratio", w7) == 1.0
    assert reg.get_sample_value("retention_refund_ratio", w7) == 0.5
    assert reg.get_sample_value("retention_nps_score", w7) == 0.0
    assert reg.get_sample_value("retention_nps_responses", {**w7, "category": "detractor"}) == 1
    assert reg.get_sample_value("retention_first_response_seconds", {"window": "7d", "quantile": "0.5"}) == 7200
    assert reg.get_sample_value("retention_complaints", {"window": "7d", "category": "billing"}) == 1
    assert reg.get_sample_value("retention_tickets_awaiting_first_response", {}) == 1
    assert reg.get_sample_value("retention_oldest_ticket_awaiting_first_response_age_seconds", {}) == 6 * 3600
    assert reg.get_sample_value("retention_abc_customers", {"class": "A"}) == 1
    assert reg.get_sample_value("retention_clv_historical_mean", {"segment": "plan:pro", "currency": "EUR"}) == 136


def samples(registry: CollectorRegistry) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {(s.name, tuple(sorted(s.labels.items()))): s.value for fam in registry.collect() for s in fam.samples
            if s.name != "retention_kpi_gauges_timestamp_seconds"}


def test_gauges_of_several_workers_equal_one_workers() -> None:
    segments = ["all", "plan:pro", "plan:other"]
    one = samples(registry_for(shop(), segments))
    assert len(one) > 100
    assert samples(registry_for(shop(workers=3), segments)) == one


def test_only_owned_segments_are_exported() -> None:
    reg = registry_for(shop(), ["plan:pro"])
    assert reg.get_sample_value("retention_customers_active", {"segment": "plan:pro"}) == 9
    assert reg.get_sample_value("retention_customers_active", {"segment": "all"}) is None
    # series without a segment label belong to the owner of "all"
    assert reg.get_sample_value("retention_tickets_awaiting_first_response", {}) is None


def test_undefined_ratios_are_absent_not_zero() -> None:
    reg = registry_for(PurePipeline(), ["all"])
    assert reg.get_sample_value("retention_customer_retention_ratio", {"window": "7d", "segment": "all"}) is None
    assert reg.get_sample_value("retention_csat_ratio", {"window": "7d", "segment": "all"}) is None
    assert reg.get_sample_value("retention_customers_new", {"window": "7d", "segment": "all"}) == 0


def test_no_kpi_series_before_the_first_event() -> None:
    reg = registry_for(shop(), ["all"], now=None)
    assert reg.get_sample_value("retention_customers_active", {"segment": "all"}) is None


def test_cohort_gauges_are_the_last_13_months_with_relative_labels() -> None:
    # NOW is 15 February 2025: c0..c9 signed up 100 days before, on 7 November 2024 (3 months ago); c0 churned
    # 2 days ago. c1 ordered 100 EUR 3 days ago and 46 EUR (50 USD) 1 day ago, 10 EUR refunded: nothing in
    # November, so revenue retention is undefined (no series).
    reg = registry_for(shop(), ["all", "plan:pro"])
    for seg in ("all", "plan:pro"):
        assert reg.get_sample_value("retention_cohort_customers", {"segment": seg, "cohort_offset": "3"}) == 10
        assert reg.get_sample_value("retention_cohort_customers", {"segment": seg, "cohort_offset": "0"}) == 0
        cell = {"segment": seg, "cohort_offset": "3"}
        assert [reg.get_sample_value("retention_cohort_customer_retention_ratio", {**cell, "cohort_age": str(k)})
                for k in range(5)] == [1.0, 1.0, 1.0, 0.9, None]  # age 3: February, to date
        assert reg.get_sample_value("retention_cohort_customer_retention_ratio",
                                    {"segment": seg, "cohort_offset": "0", "cohort_age": "0"}) is None
    assert reg.get_sample_value("retention_cohort_revenue_retention_ratio",
                                {"segment": "all", "cohort_offset": "3", "cohort_age": "3"}) is None
    names = {s.name for fam in reg.collect() for s in fam.samples}
    offsets = {s.labels["cohort_offset"] for fam in reg.collect() for s in fam.samples
               if s.name == "retention_cohort_customers"}
    assert offsets == {str(o) for o in range(13)}
    assert "retention_cohort_revenue_retention_ratio" not in names  # no November revenue: undefined everywhere


def test_cohort_revenue_gauges_for_all_only() -> None:
    p = shop().send(event("order.placed", datetime(2024, 11, 20, tzinfo=UTC),
                          {"customer_id": "c2", "order_id": "n1", "amount": 200, "currency": "EUR"}))
    reg = registry_for(p, ["all", "plan:pro"])
    cell = {"cohort_offset": "3", "cohort_age": "3"}
    assert reg.get_sample_value("retention_cohort_revenue_retention_ratio", {**cell, "segment": "all"}) == 136 / 200
    assert reg.get_sample_value("retention_cohort_revenue_retention_ratio", {**cell, "segment": "plan:pro"}) is None


def test_owner_spreads_segments_and_is_stable() -> None:
    segments = ["all", "plan:free", "plan:basic", "plan:pro", "plan:enterprise", "plan:other", "region:eu"]
    owners = {s: owner(s, 4) for s in segments}
    assert owners == {s: owner(s, 4) for s in segments}
    assert len(set(owners.values())) > 1
    assert all(0 <= o < 4 for o in owners.values())
