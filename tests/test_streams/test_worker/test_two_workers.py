"""Two worker processes in one consumer group: same KPI answers from either, each series exported once.

Both workers share every setting (same app id = same consumer group, same topics, 4 partitions) except
the web port and the data dir. The second one joins, the group rebalances, and they split the 4 customer
partitions. Every worker's KPI store follows the changelog of all partitions, so either answers the KPI
query for everything; a gauge series of segment ``g`` is exported only by the owner of partition
``owner(g, 4)`` (label-less and global series: the owner of ``all``), so ``max without (instance)`` over
the workers is the KPI. When one worker stops, the survivor takes every partition and every series.
"""

from __future__ import annotations

from functools import partial
from typing import Any

import pytest
from fixtures import (
    Series,
    WorkerProcess,
    converge,
    encode,
    event,
    free_port,
    get_json,
    isolated_env,
    poll,
    produce,
    samples,
    seed_example,
    series,
)

from metrics.gauges import owner

pytestmark = pytest.mark.integration

PARTITIONS = 4
SEGMENTS = ["all", "plan:basic", "plan:enterprise", "plan:free", "plan:other", "plan:pro",
            "region:apac", "region:eu", "region:other", "region:us"]

# -- the events --------------------------------------------------------------------------------------
# worked example 2 of docs/contract/kpis.md (fixtures.seed_example): c0..c43 sign up on the pro plan in
# December 2024 (no region),
# c44..c55 sign up on the basic plan from 2025-01-03 to 2025-01-14, c0..c12 churn (price) from 2025-01-21
# to 2025-02-02. Plus orders on the lifecycle topic, and NPS answers on the feedback topic.
LIFECYCLE = seed_example(44, 12, 13, prefix="c")
ORDERS = [
    event("order.placed", "2025-01-05T10:00:00Z", {"customer_id": "c0", "order_id": "o1", "amount": 20,
                                                   "currency": "EUR"}),
    event("order.placed", "2025-02-10T10:00:00Z", {"customer_id": "c20", "order_id": "o2", "amount": 100,
                                                   "currency": "EUR"}),
    event("order.placed", "2025-02-11T10:00:00Z", {"customer_id": "c20", "order_id": "o3", "amount": 50,
                                                   "currency": "USD"}),  # 50 * 0.92 = 46 EUR
    event("order.placed", "2025-02-12T10:00:00Z", {"customer_id": "c45", "order_id": "o4", "amount": 30,
                                                   "currency": "EUR"}),
    event("order.refunded", "2025-02-13T10:00:00Z", {"customer_id": "c45", "order_id": "o4", "amount": 10,
                                                     "currency": "EUR"}),
]
NPS = [  # c20, c21, c22 are pro customers, c45, c46 basic ones
    event("survey.nps", f"2025-03-{day:02d}T10:00:00Z", {"customer_id": customer, "score": score})
    for day, customer, score in [(1, "c20", 10), (2, "c21", 9), (3, "c22", 3), (4, "c45", 8), (10, "c46", 10)]
]
# The newest event is c46's answer on 2025-03-10: with clock = event the quarter gauges cover
# [2025-01-01, 2025-03-10T10:00:00.000001), which holds every Q1 event: they equal the 2025-Q1 query.

# -- the hand-computed KPIs of 2025-Q1 per segment -----------------------------------------------------
# all: B = 44, N = 12, L = 13, R = 0, E = 44 + 12 - 13 = 43; retention (43 - 12) / 44 = 31/44, churn 13/44,
#   win-back 0 / (0 + 13) = 0. Orders: 20 + 100 + 46 + 30 = 196 EUR, refunds 10 -> net 186; refund rate 1/4,
#   return rate 0/4; buyers c0, c20, c45, repeat c20 -> 1/3; historical CLV 186 / 3 = 62.
#   NPS: promoters 10, 9, 10 = 3, passive 8 = 1, detractor 3 = 1 -> (3 - 1) / 5 * 100 = 40.
# plan:pro: B = 44, N = 0, L = 13, E = 31 -> 31/44, 13/44, win-back 0; orders o1 (c0), o2, o3 (c20) = 166 EUR,
#   no refund -> refund rate 0; buyers c0, c20, repeat c20 -> 1/2; CLV (20 + 146) / 2 = 83;
#   NPS: 10, 9, 3 -> (2 - 1) / 3 * 100.
# plan:basic: B = 0 -> retention, churn undefined; lost pool 0 -> win-back undefined; N = 12, E = 12;
#   o4 30 EUR refunded 10 -> net 20, refund rate 1/1, repeat 0/1; CLV 20 / 1; NPS: 8, 10 -> (1 - 0) / 2 * 100.
# region:other: every customer (no region given) -> as all. Other segments: empty.
FULL = {"retention": 31 / 44, "churn": 13 / 44, "winback": 0.0, "new": 12, "lost": 13, "repeat": 1 / 3,
        "refund": 0.25, "return": 0.0, "net": 186.0, "nps": 40.0, "responses": (3, 1, 1), "active": 43,
        "clv": 62.0}
