"""One golden test per KPI of docs/contract/kpis.md, hand-computed from a small event set written here."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from fixtures import event
from pure_pipeline import PurePipeline

from core.settings import Settings

Q1 = "2025-Q1"


def signup(cid: str, time: str = "2024-12-01T00:00:00Z", plan: str = "pro") -> dict[str, Any]:
    return event("customer.signed_up", time, {"customer_id": cid, "segment": {"plan": plan}})


def order(cid: str, oid: str, time: str, amount: float, currency: str = "EUR") -> dict[str, Any]:
    return event("order.placed", time, {"customer_id": cid, "order_id": oid, "amount": amount, "currency": currency})


def test_winback_rate() -> None:
    # lost pool at 2025-01-01: a (churned in Dec); L in Q1: b; R in Q1: a -> 1 / (1 + 1)
    p = PurePipeline().send(
        signup("a"), signup("b"),
        event("customer.churned", "2024-12-10T00:00:00Z", {"customer_id": "a"}),
        event("customer.churned", "2025-01-10T00:00:00Z", {"customer_id": "b", "reason": "competitor"}),
        event("customer.reactivated", "2025-02-10T00:00:00Z", {"customer_id": "a"}),
    )
    assert p.kpis(Q1)["winback_rate"] == 0.5
    assert p.inputs(Q1)["lost_at_start"] == 1


def test_winback_counts_customers_who_moved_into_the_segment_while_lost() -> None:
    # a churns on plan basic, moves to pro while lost, and comes back on pro: for plan:pro the lost pool
    # had nobody at the start and lost nobody in Q1, but a moved into it. R / (0 + 0 + 1) = 1, not 1 / 0.
    p = PurePipeline().send(
        signup("a", plan="basic"), signup("b", plan="pro"),
        event("customer.churned", "2024-12-10T00:00:00Z", {"customer_id": "a"}),
        event("customer.updated", "2025-01-10T00:00:00Z", {"customer_id": "a", "segment": {"plan": "pro"}}),
        event("customer.reactivated", "2025-02-10T00:00:00Z", {"customer_id": "a"}),
    )
    pro = p.inputs(Q1, "plan:pro")
    assert (pro["R"], pro["lost_at_start"], pro["L"], pro["lost_moved_in"]) == (1, 0, 0, 1)
    assert p.kpis(Q1, "plan:pro")["winback_rate"] == 1.0
    assert p.kpis(Q1, "plan:basic")["winback_rate"] == 0.0  # its pool had a at the start; a left it
    assert p.kpis(Q1)["winback_rate"] == 1.0


def test_churn_reasons() -> None:
    p = PurePipeline().send(
        *(signup(c) for c in "abcd"),
        event("customer.churned", "2025-01-10T00:00:00Z", {"customer_id": "a", "reason": "price"}),
        event("customer.churned", "2025-01-11T00:00:00Z", {"customer_id": "b", "reason": "price"}),
        event("customer.churned", "2025-01-12T00:00:00Z", {"customer_id": "c", "reason": "aliens"}),
        event("customer.churned", "2025-01-13T00:00:00Z", {"customer_id": "d"}),
    )
    assert p.kpis(Q1)["lost_by_reason"] == {"other": 1, "price": 2, "unspecified": 1}


def shop() -> PurePipeline:
    return PurePipeline().send(
        signup("a"), signup("b"), signup("c"),
        order("a", "a1", "2024-12-20T00:00:00Z", 50),       # before Q1: lifetime only
        order("a", "a2", "2025-01-05T00:00:00Z", 100),
        order("a", "a3", "2025-02-05T00:00:00Z", 20),
        order("b", "b1", "2025-01-07T00:00:00Z", 100, "USD"),  # 92 EUR
        order("c", "c1", "2025-03-01T00:00:00Z", 30),
        event("order.refunded", "2025-02-10T00:00:00Z", {"customer_id": "a", "order_id": "a2", "amount": 40,
                                                         "currency": "EUR"}),
        event("order.refunded", "2025-02-11T00:00:00Z", {"customer_id": "a", "order_id": "a2", "amount": 10,
                                                         "currency": "EUR"}),
        event("order.returned", "2025-03-02T00:00:00Z", {"customer_id": "c", "order_id": "c1", "amount": 30,
                                                         "currency": "EUR"}),
    )


def test_repeat_purchase_rate_period_and_lifetime() -> None:
    p = shop()
    # Q1 orders: a2 a3 b1 c1 -> ordering a, b, c (3); with >= 2: a (1)
    assert p.inputs(Q1)["customers_ordering"] == 3
    assert p.kpis(Q1)["repeat_purchase_rate"] == pytest.approx(1 / 3)
    # lifetime up to 2025-04-01: a has 3 orders, b 1, c 1 -> 1 / 3; up to 2025-01-06 only a (2 orders) -> 1 / 1
    assert p.kpis(Q1)["repeat_purchase_rate_lifetime"] == pytest.approx(1 / 3)
    assert p.kpis("2024-12-01T00:00:00Z/2025-01-06T00:00:00Z")["repeat_purchase_rate_lifetime"] == 1.0


def test_refund_and_return_rates_by_count_and_amount() -> None:
    k = shop().kpis(Q1)
    # 4 orders in Q1 (242 EUR); a2 refunded twice = 1 order, 50 EUR; c1 returned, 30 EUR
    assert k["refund_rate"] == 0.25
    assert k["return_rate"] == 0.25
    assert k["refund_rate_by_amount"] == pytest.approx(50 / 242)
    assert k["return_rate_by_amount"] == pytest.approx(30 / 242)


def test_net_revenue_in_the_reporting_currency() -> None:
    p = shop()
    assert p.inputs(Q1)["order_amount"] == 242.0
    assert p.kpis(Q1)["net_revenue"] == 192.0  # 100 + 20 + 92 + 30 - 50
    assert p.kpis("2025-02")["net_revenue"] == -30.0  # 20 - 50


def test_historical_clv_mean() -> None:
    # to 2025-04-01: a 50+100+20-50 = 120, b 92, c 30 -> 242 / 3
    assert shop().kpis(Q1)["clv_historical_mean"] == pytest.approx(242 / 3)


def test_predicted_clv() -> None:
    p = PurePipeline().send(
        *(signup(f"c{i}", "2024-09-01T00:00:00Z") for i in range(10)),
        order("c0", "o1", "2025-02-01T00:00:00Z", 900),
        event("customer.churned", "2025-02-15T00:00:00Z", {"customer_id": "c9"}),
    )
    answer = p.answer("2025-03")  # trailing 90 days before 2025-04-01: from 2025-01-01
    # monthly revenue per active customer: 900 / 3 / 9 = 33.33; monthly churn: 1 / 3 / 10 = 0.0333
    # lifetime 30 months (below the 60-month cap) -> 1000
    assert answer["kpis"]["clv_predicted_mean"] == pytest.approx(1000)
    quiet = PurePipeline().send(signup("a", "2024-09-01T00:00:00Z"), order("a", "o", "2025-02-01T00:00:00Z", 30))
    assert quiet.kpis("2025-03")["clv_predicted_mean"] == pytest.approx(10 * 60)  # no churn: capped


def test_abc_classes_and_abc_segment() -> None:
    p = PurePipeline().send(
        *(signup(c) for c in "abcde"),
        order("a", "1", "2025-01-02T00:00:00Z", 70), order("b", "2", "2025-01-02T00:00:00Z", 15),
        order("c", "3", "2025-01-02T00:00:00Z", 10), order("d", "4", "2025-01-02T00:00:00Z", 5),
    )
    abc = p.answer(Q1)["abc"]
    # ranked 70, 15, 10, 5, 0: A = {a} (70 < 80, a+b 85 >= 80 -> b is A too), B = {c} (95), C = {d, e}
    assert abc["customers"] == {"A": 2, "B": 1, "C": 2}
    assert abc["clv_share"] == {"A": 0.85, "B": 0.10, "C": 0.05}
    assert p.inputs(Q1, "abc:A")["orders"] == 2
    assert p.inputs(Q1, "abc:C")["E"] == 2


def test_nps_with_category_counts() -> None:
    scores = [10, 9, 9, 8, 7, 6, 0, 10]
    p = PurePipeline().send(*(event("survey.nps", "2025-01-05T00:00:00Z", {"customer_id": f"c{i}", "score": s})
                              for i, s in enumerate(scores)))
    i = p.inputs(Q1)
    assert (i["nps_promoters"], i["nps_passives"], i["nps_detractors"]) == (4, 2, 2)
    assert p.kpis(Q1)["nps"] == 25.0  # (4 - 2) / 8 * 100


def test_csat() -> None:
    p = PurePipeline().send(*(event("survey.csat", "2025-01-05T00:00:00Z", {"customer_id": f"c{i}", "score": s})
                              for i, s in enumerate([5, 4, 3, 1, 5])))
    assert p.kpis(Q1)["csat"] == 0.6


def tickets() -> PurePipeline:
    def t(what: str, time: str, tid: str, **extra: str) -> dict[str, Any]:
        return event(f"ticket.{what}", f"2025-01-10T{time}Z", {"customer_id": "a", "ticket_id": tid, **extra})

    return PurePipeline().send(
        signup("a"),
        t("opened", "08:00:00", "t1", kind="complaint", category="billing"),
        t("replied", "08:30:00", "t1", author="customer"),   # not an agent: no first response
        t("replied", "09:00:00", "t1", author="agent"),      # first response 1 h
        t("replied", "09:30:00", "t1", author="agent"),
        t("resolved", "12:00:00", "t1"),                     # resolution 4 h
        t("reopened", "13:00:00", "t1"),
        t("resolved", "14:00:00", "t1"),                     # not a new resolution sample
        t("opened", "10:00:00", "t2", kind="complaint", category="shipping"),
        t("replied", "13:00:00", "t2", author="agent"),      # first response 3 h
        t("opened", "11:00:00", "t3"),                       # waiting for a reply
    )


def test_first_response_and_resolution_time() -> None:
    k = tickets().kpis(Q1)
    assert k["first_response_seconds"] == {"count": 2, "mean": 7200.0, "p50": 3600.0, "p90": 10800.0,
                                           "p99": 10800.0}
    assert k["resolution_seconds"] == {"count": 1, "mean": 14400.0, "p50": 14400.0, "p90": 14400.0,
                                       "p99": 14400.0}


def test_backlog_and_reopens() -> None:
    p = tickets()
    k = p.kpis(Q1)
    assert k["tickets_awaiting_first_response"] == 1  # t3
    assert k["tickets_awaiting_resolution"] == 2  # t2, t3
    assert k["reopens"] == 1
    # at 12:30 on the day: t1 resolved, not yet reopened; t2 and t3 open
    midday = p.kpis("2025-01-10T00:00:00Z/2025-01-10T12:30:00Z")
    assert (midday["tickets_awaiting_first_response"], midday["tickets_awaiting_resolution"]) == (2, 2)


def test_complaint_volume_by_category_and_per_1000_active() -> None:
    k = tickets().kpis(Q1)
    assert k["complaints_by_category"] == {"billing": 1, "other": 1}  # shipping is not a configured category
    assert k["complaints"] == 2
    assert k["complaints_per_1000_active"] == 2000.0  # 2 complaints / mean active (1 + 1) / 2 * 1000


def test_feedback_engagement() -> None:
    def fb(kind: str, time: str, fid: str) -> dict[str, Any]:
        return event(f"feedback.{kind}", time, {"customer_id": "a", "feedback_id": fid})

    p = PurePipeline().send(
        fb("received", "2024-12-30T00:00:00Z", "f0"), fb("responded", "2025-01-02T00:00:00Z", "f0"),  # not in Q1
        fb("received", "2025-01-05T00:00:00Z", "f1"), fb("responded", "2025-04-02T00:00:00Z", "f1"),  # late answer
        fb("received", "2025-02-05T00:00:00Z", "f2"),
        fb("received", "2025-03-05T00:00:00Z", "f3"), fb("responded", "2025-03-06T00:00:00Z", "f3"),
    )
    assert p.kpis(Q1)["feedback_response_rate"] == pytest.approx(2 / 3)


def rep(kind: str, time: str, rid: str) -> dict[str, Any]:
    return event(f"rep.{kind}", time, {"rep_id": rid, "team": "north"})


def test_sales_team_retention() -> None:
    p = PurePipeline().send(
        *(rep("joined", "2024-06-01T00:00:00Z", f"r{i}") for i in range(5)),
        rep("left", "2025-02-01T00:00:00Z", "r0"),
        rep("joined", "2025-02-02T00:00:00Z", "r9"),
    )
    # reps at start r0-r4 = 5; r1-r4 stayed -> 4 / 5; at end r1-r4, r9 = 5 -> size 5 / 5
    assert p.kpis(Q1)["sales_rep_retention_rate"] == 0.8
    assert p.kpis(Q1)["sales_team_size_ratio"] == 1.0
    assert p.kpis(Q1, "plan:pro")["sales_rep_retention_rate"] is None
    assert p.kpis(Q1, "plan:pro")["sales_team_size_ratio"] is None


def test_sales_team_retention_counts_only_the_reps_of_the_start() -> None:
    # The review report's case: 5 at the start, 6 joined, 7 left, 4 at the end. (E - joined) / B gave
    # (4 - 6) / 5 = -40 %; per rep, 1 of the 5 stayed.
    p = PurePipeline().send(
        *(rep("joined", "2024-06-01T00:00:00Z", f"s{i}") for i in range(5)),
        *(rep("left", f"2025-01-0{i + 2}T00:00:00Z", f"s{i}") for i in range(1, 5)),  # 4 of the start leave
        *(rep("joined", f"2025-02-0{i + 1}T00:00:00Z", f"n{i}") for i in range(6)),  # 6 join ...
        *(rep("left", f"2025-03-0{i + 1}T00:00:00Z", f"n{i}") for i in range(3)),    # ... 3 of them leave
    )
    inputs = p.inputs(Q1)
    assert (inputs["reps_at_start"], inputs["reps_joined"], inputs["reps_left"], inputs["reps_at_end"]) == (5, 6, 7, 4)
    assert inputs["reps_stayed"] == 1
    assert p.kpis(Q1)["sales_rep_retention_rate"] == 0.2
    assert p.kpis(Q1)["sales_team_size_ratio"] == 0.8


def test_a_rep_who_joins_and_leaves_in_the_period_changes_no_retention() -> None:
    p = PurePipeline().send(
        rep("joined", "2024-06-01T00:00:00Z", "a"), rep("joined", "2024-06-01T00:00:00Z", "b"),
        rep("joined", "2025-01-10T00:00:00Z", "c"), rep("left", "2025-02-10T00:00:00Z", "c"),
    )
    assert p.inputs(Q1)["reps_left"] == 1
    assert p.kpis(Q1)["sales_rep_retention_rate"] == 1.0
    assert p.kpis(Q1)["sales_team_size_ratio"] == 1.0


def test_a_rep_who_leaves_and_rejoins_in_the_period_did_not_stay() -> None:
    # "Still on the team" means without a break: a, gone for February, is not retained for Q1, but is
    # for March (on the team at its start and end). The team size counts a at the end.
    p = PurePipeline().send(
        rep("joined", "2024-06-01T00:00:00Z", "a"), rep("joined", "2024-06-01T00:00:00Z", "b"),
        rep("left", "2025-02-01T00:00:00Z", "a"), rep("joined", "2025-02-20T00:00:00Z", "a"),
    )
    assert p.kpis(Q1)["sales_rep_retention_rate"] == 0.5
    assert p.kpis(Q1)["sales_team_size_ratio"] == 1.0
    assert p.kpis("2025-03")["sales_rep_retention_rate"] == 1.0
    assert p.kpis("2025-02")["sales_rep_retention_rate"] == 0.5  # left Feb 1, inside February
    assert p.inputs("2025-02")["reps_at_end"] == 2


def test_a_rep_leaving_at_the_first_instant_of_the_period_was_on_the_team_at_its_start() -> None:
    p = PurePipeline().send(
        rep("joined", "2024-06-01T00:00:00Z", "a"), rep("joined", "2024-06-01T00:00:00Z", "b"),
        rep("left", "2025-01-01T00:00:00Z", "a"), rep("joined", "2025-01-01T00:00:00Z", "c"),
    )
    inputs = p.inputs(Q1)
    assert (inputs["reps_at_start"], inputs["reps_stayed"], inputs["reps_at_end"]) == (2, 1, 2)
    assert p.kpis(Q1)["sales_rep_retention_rate"] == 0.5
    assert p.inputs("2024-12")["reps_at_end"] == 2  # c joined at the first instant of Q1, not in December


def test_facts_belong_to_the_segment_at_their_time() -> None:
    p = PurePipeline().send(
        signup("a", plan="basic"),
        order("a", "1", "2025-01-05T00:00:00Z", 10),
        event("customer.updated", "2025-02-01T00:00:00Z", {"customer_id": "a", "segment": {"plan": "pro"}}),
        order("a", "2", "2025-02-05T00:00:00Z", 20),
    )
    assert p.kpis(Q1, "plan:basic")["net_revenue"] == 10.0
    assert p.kpis(Q1, "plan:pro")["net_revenue"] == 20.0
    assert p.kpis(Q1)["net_revenue"] == 30.0


def test_amounts_in_the_reporting_currency_are_never_converted() -> None:
    # A US shop: every USD amount counts as it is, to the cent; the EUR-to-rates table does not apply.
    amounts = [19.99, 0.01, 1234.56, 7.10, 0.3, 99999.99]
    p = PurePipeline(Settings(allowed_lateness="3650d", currency="USD")).send(
        signup("a"), *(order("a", f"o{i}", f"2025-01-{i + 2:02d}T00:00:00Z", x, "USD") for i, x in enumerate(amounts)),
        event("order.refunded", "2025-02-01T00:00:00Z", {"customer_id": "a", "order_id": "o0", "amount": 19.99,
                                                         "currency": "USD"}),
    )
    expected = sum(Decimal(str(x)) for x in amounts) - Decimal("19.99")
    assert Decimal(str(p.kpis(Q1)["net_revenue"])) == expected
    assert p.inputs(Q1)["refund_amount"] == 19.99


def test_foreign_amounts_are_converted_with_the_rate_to_the_reporting_currency() -> None:
    settings = Settings(allowed_lateness="3650d", currency="USD", currency_rates={"EUR": 1.25})
    p = PurePipeline(settings).send(signup("a"), order("a", "1", "2025-01-05T00:00:00Z", 10, "EUR"),
                                    order("a", "2", "2025-01-06T00:00:00Z", 10, "USD"))
    assert p.kpis(Q1)["net_revenue"] == 22.5
