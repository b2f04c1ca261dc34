"""The demo's traffic looks like a business: its KPIs fall in the ranges docs/demo.md documents.

The demo's history and live traffic (its defaults, a fixed clock and seed) go through the worker's
stages in process (:class:`fixtures.PurePipeline`); the ranges are read from the table of docs/demo.md,
so the page and the test cannot drift apart.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from demo_traffic import CUSTOMERS, DAY_US, END_US, NOW_US, demo_messages
from pure_pipeline import PurePipeline

from alerts.cohort import cohort_plan
from alerts.evaluate import observe
from alerts.rules import load_rules
from core.settings import Settings
from metrics.planning import run as run_plan
from streams.producers import demo
from streams.producers.scenarios import SCENARIOS
from streams.producers.simulate import rfc3339

ROOT = Path(__file__).resolve().parents[3]
PERIODS = {"month": "2026-11", "to date": "2026-12", "quarter": "2026-Q4"}
DOC = ROOT / "docs" / "demo.md"
# A row of the ranges: | figure | low, an en dash, high, unit (%, h or none) | periods, comma-separated |
ROW = re.compile(r"^\| (?P<figure>[^|]+?) \| (?P<low>[\d.]+) \u2013 (?P<high>[\d.]+) ?(?P<unit>%|h)? "
                 r"\| (?P<periods>[\w ,]+) \|$")
# A row of the scenarios: | `name` | rules breached (code spans; anything after "(" is not checked) |
SCENARIO_ROW = re.compile(r"^\| `(?P<scenario>[\w-]+)` \| (?P<rules>[^|(]*)")


def _share(part: int, whole: int) -> float:
    return part / whole if whole else 0.0


# How each figure of the table is read from a KPI answer.
FIGURES: dict[str, Callable[[dict[str, Any]], float]] = {
    "churn rate (`churn_rate`)": lambda a: a["kpis"]["churn_rate"],
    "retention rate (`retention_rate`)": lambda a: a["kpis"]["retention_rate"],
    "win-back rate (`winback_rate`)": lambda a: a["kpis"]["winback_rate"],
    "customers ordering / customers active in the month": lambda a: _share(
        a["inputs"]["customers_ordering"], a["inputs"]["B"] + a["inputs"]["N"] + a["inputs"]["R"]),
    "repeat purchase rate (`repeat_purchase_rate`)": lambda a: a["kpis"]["repeat_purchase_rate"],
    "refund rate (`refund_rate`)": lambda a: a["kpis"]["refund_rate"],
    "NPS (`nps`)": lambda a: a["kpis"]["nps"],
    "CSAT (`csat`)": lambda a: a["kpis"]["csat"],
    "tickets with a first reply / tickets that need one": lambda a: _share(
        a["kpis"]["first_response_seconds"]["count"],
        a["kpis"]["first_response_seconds"]["count"] + a["kpis"]["tickets_awaiting_first_response"]),
    "tickets resolved / tickets opened": lambda a: _share(
        a["kpis"]["resolution_seconds"]["count"],
        a["kpis"]["resolution_seconds"]["count"] + a["kpis"]["tickets_awaiting_resolution"]),
    "first response p90": lambda a: a["kpis"]["first_response_seconds"]["p90"],
    "resolution p90": lambda a: a["kpis"]["resolution_seconds"]["p90"],
    "feedback response rate (`feedback_response_rate`)": lambda a: a["kpis"]["feedback_response_rate"],
    "sales-team retention (`sales_rep_retention_rate`)": lambda a: a["kpis"]["sales_rep_retention_rate"],
}


def documented_ranges() -> list[tuple[str, float, float, str]]:
    """``(figure, low, high, period)`` for each row and period of the ranges in docs/demo.md, in base units."""
    rows = []
    for line in DOC.read_text().splitlines():
        if match := ROW.match(line):
            scale = {"%": 0.01, "h": 3600.0, None: 1.0}[match["unit"]]
            low, high = float(match["low"]) * scale, float(match["high"]) * scale
            rows += [(match["figure"], low, high, period) for period in match["periods"].split(", ")]
    return rows


def documented_alerts() -> dict[str, set[str]]:
    """The rules docs/demo.md says each scenario's live traffic breaches."""
    return {match["scenario"]: set(re.findall(r"`(\w+)`", match["rules"]))
            for line in DOC.read_text().splitlines() if (match := SCENARIO_ROW.match(line))}


