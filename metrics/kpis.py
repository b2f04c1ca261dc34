"""Every KPI of docs/contract/kpis.md for one period ``[s, e)`` and segment, from an event-time fact view.

Each KPI family is a small function returning its value(s) and the inputs needed to recompute it by
hand. Undefined KPIs (denominator 0) are ``None``. Money is reported in the reporting currency
(facts hold micro-units), durations in seconds.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from core.periods import from_us
from metrics import facts as F
from metrics.segments import ALL

US = 1_000_000
DAY_US = 86_400 * US
QUANTILES = (0.5, 0.9, 0.99)
PREDICTED_CLV_CAP_MONTHS = 60



class FactView(Protocol):
    """Read access to indexed facts of a segment and kind within ``[start, end)`` (``None``: open).

    Every answer merges exactly over several views (sums, a minimum, a union, an order statistic), so
    a question can be asked of the partitions of one worker, or of a whole cluster, alike."""

    def count(self, segment: str, kind: str, start: int | None, end: int | None) -> int: ...

    def total(self, segment: str, kind: str, start: int | None, end: int | None) -> int: ...

    def inside(self, segment: str, kind: str, start: int, end: int) -> int: ...

    def below(self, segment: str, kind: str, start: int, end: int, value: int) -> int:
        """Facts in ``[start, end)`` whose value is less than ``value``."""

    def nth(self, segment: str, kind: str, start: int, end: int, rank: int) -> int:
        """The ``rank``-th smallest value (1-based, ``1 <= rank <= count``) of the facts in ``[start, end)``."""

    def kinds(self, segment: str, prefix: str) -> set[str]: ...

    def first(self, segment: str, kind: str) -> int | None: ...


def ratio(numerator: float, denominator: float) -> float | None:
    """``numerator / denominator``, or ``None`` (undefined) when the denominator is 0."""
    return None if denominator == 0 else numerator / denominator


def money(micro: int) -> float:
    return micro / US


def level(v: FactView, seg: str, up: tuple[str, ...], down: tuple[str, ...], t: int) -> int:
    """A level at instant ``t`` (e.g. active customers) from the facts that raise and lower it."""
    return sum(v.count(seg, k, None, t) for k in up) - sum(v.count(seg, k, None, t) for k in down)


def nearest_rank(n: int, q: float) -> int:
    """The rank (1-based) of the nearest-rank quantile ``q`` of ``n`` samples: the smallest sample with
    at least ``q`` of all samples <= it."""
    return max(1, -(-int(q * 1_000_000) * n // 1_000_000))


@dataclass(frozen=True)
class Ask:
    """One KPI question: a fact view, a segment, and the period ``[start, end)`` in epoch µs."""

    view: FactView
    segment: str
    start: int
    end: int

    def count(self, kind: str) -> int:
        """Facts of ``kind`` in the period."""
        return self.view.count(self.segment, kind, self.start, self.end)

    def sum(self, kind: str) -> int:
        """Sum of the values of the facts of ``kind`` in the period."""
        return self.view.total(self.segment, kind, self.start, self.end)

    def by_prefix(self, prefix: str) -> dict[str, int]:
        kinds = sorted(self.view.kinds(self.segment, prefix))
        return {k.removeprefix(prefix): c for k in kinds if (c := self.count(k))}


def customers(a: Ask) -> dict[str, Any]:
    v, g = a.view, a.segment
    inputs = {
        "B": level(v, g, F.ACTIVE_UP, F.ACTIVE_DOWN, a.start),
        "E": level(v, g, F.ACTIVE_UP, F.ACTIVE_DOWN, a.end),
        "N": a.count(F.NEW),
        "L": a.count(F.LOST),
        "R": a.count(F.REACTIVATED),
        "moved_in": a.count(F.MOVED_IN),
        "moved_out": a.count(F.MOVED_OUT),
        "lost_at_start": level(v, g, F.POOL_UP, F.POOL_DOWN, a.start),
        "lost_moved_in": a.count(F.LOST_MOVED_IN),
    }
    b = inputs["B"]
    return {
        "inputs": inputs,
        "retention_rate": ratio(inputs["E"] - inputs["N"] - inputs["moved_in"], b),
        "churn_rate": ratio(inputs["L"], b),
        # Everyone who was in the segment's lost pool during P: at its start, lost in P, or moved into
        # it while lost (dimension segments only); every reactivation follows one of these, so <= 1.
        "winback_rate": ratio(inputs["R"], inputs["lost_at_start"] + inputs["L"] + inputs["lost_moved_in"]),
        "lost_by_reason": a.by_prefix(F.LOST_REASON),
        "customers_active_at_end": inputs["E"],
    }


def commerce(a: Ask) -> dict[str, Any]:
    v, g = a.view, a.segment
    orders = a.count(F.ORDER)
    pairs1, pairs2 = v.inside(g, F.ORDER_PAIR1, a.start, a.end), v.inside(g, F.ORDER_PAIR2, a.start, a.end)
    buyers, repeat_buyers = orders - pairs1, pairs1 - pairs2
    first, second = v.count(g, F.ORDER_FIRST, None, a.end), v.count(g, F.ORDER_SECOND, None, a.end)
    order_amount, refund_amount, return_amount = a.sum(F.ORDER), a.sum(F.REFUND), a.sum(F.RETURN)
    refunded, returned = a.count(F.REFUNDED_ORDER), a.count(F.RETURNED_ORDER)
    net_to_date = v.total(g, F.ORDER, None, a.end) - v.total(g, F.REFUND, None, a.end)
    inputs = {
        "orders": orders, "customers_ordering": buyers, "customers_ordering_2plus": repeat_buyers,
        "customers_ordered_to_date": first, "customers_ordered_2plus_to_date": second,
        "orders_refunded": refunded, "orders_returned": returned,
        "order_amount": money(order_amount), "refund_amount": money(refund_amount),
        "return_amount": money(return_amount), "net_revenue_to_date": money(net_to_date),
    }
    return {
        "inputs": inputs,
        "repeat_purchase_rate": ratio(repeat_buyers, buyers),
        "repeat_purchase_rate_lifetime": ratio(second, first),
        "refund_rate": ratio(refunded, orders),
        "return_rate": ratio(returned, orders),
        "refund_rate_by_amount": ratio(refund_amount, order_amount),
        "return_rate_by_amount": ratio(return_amount, order_amount),
        "net_revenue": money(order_amount - refund_amount),
        "clv_historical_mean": ratio(money(net_to_date), first),
        **predicted_clv(v, g, a.end),
    }


def predicted_clv(v: FactView, g: str, e: int) -> dict[str, Any]:
    """Monthly net revenue per active customer / monthly churn rate, both over the 90 days before e."""
    s = e - 90 * DAY_US
    net = money(v.total(g, F.ORDER, s, e) - v.total(g, F.REFUND, s, e))
    active_end = level(v, g, F.ACTIVE_UP, F.ACTIVE_DOWN, e)
    active_start = level(v, g, F.ACTIVE_UP, F.ACTIVE_DOWN, s)
    lost = v.count(g, F.LOST, s, e)
    arpu = ratio(net / 3, active_end)
    churn = ratio(lost / 3, active_start)
    value = None
    if arpu is not None and churn is not None:
        # Expected lifetime 1 / churn, capped so that a (near) zero churn gives 60 months, not infinity.
        lifetime = PREDICTED_CLV_CAP_MONTHS if churn == 0 else min(1 / churn, PREDICTED_CLV_CAP_MONTHS)
        value = arpu * lifetime
    return {
        "clv_predicted_mean": value,
        "clv_predicted_inputs": {
            "window_start": from_us(s).isoformat(), "net_revenue_90d": net, "active_at_end": active_end,
            "active_at_window_start": active_start, "lost_90d": lost,
            "monthly_revenue_per_active": arpu, "monthly_churn_rate": churn,
        },
    }


def durations(a: Ask, kind: str) -> dict[str, Any]:
    n = a.count(kind)
    out: dict[str, Any] = {"count": n, "mean": ratio(a.sum(kind) / US, n)}
    for q in QUANTILES:
        out[f"p{round(q * 100)}"] = a.view.nth(a.segment, kind, a.start, a.end, nearest_rank(n, q)) / US if n else None
    return out


def support(a: Ask) -> dict[str, Any]:
    v, g = a.view, a.segment
    complaints = a.by_prefix(F.COMPLAINT)
    total = sum(complaints.values())
    active = level(v, g, F.ACTIVE_UP, F.ACTIVE_DOWN, a.start) + level(v, g, F.ACTIVE_UP, F.ACTIVE_DOWN, a.end)
    return {
        "inputs": {"tickets_opened": a.count(F.TICKET_OPENED), "complaints": total,
                   "mean_active_customers": active / 2},
        "first_response_seconds": durations(a, F.FIRST_RESPONSE),
        "resolution_seconds": durations(a, F.RESOLUTION),
        "reopens": a.count(F.REOPENED),
        "tickets_awaiting_first_response": level(v, g, (F.AWAIT_REPLY_IN,), (F.AWAIT_REPLY_OUT,), a.end),
        "tickets_awaiting_resolution": level(v, g, (F.AWAIT_RESOLUTION_IN,), (F.AWAIT_RESOLUTION_OUT,), a.end),
        "complaints": total,
        "complaints_by_category": complaints,
        "complaints_per_1000_active": ratio(1000 * total, active / 2),
    }


def feedback(a: Ask) -> dict[str, Any]:
    promoters, passives, detractors = a.count(F.NPS_PROMOTER), a.count(F.NPS_PASSIVE), a.count(F.NPS_DETRACTOR)
    responses = promoters + passives + detractors
    good, csat = a.count(F.CSAT_GOOD), a.count(F.CSAT_RESPONSE)
    received, answered = a.count(F.FEEDBACK_RECEIVED), a.count(F.FEEDBACK_RESPONDED)
    return {
        "inputs": {"nps_promoters": promoters, "nps_passives": passives, "nps_detractors": detractors,
                   "csat_good": good, "csat_responses": csat,
                   "feedback_received": received, "feedback_responded": answered},
        "nps": ratio(100 * (promoters - detractors), responses),
        "csat": ratio(good, csat),
        "feedback_response_rate": ratio(answered, received),
    }


def team(a: Ask) -> dict[str, Any]:
    """Sales-team retention: the reps of the start still on the team at the end, without a break
    (per rep, so in [0, 1]); the team-size ratio is the seed's plain ``reps at end / reps at start``."""
    v = a.view
    up, down = (F.REP_JOINED,), (F.REP_LEFT,)
    at_s, at_e = level(v, ALL, up, down, a.start), level(v, ALL, up, down, a.end)
    # stints ending in the period that began before it: reps of the start who left
    stayed = at_s - v.below(ALL, F.REP_STINT, a.start, a.end, a.start)
    everyone = a.segment == ALL
    return {
        "inputs": {"reps_at_start": at_s, "reps_at_end": at_e, "reps_stayed": stayed,
                   "reps_joined": v.count(ALL, F.REP_JOINED, a.start, a.end),
                   "reps_left": v.count(ALL, F.REP_LEFT, a.start, a.end)},
        "sales_rep_retention_rate": ratio(stayed, at_s) if everyone else None,
        "sales_team_size_ratio": ratio(at_e, at_s) if everyone else None,
    }


def all_kpis(view: FactView, segment: str, start_us: int, end_us: int) -> dict[str, Any]:
    """Every KPI family for one period and segment: ``{family: {kpi: value, "inputs": {...}}}``."""
    a = Ask(view, segment, start_us, end_us)
    return {"customers": customers(a), "commerce": commerce(a), "support": support(a),
            "feedback": feedback(a), "team": team(a)}