EMPTY = {"retention": None, "churn": None, "winback": None, "new": 0, "lost": 0, "repeat": None,
         "refund": None, "return": None, "net": 0.0, "nps": None, "responses": (0, 0, 0), "active": 0,
         "clv": None}
EXPECTED: dict[str, dict[str, Any]] = {
    **dict.fromkeys(SEGMENTS, EMPTY),
    "all": FULL,
    "region:other": FULL,
    "plan:pro": {"retention": 31 / 44, "churn": 13 / 44, "winback": 0.0, "new": 0, "lost": 13, "repeat": 0.5,
                 "refund": 0.0, "return": 0.0, "net": 166.0, "nps": 100 * (2 - 1) / 3, "responses": (2, 0, 1),
                 "active": 31, "clv": 83.0},
    "plan:basic": {"retention": None, "churn": None, "winback": None, "new": 12, "lost": 0, "repeat": 0.0,
                   "refund": 1.0, "return": 0.0, "net": 20.0, "nps": 100 * (1 - 0) / 2, "responses": (1, 1, 0),
                   "active": 12, "clv": 20.0},
}
# Monthly cohorts as of the newest event (10 March): December's 44 pro customers, 33 of them left at the end of
# January (c0..c10 churned in January), 31 at the end of February (c11, c12) and now; January's 12 basic ones,
# all still active. Active customers per age, from 2024-12 to 2025-03:
COHORTS = {"all": {"2024-12": [44, 33, 31, 31], "2025-01": [12, 12, 12], "2025-02": [0, 0], "2025-03": [0]},
           "plan:basic": {"2024-12": [0, 0, 0, 0], "2025-01": [12, 12, 12], "2025-02": [0, 0], "2025-03": [0]}}
COHORT_GAUGES = {"all": {"3": [44, 33, 31, 31], "2": [12, 12, 12]}, "plan:pro": {"3": [44, 33, 31, 31], "2": [0, 0, 0]},
                 "plan:basic": {"3": [0, 0, 0, 0], "2": [12, 12, 12]}}
QUERY_INPUTS = {  # B, E, N, L, R, orders, order amount, refund amount
    "all": (44, 43, 12, 13, 0, 4, 196.0, 10.0),
    "region:other": (44, 43, 12, 13, 0, 4, 196.0, 10.0),
    "plan:pro": (44, 31, 0, 13, 0, 3, 166.0, 0.0),
    "plan:basic": (0, 12, 12, 0, 0, 1, 30.0, 10.0),
    "plan:free": (0, 0, 0, 0, 0, 0, 0.0, 0.0),
}

# -- helpers -----------------------------------------------------------------------------------------