def demo_traffic(scenario: str = "steady") -> list[dict[str, Any]]:
    return [json.loads(value) for _, _, value in demo_messages(scenario)]


def run(events: list[dict[str, Any]]) -> PurePipeline:
    pure = PurePipeline(Settings())  # the worker's settings: 7 days of allowed lateness
    for i in range(0, len(events), 2000):
        pure.send_batch(*events[i : i + 2000])
    return pure


@pytest.fixture(scope="module")
def traffic() -> list[dict[str, Any]]:
    return demo_traffic()


@pytest.fixture(scope="module")
def pipeline(traffic: list[dict[str, Any]]) -> PurePipeline:
    return run(traffic)


def test_the_table_lists_every_figure_the_test_reads_once_per_period() -> None:
    rows = documented_ranges()
    assert {figure for figure, *_ in rows} == set(FIGURES)
    assert len({(figure, period) for figure, _, _, period in rows}) == len(rows)
    assert {period for *_, period in rows} == set(PERIODS)


def test_nothing_is_rejected_as_late_or_invalid(pipeline: PurePipeline) -> None:
    assert pipeline.dead_letters() == []


def test_steady_kpis_fall_in_the_documented_ranges(pipeline: PurePipeline) -> None:
    answers = {kind: json.loads(json.dumps(pipeline.answer(period))) for kind, period in PERIODS.items()}
    outside = [
        f"{figure} {kind}: {FIGURES[figure](answers[kind]):.4g} not in [{low:g}, {high:g}]"
        for figure, low, high, kind in documented_ranges()
        if not low <= FIGURES[figure](answers[kind]) <= high
    ]
    assert outside == []


def test_the_base_signs_up_over_the_year_before_and_everyone_acting_has_signed_up(
    traffic: list[dict[str, Any]],
) -> None:
    history_start = rfc3339(NOW_US - demo.HISTORY_DAYS * DAY_US)
    signed_up: dict[str, str] = {}  # customer -> plan
    base_times: list[str] = []
    for event in traffic:
        data, cid = event["data"], event["data"].get("customer_id")
        if event["type"] == "customer.signed_up":
            signed_up[cid] = data.get("segment", {}).get("plan", "")
            if event["time"] < history_start:
                base_times.append(event["time"][:7])
        elif cid is not None:
            assert cid in signed_up, event
    assert len(base_times) == CUSTOMERS * 5 // 4  # those who stay and those who left again
    assert len(set(base_times)) >= 12  # spread over the year, month by month
    plans = [signed_up[c] for c in signed_up]
    shares = [plans.count(p) / len(plans) for p in ("free", "basic", "pro", "enterprise")]
    assert shares == sorted(shares, reverse=True)
    assert shares[-1] > 0.05


def breached(pure: PurePipeline) -> set[str]:
    """The rules of alerts/rules.yml whose condition holds for segment ``all`` as the live traffic ends."""
    rules = [rule for rule in load_rules() if rule.window != "now"]
    seen = [observe(pure.store.index, rule, "all", END_US) for rule in rules if rule.kind != "cohort"]
    cohorts = [(rule, "all") for rule in rules if rule.kind == "cohort"]
    seen += run_plan(cohort_plan(cohorts, END_US, pure.settings.tz), pure.ask)
    return {obs.rule.name for obs in seen if obs.breached}


def test_the_scenario_table_lists_every_scenario() -> None:
    assert set(documented_alerts()) == set(SCENARIOS)
    assert documented_alerts()["steady"] == set()


def test_steady_traffic_breaches_no_alert_rule(pipeline: PurePipeline) -> None:
    assert breached(pipeline) == set()


@pytest.mark.parametrize("scenario", [s for s in SCENARIOS if s != "steady"])
def test_each_scenario_breaches_the_rules_documented(scenario: str) -> None:
    rules = documented_alerts()[scenario]
    assert rules
    assert rules <= breached(run(demo_traffic(scenario)))
