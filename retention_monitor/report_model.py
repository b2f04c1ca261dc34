"""What a review report holds: the KPIs it compares, and the answers of the period, the one before
and the one a year earlier (rendered by :mod:`retention_monitor.report_render`)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from retention_monitor.report_cohorts import Cohorts
from retention_monitor.report_periods import Change, change
from retention_monitor.report_plots import Plot, value

Answer = Mapping[str, Any]


@dataclass(frozen=True)
class Kpi:
    key: str
    title: str
    unit: str  # ratio, money, count, score, seconds, number
    path: tuple[str, ...]
    better: int  # +1: higher is better, -1: lower is better


def _k(key: str, title: str, unit: str, better: int, *path: str) -> Kpi:
    return Kpi(key, title, unit, path or ("kpis", key), better)


KPIS = (
    _k("retention_rate", "retention rate", "ratio", 1),
    _k("churn_rate", "churn rate", "ratio", -1),
    _k("winback_rate", "win-back rate", "ratio", 1),
    _k("customers_active_at_end", "active customers at end", "count", 1),
    _k("new_customers", "new customers (N)", "count", 1, "inputs", "N"),
    _k("lost_customers", "lost customers (L)", "count", -1, "inputs", "L"),
    _k("reactivated_customers", "won back (R)", "count", 1, "inputs", "R"),
    _k("repeat_purchase_rate", "repeat purchase rate", "ratio", 1),
    _k("repeat_purchase_rate_lifetime", "repeat purchase rate, lifetime", "ratio", 1),
    _k("refund_rate", "refund rate", "ratio", -1),
    _k("return_rate", "return rate", "ratio", -1),
    _k("refund_rate_by_amount", "refund rate by amount", "ratio", -1),
    _k("return_rate_by_amount", "return rate by amount", "ratio", -1),
    _k("net_revenue", "net revenue", "money", 1),
    _k("clv_historical_mean", "historical CLV (mean)", "money", 1),
    _k("clv_predicted_mean", "predicted CLV (mean)", "money", 1),
    _k("total_clv", "total CLV (ABC)", "money", 1, "abc", "total_clv"),
    _k("nps", "NPS", "score", 1),
    _k("csat", "CSAT", "ratio", 1),
    _k("feedback_response_rate", "feedback response rate", "ratio", 1),
    _k("first_response_p50", "first response p50", "seconds", -1, "kpis", "first_response_seconds", "p50"),
    _k("first_response_p90", "first response p90", "seconds", -1, "kpis", "first_response_seconds", "p90"),
    _k("resolution_p50", "resolution p50", "seconds", -1, "kpis", "resolution_seconds", "p50"),
    _k("resolution_p90", "resolution p90", "seconds", -1, "kpis", "resolution_seconds", "p90"),
    _k("tickets_awaiting_first_response", "tickets awaiting first response", "count", -1),
    _k("tickets_awaiting_resolution", "tickets awaiting resolution", "count", -1),
    _k("reopens", "reopened tickets", "count", -1),
    _k("complaints", "complaints", "count", -1),
    _k("complaints_per_1000_active", "complaints per 1,000 active", "number", -1),
    _k("sales_rep_retention_rate", "sales-team retention", "ratio", 1),
    _k("sales_team_size_ratio", "sales-team size ratio", "ratio", 1),
)


@dataclass(frozen=True)
class Row:
    kpi: Kpi
    current: float | None
    previous: float | None
    year_earlier: float | None

    @property
    def changes(self) -> tuple[Change, Change]:
        return change(self.current, self.previous), change(self.current, self.year_earlier)


@dataclass
class Report:
    segment: str
    currency: str
    answers: tuple[Answer, Answer, Answer]  # the period, the previous one, the one a year earlier
    trend: list[tuple[str, Answer]] = field(default_factory=list)
    plots: list[Plot] = field(default_factory=list)
    cohorts: Cohorts | None = None  # None: the source answers no cohort query

    @property
    def labels(self) -> tuple[str, str, str]:
        a, b, c = (str(x["period"]["label"]) for x in self.answers)
        return a, b, c

    def rows(self) -> list[Row]:
        return [Row(k, *(value(a, *k.path) for a in self.answers)) for k in KPIS]

    def to_json(self) -> dict[str, Any]:
        """The KPI comparison table as data (``--json``)."""
        def pair(c: Change) -> dict[str, float | None]:
            return {"absolute": c.absolute, "relative": c.relative}

        return {
            "period": self.answers[0]["period"], "previous": self.answers[1]["period"],
            "year_earlier": self.answers[2]["period"], "segment": self.segment, "currency": self.currency,
            "kpis": [{"key": r.kpi.key, "title": r.kpi.title, "unit": r.kpi.unit, "better": r.kpi.better,
                      "value": r.current, "previous": r.previous, "year_earlier": r.year_earlier,
                      "change_previous": pair(r.changes[0]), "change_year_earlier": pair(r.changes[1])}
                     for r in self.rows()],
        }