def expected_series() -> dict[tuple[str, Series], float | None]:
    """Every KPI series to check, keyed by the segment that owns it (global series: ``all``)."""
    out: dict[tuple[str, Series], float | None] = {}
    q = {"window": "quarter"}
    for seg, e in EXPECTED.items():
        s = {**q, "segment": seg}
        for name, key in [("retention_customer_retention_ratio", "retention"),
                          ("retention_customer_churn_ratio", "churn"),
                          ("retention_customer_winback_ratio", "winback"),
                          ("retention_customers_new", "new"), ("retention_customers_lost", "lost"),
                          ("retention_repeat_purchase_ratio", "repeat"), ("retention_refund_ratio", "refund"),
                          ("retention_return_ratio", "return"), ("retention_nps_score", "nps")]:
            out[seg, series(name, **s)] = None if e[key] is None else float(e[key])
        out[seg, series("retention_customers_reactivated", **s)] = 0.0
        out[seg, series("retention_csat_ratio", **s)] = None  # no CSAT answer anywhere
        out[seg, series("retention_net_revenue", **s, currency="EUR")] = e["net"]
        for category, n in zip(("promoter", "passive", "detractor"), e["responses"], strict=True):
            out[seg, series("retention_nps_responses", **s, category=category)] = float(n)
        out[seg, series("retention_customers_active", segment=seg)] = float(e["active"])
        out[seg, series("retention_clv_historical_mean", segment=seg, currency="EUR")] = e["clv"]
    # global series, exported by the owner of "all"
    out["all", series("retention_customers_lost_by_reason", **q, reason="price")] = 13.0
    out["all", series("retention_tickets_awaiting_first_response")] = 0.0
    out["all", series("retention_tickets_awaiting_resolution")] = 0.0
    # no complaint among (44 + 43) / 2 active customers: 0 per 1000, defined
    out["all", series("retention_complaints_per_1000_active_customers", **q)] = 0.0
    out["all", series("retention_first_response_seconds", **q, quantile="0.5")] = None  # no ticket
    out["all", series("retention_sales_rep_retention_ratio", **q)] = None  # no rep
    # the cohort gauges: December is 3 months before March, January 2; nobody churned in its sign-up month, so
    # the cohort's size is its age-0 count
    for seg, by_offset in COHORT_GAUGES.items():
        for offset, active in by_offset.items():
            out[seg, series("retention_cohort_customers", segment=seg, cohort_offset=offset)] = float(active[0])
            for age, n in enumerate(active):
                out[seg, series("retention_cohort_customer_retention_ratio", segment=seg, cohort_offset=offset,
                                cohort_age=str(age))] = n / active[0] if active[0] else None
    return out


def owned(worker: WorkerProcess) -> list[int]:
    partitions: list[int] = worker.kpis("2025")["worker"]["partitions"]
    return partitions


def exports(workers: dict[str, WorkerProcess]) -> tuple[dict[Series, list[tuple[str, float]]], ...]:
    """(who exports each series with which value, who should: the owner of its segment's partition)."""
    partitions = {name: owned(w) for name, w in workers.items()}
    scraped = {name: samples(w.fresh_metrics()) for name, w in workers.items()}
    if partitions != {name: owned(w) for name, w in workers.items()}:
        raise AssertionError(f"rebalancing while scraping: {partitions}")
    got: dict[Series, list[tuple[str, float]]] = {}
    want: dict[Series, list[tuple[str, float]]] = {}
    for (seg, s), value in expected_series().items():
        got[s] = sorted((name, text[s]) for name, text in scraped.items() if s in text)
        exporter = [name for name, parts in partitions.items() if owner(seg, PARTITIONS) in parts]
        want[s] = [] if value is None else [(name, value) for name in exporter]
    return got, want


def check_exports(workers: dict[str, WorkerProcess], what: str) -> None:
    def settled() -> Any:
        got, want = exports(workers)
        return got if got == want else None

    got = poll(settled, 60, what)
    for (_, s), value in expected_series().items():
        if value is not None:  # exactly one exporter: max without (instance) is the KPI
            assert len(got[s]) == 1, s
            assert max(v for _, v in got[s]) == value, s


def query(worker: WorkerProcess, segment: str) -> dict[str, Any]:
    answer = worker.kpis("2025-Q1", segment)
    k, i = answer["kpis"], answer["inputs"]
    return {
        "kpis": {key: k[name] for key, name in [
            ("retention", "retention_rate"), ("churn", "churn_rate"), ("winback", "winback_rate"),
            ("repeat", "repeat_purchase_rate"), ("refund", "refund_rate"), ("return", "return_rate"),
            ("net", "net_revenue"), ("nps", "nps"), ("active", "customers_active_at_end"),
            ("clv", "clv_historical_mean")]},
        "inputs": (i["B"], i["E"], i["N"], i["L"], i["R"], i["orders"], i["order_amount"], i["refund_amount"]),
        "responses": (i["nps_promoters"], i["nps_passives"], i["nps_detractors"]),
    }


