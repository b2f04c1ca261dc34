"""The KPI gauges as rows ``(gauge, labels, value)``: every window of the segments a worker exports,
computed on any fact view (the cluster's, in a worker) and the ABC summary (see :mod:`metrics.planning`)."""

from __future__ import annotations

import zlib
from zoneinfo import ZoneInfo

from core.periods import WINDOWS, window
from metrics import facts as F
from metrics import kpis as K
from metrics.abc_classes import AbcSummary
from metrics.cohort_grid import grid, recent
from metrics.cohorts import row_of
from metrics.planning import Plan, plan
from metrics.segments import ALL
from metrics.store import oldest_pending_reply

Row = tuple[str, list[str], float]
WS = ["window", "segment"]
GAUGES: dict[str, tuple[str, list[str]]] = {
    "active": ("retention_customers_active", ["segment"]),
    "retention": ("retention_customer_retention_ratio", WS),
    "churn": ("retention_customer_churn_ratio", WS),
    "winback": ("retention_customer_winback_ratio", WS),
    "new": ("retention_customers_new", WS),
    "lost": ("retention_customers_lost", WS),
    "reactivated": ("retention_customers_reactivated", WS),
    "reasons": ("retention_customers_lost_by_reason", ["window", "reason"]),
    "repeat": ("retention_repeat_purchase_ratio", WS),
    "refund": ("retention_refund_ratio", WS),
    "return": ("retention_return_ratio", WS),
    "revenue": ("retention_net_revenue", ["window", "segment", "currency"]),
    "clv_hist": ("retention_clv_historical_mean", ["segment", "currency"]),
    "clv_pred": ("retention_clv_predicted_mean", ["segment", "currency"]),
    "abc_customers": ("retention_abc_customers", ["class"]),
    "abc_share": ("retention_abc_clv_share_ratio", ["class"]),
    "nps": ("retention_nps_score", WS),
    "nps_responses": ("retention_nps_responses", ["window", "segment", "category"]),
    "csat": ("retention_csat_ratio", WS),
    "first_response": ("retention_first_response_seconds", ["window", "quantile"]),
    "resolution": ("retention_resolution_seconds", ["window", "quantile"]),
    "await_reply": ("retention_tickets_awaiting_first_response", []),
    "await_resolution": ("retention_tickets_awaiting_resolution", []),
    "oldest": ("retention_oldest_ticket_awaiting_first_response_age_seconds", []),
    "complaints": ("retention_complaints", ["window", "category"]),
    "complaints_rate": ("retention_complaints_per_1000_active_customers", ["window"]),
    "feedback": ("retention_feedback_response_ratio", ["window"]),
    "reps": ("retention_sales_rep_retention_ratio", ["window"]),
    "team_size": ("retention_sales_team_size_ratio", ["window"]),
    "cohort_customers": ("retention_cohort_customers", ["segment", "cohort_offset"]),
    "cohort_retention": ("retention_cohort_customer_retention_ratio", ["segment", "cohort_offset", "cohort_age"]),
    "cohort_revenue": ("retention_cohort_revenue_retention_ratio", ["segment", "cohort_offset", "cohort_age"]),
}
# Cohort gauges: monthly cohorts, the current month's (offset 0) and the 12 before it, ages 0-12. Labels are
# relative (months ago, months since sign-up), so the series stay the same 91 per segment month after month.
COHORT_OFFSETS = COHORT_AGES = 13


def owner(segment: str, partitions: int) -> int:
    """The partition whose owner exports the series of ``segment`` (stable across processes)."""
    return zlib.crc32(segment.encode()) % partitions


def _put(rows: list[Row], key: str, labels: list[str], value: float | None) -> None:
    if value is not None:
        rows.append((key, labels, value))


def segment_rows(view: K.FactView, seg: str, now: int, tz: ZoneInfo, currency: str) -> list[Row]:
    """The gauges with a segment label, of every window ending at ``now``."""
    rows: list[Row] = [("active", [seg], K.level(view, seg, F.ACTIVE_UP, F.ACTIVE_DOWN, now))]
    commerce_now = K.commerce(K.Ask(view, seg, now, now))
    _put(rows, "clv_hist", [seg, currency], commerce_now["clv_historical_mean"])
    _put(rows, "clv_pred", [seg, currency], commerce_now["clv_predicted_mean"])
    for name in WINDOWS:
        p = window(name, now, tz)
        a = K.Ask(view, seg, p.start_us, p.end_us)
        cust, com, fb = K.customers(a), K.commerce(a), K.feedback(a)
        labels = [name, seg]
        for key, value in (("retention", cust["retention_rate"]), ("churn", cust["churn_rate"]),
                           ("winback", cust["winback_rate"]), ("new", cust["inputs"]["N"]),
                           ("lost", cust["inputs"]["L"]), ("reactivated", cust["inputs"]["R"]),
                           ("repeat", com["repeat_purchase_rate"]), ("refund", com["refund_rate"]),
                           ("return", com["return_rate"]), ("nps", fb["nps"]), ("csat", fb["csat"])):
            _put(rows, key, labels, value)
        rows.append(("revenue", [*labels, currency], com["net_revenue"]))
        for category, key in (("promoter", "nps_promoters"), ("passive", "nps_passives"),
                              ("detractor", "nps_detractors")):
            rows.append(("nps_responses", [*labels, category], fb["inputs"][key]))
    return rows


