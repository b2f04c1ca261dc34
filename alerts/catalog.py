"""The KPIs an alert rule can watch: how to read each one's value and its sample size from a view.

The sample size is what the KPI is computed over (customers at the start for churn, responses for
NPS…): a rule's ``min_samples`` keeps a handful of answers from paging anyone.

Live KPIs (:data:`LIVE`, rules with ``window: now``) are counts as they stand now rather than over an
event-time window: the customers at risk by ABC class, with the class's size as the sample size.

Cohort KPIs (:data:`COHORT`, ``kind: cohort`` rules) are the shares of a cohort table
(:mod:`metrics.cohorts`): customer retention, or revenue retention, at one age; see :mod:`alerts.cohort`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

from metrics import kpis as K


@dataclass(frozen=True)
class Reading:
    """A KPI value (``None``: undefined) and the number of samples behind it."""

    value: float | None
    samples: int


Reader = Callable[[K.Ask], Reading]


def _customers(key: str) -> Reader:
    def read(a: K.Ask) -> Reading:
        c = K.customers(a)
        return Reading(c[key], c["inputs"]["B"])

    return read


def _commerce(key: str, samples: str) -> Reader:
    def read(a: K.Ask) -> Reading:
        c = K.commerce(a)
        return Reading(c[key], c["inputs"][samples])

    return read


def _feedback(key: str, samples: tuple[str, ...]) -> Reader:
    def read(a: K.Ask) -> Reading:
        f = K.feedback(a)
        return Reading(f[key], sum(f["inputs"][s] for s in samples))

    return read


def _duration(kind: str, stat: str) -> Reader:
    def read(a: K.Ask) -> Reading:
        d = K.durations(a, kind)
        return Reading(d[stat], d["count"])

    return read


def _complaints(key: str) -> Reader:
    def read(a: K.Ask) -> Reading:
        s = K.support(a)
        value = s[key]
        return Reading(float(value) if value is not None else None, s["inputs"]["tickets_opened"])

    return read


NPS_INPUTS = ("nps_promoters", "nps_passives", "nps_detractors")

KPIS: dict[str, Reader] = {
    "retention_rate": _customers("retention_rate"),
    "churn_rate": _customers("churn_rate"),
    "winback_rate": _customers("winback_rate"),
    "repeat_purchase_rate": _commerce("repeat_purchase_rate", "customers_ordering"),
    "refund_rate": _commerce("refund_rate", "orders"),
    "return_rate": _commerce("return_rate", "orders"),
    "net_revenue": _commerce("net_revenue", "orders"),
    "nps": _feedback("nps", NPS_INPUTS),
    "csat": _feedback("csat", ("csat_responses",)),
    "feedback_response_rate": _feedback("feedback_response_rate", ("feedback_received",)),
    "first_response_p50_seconds": _duration("first_response", "p50"),
    "first_response_p90_seconds": _duration("first_response", "p90"),
    "resolution_p90_seconds": _duration("resolution", "p90"),
    "complaints": _complaints("complaints"),
    "complaints_per_1000_active": _complaints("complaints_per_1000_active"),
}


@dataclass(frozen=True)
class Live:
    """What live KPIs read: customers at risk now by ABC class (A, B, C, none) and customers per class."""

    at_risk: Mapping[str, int]
    classes: Mapping[str, int]


LiveReader = Callable[[Live], Reading]


def _at_risk(cls: str | None) -> LiveReader:
    def read(live: Live) -> Reading:
        if cls is None:
            return Reading(float(sum(live.at_risk.values())), sum(live.classes.values()))
        return Reading(float(live.at_risk.get(cls, 0)), live.classes.get(cls, 0))

    return read


def _share_at_risk(cls: str) -> LiveReader:
    def read(live: Live) -> Reading:
        size = live.classes.get(cls, 0)
        return Reading(None if size == 0 else live.at_risk.get(cls, 0) / size, size)

    return read


LIVE: dict[str, LiveReader] = {
    "customers_at_risk": _at_risk(None),
    **{f"customers_at_risk_share_{c.lower()}": _share_at_risk(c) for c in "ABC"},
    "customers_at_risk_a": _at_risk("A"),
    "customers_at_risk_b": _at_risk("B"),
    "customers_at_risk_c": _at_risk("C"),
}


# KPI of a cohort rule -> the cohort table it reads (metrics.cohort_grid.KINDS)
COHORT: dict[str, str] = {"cohort_customer_retention": "customers", "cohort_revenue_retention": "revenue"}