def cohorts(worker: WorkerProcess, segment: str) -> dict[str, Any]:
    answer = get_json(f"{worker.url}/cohorts?from=2024-12&to=2025-03&segment={segment}")
    return {row["cohort"]: [cell["numerator"] for cell in row["ages"]] for row in answer["cohorts"]}


def check_cohorts(workers: list[WorkerProcess]) -> None:
    """The cohort tables of COHORTS from every worker: each adds the others' sums, asked over HTTP."""
    for segment, table in COHORTS.items():
        for w in workers:
            converge(partial(cohorts, w, segment), table, f"the {segment} cohorts from {w.url}")


def expected_query(segment: str) -> dict[str, Any]:
    e = EXPECTED[segment]
    keys = ("retention", "churn", "winback", "repeat", "refund", "return", "net", "nps", "active", "clv")
    return {"kpis": {key: e[key] for key in keys}, "inputs": QUERY_INPUTS[segment], "responses": e["responses"]}


def events_applied(workers: list[WorkerProcess]) -> float:
    total = 0.0
    for w in workers:
        total += sum(v for (name, _), v in samples(w.fresh_metrics()).items() if name == "retention_events_total")
    return total


# -- the test ----------------------------------------------------------------------------------------


def test_two_workers_share_the_partitions_and_export_each_series_once(stack: str) -> None:
    env_a = isolated_env(RETENTION_CLOCK="event")
    env_b = {**env_a, "RETENTION_WEB_PORT": str(free_port()), "RETENTION_DATA_DIR": env_a["RETENTION_DATA_DIR"] + "-b"}
    a, b = WorkerProcess(env_a), WorkerProcess(env_b)
    try:
        a.start()
        b.start()  # joins the same group: rebalance
        converge(
            lambda: (sorted(owned(a) + owned(b)), bool(owned(a)), bool(owned(b))),
            ([0, 1, 2, 3], True, True),
            "the two workers to own all 4 partitions, disjointly",
        )

        def send(events: list[dict[str, Any]], topic: str) -> None:
            produce(stack, [(env_a[topic], e["data"]["customer_id"].encode(), encode(e)) for e in events])

        # Lifecycle and orders first, surveys once those are applied: the surveys come on another topic and
        # are newer by more than the allowed lateness (7 d per customer), so a survey applied before its
        # customer's December sign-up would make that sign-up too late (README: lateness per customer).
        lifecycle = sorted(LIFECYCLE + ORDERS, key=lambda e: e["time"])
        send(lifecycle, "RETENTION_TOPIC_LIFECYCLE")
        converge(lambda: events_applied([a, b]), float(len(lifecycle)), "lifecycle events applied once")
        send(NPS, "RETENTION_TOPIC_FEEDBACK")
        converge(lambda: events_applied([a, b]), float(len(lifecycle) + len(NPS)), "all events applied once")

        # the KPI query answers the same, and the hand-computed values, from either worker
        for segment in QUERY_INPUTS:
            for w in (a, b):
                converge(partial(query, w, segment), expected_query(segment), f"2025-Q1 {segment} from {w.url}")
            ans_a, ans_b = a.kpis("2025-Q1", segment), b.kpis("2025-Q1", segment)
            ans_a.pop("worker")
            ans_b.pop("worker")
            assert ans_a == ans_b, segment
            assert ans_a["kpis"]["lost_by_reason"] == ({"price": 13} if EXPECTED[segment]["lost"] else {})
        check_cohorts([a, b])  # and the cohort tables
        parts_a, parts_b = owned(a), owned(b)
        assert sorted(parts_a + parts_b) == [0, 1, 2, 3]
        assert parts_a
        assert parts_b
        # each series exported by exactly one worker, the owner of its segment's partition
        check_exports({"a": a, "b": b}, "every series exported once, by its owner, with the KPI's value")

        a.stop()
        converge(lambda: owned(b), [0, 1, 2, 3], "the survivor to own every partition")
        check_exports({"b": b}, "the survivor to export every series")
        for segment in QUERY_INPUTS:
            assert query(b, segment) == expected_query(segment), segment
    finally:
        a.stop()
        b.stop()