def global_rows(view: K.FactView, now: int, tz: ZoneInfo) -> list[Row]:
    """The gauges without a segment label (exported with segment ``all``)."""
    rows: list[Row] = []
    for name in WINDOWS:
        p = window(name, now, tz)
        a = K.Ask(view, ALL, p.start_us, p.end_us)
        rows += [("reasons", [name, reason], n) for reason, n in a.by_prefix(F.LOST_REASON).items()]
        sup = K.support(a)
        for key, kind in (("first_response", "first_response_seconds"), ("resolution", "resolution_seconds")):
            for q in K.QUANTILES:
                _put(rows, key, [name, str(q)], sup[kind][f"p{round(q * 100)}"])
        rows += [("complaints", [name, category], n) for category, n in sup["complaints_by_category"].items()]
        _put(rows, "complaints_rate", [name], sup["complaints_per_1000_active"])
        _put(rows, "feedback", [name], K.feedback(a)["feedback_response_rate"])
        team = K.team(a)
        _put(rows, "reps", [name], team["sales_rep_retention_rate"])
        _put(rows, "team_size", [name], team["sales_team_size_ratio"])
    sup_now = K.support(K.Ask(view, ALL, now, now))
    rows.append(("await_reply", [], sup_now["tickets_awaiting_first_response"]))
    rows.append(("await_resolution", [], sup_now["tickets_awaiting_resolution"]))
    oldest = oldest_pending_reply(view)
    rows.append(("oldest", [], 0 if oldest is None else max(now - oldest, 0) / K.US))
    return rows


def gauge_plans(segments: list[str], now: int, tz: ZoneInfo, currency: str) -> list[Plan[list[Row]]]:
    """The gauge rows of ``segments`` for windows ending at ``now`` (but the ABC ones, :func:`abc_rows`), as
    one job per segment: each holds the stores only as long as its own rounds take."""
    def rows_of(segment: str) -> Plan[list[Row]]:
        return (yield from plan(lambda view: segment_rows(view, segment, now, tz, currency)))

    def global_of() -> Plan[list[Row]]:
        return (yield from plan(lambda view: global_rows(view, now, tz)))

    return [rows_of(seg) for seg in segments] + ([global_of()] if ALL in segments else [])


def cohort_rows(segments: list[str], now: int, tz: ZoneInfo) -> Plan[list[Row]]:
    """The cohort gauges of ``segments`` at ``now``, from one question (one scan per store for all of them):
    cohort sizes and customer retention; revenue retention for ``all`` only (it is the KPI of the cohort's
    money, where a segment's few customers make it noisy)."""
    g = grid("month", recent("month", now, tz, COHORT_OFFSETS - 1), None, now, tz)
    if not g.cohorts:
        return []
    tables = (yield [("cohort_tables", list(segments), list(g.bounds), g.cohorts, g.as_of_us)])[0]
    rows: list[Row] = []
    for segment, table in zip(segments, tables, strict=True):
        for c, merged in enumerate(table):
            offset = str(g.cohorts - 1 - c)
            rows.append(("cohort_customers", [segment, offset], merged[0]))
            kinds = (("cohort_retention", "customers"), ("cohort_revenue", "revenue"))
            for key, kind in kinds if segment == ALL else kinds[:1]:
                for cell in row_of(g, c, merged, kind)["ages"][:COHORT_AGES]:
                    _put(rows, key, [segment, offset, str(cell["age"])], cell["value"])
    return rows


def abc_rows(summary: AbcSummary) -> list[Row]:
    """The ABC gauges (exported with segment ``all``)."""
    rows: list[Row] = [("abc_customers", [cls], n) for cls, n in summary.customers.items()]
    for cls in summary.customers:
        _put(rows, "abc_share", [cls], summary.clv_share[cls])
    return rows
