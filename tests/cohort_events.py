"""The hand-computed cohort example of docs/contract/kpis.md ("Cohorts"): its events and its tables; the
cohort query of the in-process pipeline; and cohorts whose month-1 retention decays, for the cohort alert rule.

Shared by the golden tests (tests/test_metrics/test_cohorts_golden.py) and the same numbers through
the real broker (tests/test_streams/test_worker/test_cohorts_kafka.py); the decaying cohorts by the cohort
rule's tests in process (tests/test_alerts/test_cohort_rule.py) and through Kafka and Alertmanager
(tests/test_alerts/test_cohort_alert_e2e.py).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from zoneinfo import ZoneInfo

from fixtures import event
from pure_pipeline import PurePipeline

from metrics.cohorts import cohorts_plan
from metrics.planning import run
from metrics.segments import Segmenter
from streams.web.cohorts import query_of

# Month cohorts 2025-01 .. 2025-04 as of just after the newest event (10 April): active customers at the
# end of each age. January: a lost in January; b lost in February, back in April; d lost in March; c
# stays. February: f lost in April. Ages run up to April, the period holding the newest event.
EXPECTED_CUSTOMERS = {"2025-01": [3, 2, 1, 2], "2025-02": [2, 2, 1], "2025-03": [0, 0], "2025-04": [0]}
EXPECTED_SIZES = {"2025-01": 4, "2025-02": 2, "2025-03": 0, "2025-04": 0}
# Net revenue per age (EUR). January: 100 + 50 in January, a's refund of 20 in February, 80 in March, 30 in
# April (d's order before its sign-up period counts nowhere). February: e's 40, nothing, 10.
EXPECTED_REVENUE = {"2025-01": [150.0, -20.0, 80.0, 30.0], "2025-02": [40.0, 0.0, 10.0]}


def signup(cid: str, time: str, plan: str = "pro") -> dict[str, Any]:
    return event("customer.signed_up", time, {"customer_id": cid, "segment": {"plan": plan}})


def lifecycle(type_: str, cid: str, time: str, id_: str | None = None) -> dict[str, Any]:
    return event(f"customer.{type_}", time, {"customer_id": cid}, id_=id_)


def order(cid: str, oid: str, time: str, amount: float) -> dict[str, Any]:
    return event("order.placed", time, {"customer_id": cid, "order_id": oid, "amount": amount, "currency": "EUR"})


def refund(cid: str, oid: str, time: str, amount: float) -> dict[str, Any]:
    return event("order.refunded", time, {"customer_id": cid, "order_id": oid, "amount": amount, "currency": "EUR"})


def shop_events() -> list[dict[str, Any]]:
    """January cohort a, b, c, d; February cohort e, f. The newest event is e's order on 10 April.

    a churns in its sign-up month; b churns in February and comes back in April; c signs up on basic and
    moves to pro; d's sign-up arrives last (late) and it churns in March; b's churn is delivered twice."""
    churn_b = lifecycle("churned", "b", "2025-02-10T00:00:00Z", id_="churn-b")
    return [
        signup("a", "2025-01-02T00:00:00Z"), signup("b", "2025-01-03T00:00:00Z"),
        signup("c", "2025-01-04T00:00:00Z", plan="basic"),
        signup("e", "2025-02-03T00:00:00Z"), signup("f", "2025-02-20T00:00:00Z", plan="basic"),
        lifecycle("churned", "a", "2025-01-20T00:00:00Z"),
        churn_b, churn_b,
        event("customer.updated", "2025-02-15T00:00:00Z", {"customer_id": "c", "segment": {"plan": "pro"}}),
        order("d", "d0", "2024-12-30T00:00:00Z", 999),  # before d's sign-up period: counts in no age
        lifecycle("churned", "d", "2025-03-10T00:00:00Z"),
        lifecycle("churned", "f", "2025-04-01T00:00:00Z"),
        lifecycle("reactivated", "b", "2025-04-05T00:00:00Z"),
        order("a", "a1", "2025-01-10T00:00:00Z", 100), refund("a", "a1", "2025-02-01T00:00:00Z", 20),
        order("c", "c1", "2025-01-15T00:00:00Z", 50), order("c", "c2", "2025-03-03T00:00:00Z", 80),
        order("b", "b1", "2025-04-06T00:00:00Z", 30), order("e", "e1", "2025-02-05T00:00:00Z", 40),
        order("e", "e2", "2025-04-10T00:00:00Z", 10),
        signup("d", "2025-01-25T00:00:00Z"),  # late: sent after its own churn
    ]


class PipelineCohorts:
    """``GET /cohorts`` of the in-process pipeline: the parameters read as a worker reads them."""

    def __init__(self, pipeline: PurePipeline) -> None:
        self.pipeline = pipeline

    def cohorts(self, params: Mapping[str, str]) -> dict[str, Any]:
        query, as_of = query_of(params, Segmenter(self.pipeline.settings.segments))
        return run(cohorts_plan(query, ZoneInfo(self.pipeline.settings.timezone), as_of), self.pipeline.ask)


# Month cohorts 2025-01 .. 2025-06 of 10 customers each, signing up on the 5th; in the month after (age 1),
# 1 of 10 churn in January to March, 4 of 10 in April and May. June's 5 churns on 1 July fall in its age 1
# still running: "now" is just after the newest event, a sign-up on 2 July. Month-1 retention of the
# cohorts that completed it: 0.9, 0.9, 0.9, 0.6, 0.6 (June's 0.5 is provisional).
DECAY_CHURNED = {"2025-01": 1, "2025-02": 1, "2025-03": 1, "2025-04": 4, "2025-05": 4, "2025-06": 5}
DECAY_SIZE = 10
DECAY_NOW = "2025-07-02T00:00:00Z"


def decay_events(prefix: str = "d") -> list[dict[str, Any]]:
    """The decaying cohorts above, in time order; customer ids start with ``prefix``."""
    signups, churns = [], []
    for month, churned in DECAY_CHURNED.items():
        year, number = (int(x) for x in month.split("-"))
        after = f"{year + number // 12}-{number % 12 + 1:02d}"
        for i in range(DECAY_SIZE):
            cid = f"{prefix}{month}-{i}"
            signups.append(signup(cid, f"{month}-05T00:00:00Z"))
            if i < churned:
                churns.append(lifecycle("churned", cid, f"{after}-{10 if month < '2025-06' else '01'}T00:00:00Z"))
    return sorted([*signups, *churns, signup(f"{prefix}-now", DECAY_NOW)], key=lambda e: e["time"])
