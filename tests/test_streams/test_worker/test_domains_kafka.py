"""Every KPI domain through the real broker: hand-made events per domain, exact KPI query and gauges.

One worker (``clock = "event"``) receives four small event sets, each on the input topic of its domain
(docs/contract/events.md, "Topics"): lifecycle and orders, support tickets, surveys and feedback, sales reps.
Each domain uses its own customers and every customer's events go to one topic in event-time order,
so the default allowed lateness (7 d per customer) never applies. The newest event of all is
``rep.joined`` at 2025-03-20T12:00Z: the calendar gauges (``window="quarter"``) cover
``[2025-01-01, 2025-03-20T12:00:00.000001)``, which holds every Q1 event, so they equal the KPI query of
``2025-Q1``. Each test writes its hand computation next to the expected values.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator, Mapping
from datetime import datetime
from typing import Any

import pytest
from fixtures import (
    Series,
    WorkerProcess,
    converge,
    encode,
    event,
    isolated_env,
    produce,
    running_worker,
    samples,
    series,
)

pytestmark = pytest.mark.integration

NEWEST = "2025-03-20T12:00:00Z"  # the rep.joined of r6: "now" of every gauge (clock = event)

# -- the event sets, one per domain ------------------------------------------------------------------


def _c(type_: str, time_: str, **data: Any) -> dict[str, Any]:
    return event(type_, time_, data)


LIFECYCLE = [
    # customers before Q1: L1, L2 (pro, eu), L3, L4 (basic, us); L4 churns before Q1 (lost at start)
    _c("customer.signed_up", "2024-12-01T10:00:00Z", customer_id="L1", segment={"plan": "pro", "region": "eu"}),
    _c("customer.signed_up", "2024-12-02T10:00:00Z", customer_id="L2", segment={"plan": "pro", "region": "eu"}),
    _c("customer.signed_up", "2024-12-03T10:00:00Z", customer_id="L3", segment={"plan": "basic", "region": "us"}),
    _c("customer.signed_up", "2024-12-04T10:00:00Z", customer_id="L4", segment={"plan": "basic", "region": "us"}),
    _c("customer.churned", "2024-12-20T10:00:00Z", customer_id="L4", reason="service"),
    # Q1: L4 won back, L5 new (pro, apac) and lost for an unknown reason, L1 lost (price), L6 new (basic, eu),
    # L3 moves from basic to pro (not churn)
    _c("customer.reactivated", "2025-01-15T10:00:00Z", customer_id="L4"),
    _c("customer.signed_up", "2025-01-20T10:00:00Z", customer_id="L5", segment={"plan": "pro", "region": "apac"}),
    _c("customer.churned", "2025-02-01T10:00:00Z", customer_id="L1", reason="price"),
    _c("customer.signed_up", "2025-02-05T10:00:00Z", customer_id="L6", segment={"plan": "basic", "region": "eu"}),
    _c("customer.churned", "2025-02-10T10:00:00Z", customer_id="L5", reason="bored"),
    _c("customer.updated", "2025-02-15T10:00:00Z", customer_id="L3", segment={"plan": "pro"}),
]

ORDERS = [
    _c("order.placed", "2024-12-10T10:00:00Z", customer_id="L2", order_id="o0", amount=10, currency="EUR"),
    _c("order.placed", "2025-01-05T10:00:00Z", customer_id="L2", order_id="o1", amount=100, currency="EUR"),
    _c("order.placed", "2025-01-06T10:00:00Z", customer_id="L2", order_id="o2", amount=50, currency="USD"),
    _c("order.refunded", "2025-01-07T10:00:00Z", customer_id="L2", order_id="o1", amount=30, currency="EUR"),
    _c("order.placed", "2025-02-06T10:00:00Z", customer_id="L6", order_id="o4", amount=20, currency="EUR"),
    _c("order.placed", "2025-02-16T10:00:00Z", customer_id="L3", order_id="o3", amount=200, currency="EUR"),
    _c("order.returned", "2025-02-17T10:00:00Z", customer_id="L3", order_id="o3", amount=100, currency="USD"),
]

SUPPORT = [
    # T1 (S1): complaint/billing; a customer reply does not count; first agent reply after 1 h; resolved after
    # 4 h; reopened and resolved again (no second resolution sample)
    _c("ticket.opened", "2025-03-03T08:00:00Z", customer_id="S1", ticket_id="T1", kind="complaint",
       category="billing", channel="email"),
    _c("ticket.replied", "2025-03-03T08:30:00Z", customer_id="S1", ticket_id="T1", author="customer"),
    _c("ticket.replied", "2025-03-03T09:00:00Z", customer_id="S1", ticket_id="T1", author="agent"),
    _c("ticket.replied", "2025-03-03T10:00:00Z", customer_id="S1", ticket_id="T1", author="agent"),
    _c("ticket.resolved", "2025-03-03T12:00:00Z", customer_id="S1", ticket_id="T1"),
    _c("ticket.reopened", "2025-03-04T08:00:00Z", customer_id="S1", ticket_id="T1"),
    _c("ticket.resolved", "2025-03-04T10:00:00Z", customer_id="S1", ticket_id="T1"),
    # T2 (S2): complaint/billing; agent reply after 2 h; resolved after 24 h
    _c("ticket.opened", "2025-03-05T00:00:00Z", customer_id="S2", ticket_id="T2", kind="complaint",
       category="billing"),
    _c("ticket.replied", "2025-03-05T02:00:00Z", customer_id="S2", ticket_id="T2", author="agent"),
    _c("ticket.resolved", "2025-03-06T00:00:00Z", customer_id="S2", ticket_id="T2"),
    # T3 (S3): complaint with a category outside ticket_categories -> "other"; reply after 10 min; unresolved
    _c("ticket.opened", "2025-03-06T00:00:00Z", customer_id="S3", ticket_id="T3", kind="complaint",
       category="weather"),
    _c("ticket.replied", "2025-03-06T00:10:00Z", customer_id="S3", ticket_id="T3", author="agent"),
    # T4 (S3): a question nobody answered: awaits a first reply and a resolution
    _c("ticket.opened", "2025-03-07T00:00:00Z", customer_id="S3", ticket_id="T4", kind="question"),
    # T5 (S1): kind defaults to request; reply after 5 h, resolved after 6 h
    _c("ticket.opened", "2025-03-08T00:00:00Z", customer_id="S1", ticket_id="T5"),
    _c("ticket.replied", "2025-03-08T05:00:00Z", customer_id="S1", ticket_id="T5", author="agent"),
    _c("ticket.resolved", "2025-03-08T06:00:00Z", customer_id="S1", ticket_id="T5"),
]

FEEDBACK = [
    _c("survey.nps", "2024-12-15T10:00:00Z", customer_id="F3", score=0),  # before Q1: not counted
    _c("feedback.received", "2024-12-20T10:00:00Z", customer_id="F4", feedback_id="fb4", channel="review"),
    _c("survey.nps", "2025-03-10T10:00:00Z", customer_id="F1", score=10),
    _c("survey.nps", "2025-03-10T11:00:00Z", customer_id="F2", score=9, ticket_id="T9"),
    _c("survey.nps", "2025-03-10T12:00:00Z", customer_id="F3", score=9),
    _c("survey.csat", "2025-03-10T13:00:00Z", customer_id="F1", score=5),
    _c("survey.nps", "2025-03-11T10:00:00Z", customer_id="F1", score=7),
    _c("survey.csat", "2025-03-11T11:00:00Z", customer_id="F2", score=4, ticket_id="T9"),
    _c("survey.csat", "2025-03-11T12:00:00Z", customer_id="F3", score=3),
    _c("survey.nps", "2025-03-12T10:00:00Z", customer_id="F2", score=0),
    _c("survey.csat", "2025-03-12T11:00:00Z", customer_id="F3", score=1),
    _c("feedback.received", "2025-03-12T12:00:00Z", customer_id="F1", feedback_id="fb1", channel="social",
       rating=2.5),
    _c("feedback.received", "2025-03-12T13:00:00Z", customer_id="F2", feedback_id="fb2", channel="email"),
    _c("feedback.received", "2025-03-12T14:00:00Z", customer_id="F3", feedback_id="fb3"),
    _c("feedback.responded", "2025-03-13T10:00:00Z", customer_id="F1", feedback_id="fb1"),
    _c("survey.nps", "2025-03-14T10:00:00Z", customer_id="F3", score=8),
    _c("feedback.responded", "2025-03-15T10:00:00Z", customer_id="F3", feedback_id="fb3"),
    _c("survey.nps", "2025-03-15T11:00:00Z", customer_id="F4", score=9),
    _c("survey.nps", "2025-03-16T10:00:00Z", customer_id="F4", score=6),
    _c("survey.csat", "2025-03-16T11:00:00Z", customer_id="F4", score=4),
    _c("feedback.responded", "2025-03-16T12:00:00Z", customer_id="F4", feedback_id="fb4"),
]

TEAM = [
    _c("rep.joined", "2024-10-01T09:00:00Z", rep_id="r7", team="north"),
    _c("rep.joined", "2024-11-01T09:00:00Z", rep_id="r1", team="north"),
    _c("rep.joined", "2024-11-15T09:00:00Z", rep_id="r2", team="north"),
    _c("rep.joined", "2024-12-01T09:00:00Z", rep_id="r3"),
    _c("rep.joined", "2024-12-10T09:00:00Z", rep_id="r4", team="south"),
    _c("rep.left", "2024-12-20T09:00:00Z", rep_id="r3"),
    _c("rep.left", "2025-01-20T09:00:00Z", rep_id="r7", team="north"),
    _c("rep.left", "2025-02-01T09:00:00Z", rep_id="r2", team="north"),
    _c("rep.joined", "2025-02-10T09:00:00Z", rep_id="r5", team="south"),
    _c("rep.joined", "2025-02-20T09:00:00Z", rep_id="r7", team="north"),
    _c("rep.left", "2025-03-01T09:00:00Z", rep_id="r5", team="south"),
    _c("rep.joined", NEWEST, rep_id="r6", team="south"),
]

DOMAINS = {
    "RETENTION_TOPIC_LIFECYCLE": LIFECYCLE + ORDERS,
    "RETENTION_TOPIC_SUPPORT": SUPPORT,
    "RETENTION_TOPIC_FEEDBACK": FEEDBACK,
    "RETENTION_TOPIC_TEAM": TEAM,
}


def _key(ev: dict[str, Any]) -> bytes:
    data = ev["data"]
    return str(data.get("customer_id") or data["rep_id"]).encode()


def _us(text: str) -> int:
    t = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return int(t.timestamp()) * 1_000_000


# -- helpers -----------------------------------------------------------------------------------------

def gauges(worker: WorkerProcess, expected: Mapping[Series, float | None]) -> dict[Series, float | None]:
    """The exported value of each expected series (``None``: not exported)."""
    got = samples(worker.fresh_metrics())
    return {s: got.get(s) for s in expected}


def pick(answer: dict[str, Any], kpis: dict[str, Any], inputs: dict[str, Any]) -> dict[str, Any]:
    return {"kpis": {k: answer["kpis"][k] for k in kpis}, "inputs": {k: answer["inputs"][k] for k in inputs}}


def check_query(worker: WorkerProcess, segment: str, kpis: dict[str, Any], inputs: dict[str, Any]) -> None:
    converge(lambda: pick(worker.kpis("2025-Q1", segment), kpis, inputs), {"kpis": kpis, "inputs": inputs},
             f"the 2025-Q1 KPI query of {segment}")


# -- the worker, fed once with every domain ----------------------------------------------------------


@pytest.fixture(scope="module")
def worker(stack: str) -> Iterator[WorkerProcess]:
    env = isolated_env(RETENTION_CLOCK="event")
    with running_worker(env) as w:
        messages: list[tuple[str, bytes | None, bytes]] = [
            (env[topic], _key(ev), encode(ev))
            for topic, events in DOMAINS.items()
            for ev in sorted(events, key=lambda e: e["time"])  # per key in event-time order: never too late
        ]
        produce(stack, messages)
        sent = Counter(ev["type"] for events in DOMAINS.values() for ev in events)
        expected = {series("retention_events_total", type=t): float(n) for t, n in sent.items()}
        # every event routed by its type and applied exactly once
        converge(lambda: gauges(w, expected), expected, "every event to be applied", timeout=60)
        yield w


def test_every_event_is_applied_and_none_rejected_or_ignored(worker: WorkerProcess) -> None:
    got = samples(worker.fresh_metrics())
    assert got[series("retention_events_total", type="order.placed")] == 5.0
    assert got[series("retention_events_total", type="ticket.replied")] == 6.0
    assert got[series("retention_events_total", type="survey.nps")] == 9.0
    assert got[series("retention_events_total", type="rep.joined")] == 8.0
    assert not [s for s in got if s[0] in ("retention_events_rejected_total", "retention_events_ignored_total")]
    assert got.get(series("retention_events_duplicate_total")) == 0.0


def test_lifecycle(worker: WorkerProcess) -> None:
    # all, Q1 = [2025-01-01, 2025-04-01):
    #   B = active at Jan 1 = L1, L2, L3 (L4 churned in December)                 = 3
    #   N = L5, L6 = 2;  L = L1 (price), L5 ("bored" -> other) = 2;  R = L4 = 1
    #   E = B + N + R - L = 3 + 2 + 1 - 2 = 4 (L2, L3, L4, L6); lost at start = L4 = 1
    #   retention = (E - N) / B = 2/3; churn = L / B = 2/3; win-back = R / (lost at start + L) = 1/3
    check_query(
        worker, "all",
        {"retention_rate": 2 / 3, "churn_rate": 2 / 3, "winback_rate": 1 / 3,
         "lost_by_reason": {"other": 1, "price": 1}, "customers_active_at_end": 4},
        {"B": 3, "E": 4, "N": 2, "L": 2, "R": 1, "moved_in": 0, "moved_out": 0, "lost_at_start": 1},
    )
    # plan:pro: B = L1, L2 = 2; N = L5; L = L1, L5; moved in = L3 (Feb 15); E = L2, L3 = 2
    #   retention = (E - N - moved_in) / B = (2 - 1 - 1) / 2 = 0; churn = 2/2 = 1; win-back = 0 / (0 + 2) = 0
    check_query(
        worker, "plan:pro",
        {"retention_rate": 0.0, "churn_rate": 1.0, "winback_rate": 0.0,
         "lost_by_reason": {"other": 1, "price": 1}, "customers_active_at_end": 2},
        {"B": 2, "E": 2, "N": 1, "L": 2, "R": 0, "moved_in": 1, "moved_out": 0, "lost_at_start": 0},
    )
    # plan:basic: B = L3 = 1 (L4 lost); N = L6; R = L4; moved out = L3; E = L4, L6 = 2; lost at start = L4
    #   retention = (2 - 1 - 0) / 1 = 1; churn = 0 / 1 = 0; win-back = 1 / (1 + 0) = 1
    check_query(
        worker, "plan:basic",
        {"retention_rate": 1.0, "churn_rate": 0.0, "winback_rate": 1.0, "lost_by_reason": {},
         "customers_active_at_end": 2},
        {"B": 1, "E": 2, "N": 1, "L": 0, "R": 1, "moved_in": 0, "moved_out": 1, "lost_at_start": 1},
    )
    # region:eu: B = L1, L2; N = L6; L = L1; E = L2, L6 -> retention (2 - 1) / 2, churn 1/2, win-back 0 / (0 + 1)
    check_query(
        worker, "region:eu",
        {"retention_rate": 0.5, "churn_rate": 0.5, "winback_rate": 0.0, "lost_by_reason": {"price": 1}},
        {"B": 2, "E": 2, "N": 1, "L": 1, "R": 0},
    )
    q = {"window": "quarter"}
    expected: dict[Series, float | None] = {
        series("retention_customer_retention_ratio", **q, segment="all"): 2 / 3,
        series("retention_customer_churn_ratio", **q, segment="all"): 2 / 3,
        series("retention_customer_winback_ratio", **q, segment="all"): 1 / 3,
        series("retention_customers_new", **q, segment="all"): 2.0,
        series("retention_customers_lost", **q, segment="all"): 2.0,
        series("retention_customers_reactivated", **q, segment="all"): 1.0,
        series("retention_customers_lost_by_reason", **q, reason="price"): 1.0,
        series("retention_customers_lost_by_reason", **q, reason="other"): 1.0,
        series("retention_customers_lost_by_reason", **q, reason="service"): None,  # lost in December
        series("retention_customer_retention_ratio", **q, segment="plan:pro"): 0.0,
        series("retention_customer_churn_ratio", **q, segment="plan:pro"): 1.0,
        series("retention_customer_retention_ratio", **q, segment="plan:basic"): 1.0,
        series("retention_customer_winback_ratio", **q, segment="plan:basic"): 1.0,
        series("retention_customer_retention_ratio", **q, segment="region:eu"): 0.5,
        # nobody on the enterprise plan: undefined, so absent (never 0)
        series("retention_customer_retention_ratio", **q, segment="plan:enterprise"): None,
        series("retention_customers_active", segment="all"): 4.0,
        series("retention_customers_active", segment="plan:pro"): 2.0,
        series("retention_customers_active", segment="plan:basic"): 2.0,
        series("retention_customers_active", segment="region:apac"): 0.0,
    }
    converge(lambda: gauges(worker, expected), expected, "the lifecycle gauges")


def test_orders(worker: WorkerProcess) -> None:
    # all, Q1: orders o1 100 EUR, o2 50 USD = 50 * 0.92 = 46 EUR, o4 20 EUR, o3 200 EUR -> 4 orders, 366 EUR
    #   (o0 of 10 EUR is in December). Refund of o1: 30 EUR; return of o3: 100 USD = 92 EUR.
    #   net revenue = 366 - 30 = 336; refund rate = 1/4; return rate = 1/4; by amount 30/366, 92/366
    #   customers ordering in Q1: L2 (o1, o2), L6, L3 = 3, with >= 2 orders: L2 -> repeat rate 1/3
    #   to date (before Apr 1): ordered L2, L6, L3 = 3; >= 2: L2 -> 1/3; net to date = 10 + 366 - 30 = 346
    #   historical CLV = 346 / 3
    #   predicted CLV over [Jan 1, Apr 1) (90 days): net 336, active at end 4, at start 3, lost 2:
    #   monthly revenue per active = 336 / 3 / 4 = 28; monthly churn = 2 / 3 / 3; 28 / (2/9) = 126 (< 60 months)
    arpu, churn = 336.0 / 3 / 4, 2 / 3 / 3
    predicted = arpu * min(1 / churn, 60)
    check_query(
        worker, "all",
        {"repeat_purchase_rate": 1 / 3, "repeat_purchase_rate_lifetime": 1 / 3, "refund_rate": 0.25,
         "return_rate": 0.25, "refund_rate_by_amount": 30 / 366, "return_rate_by_amount": 92 / 366,
         "net_revenue": 336.0, "clv_historical_mean": 346 / 3, "clv_predicted_mean": predicted},
        {"orders": 4, "customers_ordering": 3, "customers_ordering_2plus": 1, "customers_ordered_to_date": 3,
         "customers_ordered_2plus_to_date": 1, "orders_refunded": 1, "orders_returned": 1,
         "order_amount": 366.0, "refund_amount": 30.0, "return_amount": 92.0, "net_revenue_to_date": 346.0,
         "clv_predicted": {"window_start": "2025-01-01T00:00:00+00:00", "net_revenue_90d": 336.0,
                           "active_at_end": 4, "active_at_window_start": 3, "lost_90d": 2,
                           "monthly_revenue_per_active": arpu, "monthly_churn_rate": churn}},
    )
    # plan:pro (segment at the order's time): o1, o2 of L2 and o3 of L3 (pro since Feb 15) = 346 EUR - 30
    #   refund rate 1/3, return rate 1/3; buyers L2, L3, repeat L2 -> 1/2
    check_query(
        worker, "plan:pro",
        {"repeat_purchase_rate": 0.5, "refund_rate": 1 / 3, "return_rate": 1 / 3, "net_revenue": 316.0},
        {"orders": 3, "order_amount": 346.0, "refund_amount": 30.0, "return_amount": 92.0},
    )
    # plan:basic: o4 of L6 only
    check_query(
        worker, "plan:basic",
        {"repeat_purchase_rate": 0.0, "refund_rate": 0.0, "return_rate": 0.0, "net_revenue": 20.0},
        {"orders": 1, "order_amount": 20.0, "refund_amount": 0.0},
    )
    q = {"window": "quarter"}
    eur = {"currency": "EUR"}
    expected: dict[Series, float | None] = {
        series("retention_refund_ratio", **q, segment="all"): 0.25,
        series("retention_return_ratio", **q, segment="all"): 0.25,
        series("retention_repeat_purchase_ratio", **q, segment="all"): 1 / 3,
        series("retention_net_revenue", **q, segment="all", **eur): 336.0,
        series("retention_net_revenue", **q, segment="plan:pro", **eur): 316.0,
        series("retention_net_revenue", **q, segment="plan:basic", **eur): 20.0,
        series("retention_net_revenue", **q, segment="plan:free", **eur): 0.0,
        series("retention_refund_ratio", **q, segment="plan:pro"): 1 / 3,
        series("retention_refund_ratio", **q, segment="plan:free"): None,  # no orders: undefined
        # CLV at "now" (2025-03-20T12:00:00.000001): to date 346 / 3. Predicted: the 90 days from
        # 2024-12-20T12:00:00.000001 hold the same orders, 3 active at the start (L4 churned at 10:00), 2 lost
        series("retention_clv_historical_mean", segment="all", **eur): 346 / 3,
        series("retention_clv_predicted_mean", segment="all", **eur): predicted,
    }
    converge(lambda: gauges(worker, expected), expected, "the order gauges")


def test_support(worker: WorkerProcess) -> None:
    # first agent replies: T1 1 h, T2 2 h, T3 10 min, T5 5 h -> [600, 3600, 7200, 18000] s
    #   mean 29400 / 4 = 7350; nearest rank: p50 = 2nd = 3600, p90 = p99 = 4th = 18000
    # first resolutions: T1 4 h, T2 24 h, T5 6 h -> [14400, 21600, 86400] s (T1's second resolution not counted)
    #   mean 122400 / 3 = 40800; p50 = 2nd = 21600, p90 = p99 = 3rd = 86400
    # reopens 1; awaiting a first reply: T4; awaiting resolution: T3, T4
    # complaints: T1, T2 billing, T3 "weather" -> other = 3; per 1000 active: mean active (B + E) / 2 = 3.5
    first = {"count": 4, "mean": 7350.0, "p50": 3600.0, "p90": 18000.0, "p99": 18000.0}
    resolution = {"count": 3, "mean": 40800.0, "p50": 21600.0, "p90": 86400.0, "p99": 86400.0}
    check_query(
        worker, "all",
        {"first_response_seconds": first, "resolution_seconds": resolution, "reopens": 1,
         "tickets_awaiting_first_response": 1, "tickets_awaiting_resolution": 2, "complaints": 3,
         "complaints_by_category": {"billing": 2, "other": 1}, "complaints_per_1000_active": 3000 / 3.5},
        {"tickets_opened": 5, "complaints": 3, "mean_active_customers": 3.5},
    )
    q = {"window": "quarter"}
    now_us = _us(NEWEST) + 1
    expected: dict[Series, float | None] = {
        series("retention_first_response_seconds", **q, quantile="0.5"): 3600.0,
        series("retention_first_response_seconds", **q, quantile="0.9"): 18000.0,
        series("retention_first_response_seconds", **q, quantile="0.99"): 18000.0,
        series("retention_resolution_seconds", **q, quantile="0.5"): 21600.0,
        series("retention_resolution_seconds", **q, quantile="0.9"): 86400.0,
        series("retention_resolution_seconds", **q, quantile="0.99"): 86400.0,
        # 1d window [Mar 19 12:00, Mar 20 12:00]: no reply in it -> undefined, absent
        series("retention_first_response_seconds", window="1d", quantile="0.5"): None,
        series("retention_complaints", **q, category="billing"): 2.0,
        series("retention_complaints", **q, category="other"): 1.0,
        series("retention_complaints", **q, category="delivery"): None,
        series("retention_complaints_per_1000_active_customers", **q): 3000 / 3.5,
        series("retention_tickets_awaiting_first_response"): 1.0,
        series("retention_tickets_awaiting_resolution"): 2.0,
        # T4 opened 2025-03-07T00:00Z, "now" is 2025-03-20T12:00:00.000001Z: 13.5 days + 1 µs
        series("retention_oldest_ticket_awaiting_first_response_age_seconds"):
            (now_us - _us("2025-03-07T00:00:00Z")) / 1_000_000,
    }
    converge(lambda: gauges(worker, expected), expected, "the support gauges")


def test_feedback(worker: WorkerProcess) -> None:
    # NPS in Q1 (F3's 0 in December excluded): 10, 9, 9, 7, 0, 8, 9, 6
    #   promoters (9-10): 10, 9, 9, 9 = 4; passives (7-8): 7, 8 = 2; detractors (0-6): 0, 6 = 2
    #   NPS = (4 - 2) / 8 * 100 = 25
    # CSAT: 5, 4, 3, 1, 4 -> 4 or 5: 3 of 5 = 0.6
    # feedback received in Q1: fb1, fb2, fb3 (fb4 in December) -> answered fb1, fb3 = 2/3
    #   (fb4's response in March does not count: the item belongs to the period it was received in)
    check_query(
        worker, "all",
        {"nps": 25.0, "csat": 0.6, "feedback_response_rate": 2 / 3},
        {"nps_promoters": 4, "nps_passives": 2, "nps_detractors": 2, "csat_good": 3, "csat_responses": 5,
         "feedback_received": 3, "feedback_responded": 2},
    )
    # the survey customers never signed up: their segment is plan:other / region:other
    check_query(worker, "plan:other", {"nps": 25.0, "csat": 0.6}, {"nps_promoters": 4})
    check_query(worker, "plan:pro", {"nps": None, "csat": None, "feedback_response_rate": None},
                {"nps_promoters": 0, "csat_responses": 0})
    q = {"window": "quarter"}
    expected: dict[Series, float | None] = {
        series("retention_nps_score", **q, segment="all"): 25.0,
        series("retention_nps_score", **q, segment="plan:other"): 25.0,
        series("retention_nps_score", **q, segment="plan:pro"): None,
        series("retention_nps_score", window="1d", segment="all"): None,  # no response in the last day
        series("retention_nps_responses", **q, segment="all", category="promoter"): 4.0,
        series("retention_nps_responses", **q, segment="all", category="passive"): 2.0,
        series("retention_nps_responses", **q, segment="all", category="detractor"): 2.0,
        series("retention_csat_ratio", **q, segment="all"): 0.6,
        series("retention_feedback_response_ratio", **q): 2 / 3,
    }
    converge(lambda: gauges(worker, expected), expected, "the feedback gauges")


def test_team(worker: WorkerProcess) -> None:
    # Q1: reps at Jan 1 = r1, r2, r4, r7 (r3 left in December) = 4; at Apr 1 = r1, r4, r6, r7 = 4
    #   joined in Q1: r5, r6, r7 (back) = 3; left: r7, r2, r5 = 3
    #   retention = reps of the start still on the team at the end without a break: r1, r4 -> 2 / 4
    #   (r7 left and came back: not retained); team size = 4 / 4. The old (E - joined) / B gave 1/4.
    check_query(
        worker, "all", {"sales_rep_retention_rate": 0.5, "sales_team_size_ratio": 1.0},
        {"reps_at_start": 4, "reps_at_end": 4, "reps_joined": 3, "reps_left": 3, "reps_stayed": 2},
    )
    check_query(worker, "plan:pro", {"sales_rep_retention_rate": None, "sales_team_size_ratio": None},
                {"reps_at_start": 4})
    expected: dict[Series, float | None] = {
        series("retention_sales_rep_retention_ratio", window="quarter"): 0.5,
        series("retention_sales_team_size_ratio", window="quarter"): 1.0,
        # 30d = [Feb 18 12:00, Mar 20 12:00]: at start r1, r4, r5 = 3 (r7 away); at end r1, r4, r6, r7 = 4;
        #   stayed r1, r4 (r5 left Mar 1) -> 2 / 3; size 4 / 3
        series("retention_sales_rep_retention_ratio", window="30d"): 2 / 3,
        series("retention_sales_team_size_ratio", window="30d"): 4 / 3,
        # 1d: at start r1, r4, r7 = 3, all stayed -> 1; at end 4 (r6 joined) -> size 4 / 3
        series("retention_sales_rep_retention_ratio", window="1d"): 1.0,
        series("retention_sales_team_size_ratio", window="1d"): 4 / 3,
    }
    converge(lambda: gauges(worker, expected), expected, "the team gauges")
