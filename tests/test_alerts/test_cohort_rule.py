"""Cohort alert rules (``kind: cohort``): the comparison on hand-computed cohorts, the cohort tables they read
(merged over the stores of several workers), ``for``, the engine's pass, and validation."""

from __future__ import annotations

import argparse
import asyncio
import io
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from cohort_events import DECAY_NOW, decay_events
from hypothesis import given, settings
from hypothesis import strategies as st
from pure_pipeline import PurePipeline
from rich.console import Console

from alerts.cohort import CohortCell, cohort_plan, judge
from alerts.engine import AlertEngine
from alerts.evaluate import step
from alerts.exceptions import RuleError
from alerts.rules import Rule, load_rules, parse_rule
from alerts.state import AlertState
from core.config import LoadedSettings
from core.periods import to_us
from core.settings import Settings
from metrics.planning import Plan, run
from retention_monitor import alerts_cli
from retention_monitor.alerts_cli import condition

UTC = ZoneInfo("UTC")
NOW_US = to_us(datetime.fromisoformat(DECAY_NOW)) + 1  # just after the newest event, as with clock = "event"


def rule(**fields: Any) -> Rule:
    base = {"name": "CohortDrop", "kind": "cohort", "kpi": "cohort_customer_retention", "window": "month",
            "age": 1, "newest": 2, "previous": 3, "op": ">", "threshold": 0.2, "min_customers": 50,
            "severity": "warning", "summary": "{value:.0%} against {baseline:.0%}: {drop:.0%} below ({cohorts})"}
    return parse_rule({**base, **fields}, 0)


def cohorts(*values: float | None, customers: int = 100, provisional: int = 0) -> list[CohortCell]:
    """Cohorts 2025-01, 2025-02 ... with these shares, oldest first; the last ``provisional`` still running."""
    n = len(values)
    return [CohortCell(f"2025-{i + 1:02d}", customers, v, i < n - provisional) for i, v in enumerate(values)]


# previous 3: (0.9 + 0.8 + 0.85) / 3 = 0.85; newest 2: (0.6 + 0.7) / 2 = 0.65; drop 1 - 0.65 / 0.85 = 0.235
DROPPED = (0.9, 0.8, 0.85, 0.6, 0.7)


def test_fires_when_the_newest_cohorts_drop_more_than_the_threshold() -> None:
    obs = judge(rule(), "all", cohorts(*DROPPED))
    assert obs.breached is True
    assert (obs.value, obs.baseline, obs.drop) == pytest.approx((0.65, 0.85, 1 - 0.65 / 0.85))
    assert (obs.samples, obs.cohorts) == (100, ("2025-04", "2025-05"))
    assert judge(rule(threshold=0.24), "all", cohorts(*DROPPED)).breached is False  # 23.5 % is not 24 %
    # only the newest m and the n before them: an older, better cohort changes nothing
    older = judge(rule(), "all", cohorts(1.0, *DROPPED))
    assert (older.breached, older.value, older.baseline, older.drop) == (True, obs.value, obs.baseline, obs.drop)


def test_a_cohort_below_min_customers_stops_the_rule() -> None:
    small = [*cohorts(*DROPPED)]
    small[1] = CohortCell("2025-02", 49, 0.8, True)
    obs = judge(rule(), "all", small)
    assert (obs.breached, obs.samples) == (None, 49)
    assert judge(rule(min_customers=49), "all", small).breached is True
    # a small cohort outside the comparison does not count
    assert judge(rule(), "all", [CohortCell("2024-12", 3, 0.1, True), *cohorts(*DROPPED)]).breached is True


def test_the_provisional_cohort_is_never_compared() -> None:
    # the running age of the newest cohort is 0.1: compared, it would fire; the complete ones did not drop
    steady = cohorts(0.9, 0.8, 0.85, 0.9, 0.8, 0.1, provisional=1)
    obs = judge(rule(), "all", steady)
    assert (obs.breached, obs.cohorts) == (False, ("2025-04", "2025-05"))
    # without enough complete cohorts the rule is not evaluated
    assert judge(rule(), "all", cohorts(0.9, 0.8, 0.85, 0.6, 0.1, provisional=1)).breached is None


def test_an_undefined_share_or_no_baseline_is_not_evaluated() -> None:
    assert judge(rule(), "all", cohorts(0.9, None, 0.85, 0.6, 0.7)).breached is None
    assert judge(rule(kpi="cohort_revenue_retention"), "all", cohorts(0.0, 0.0, 0.0, 0.6, 0.7)).breached is None
    assert judge(rule(), "all", []).breached is None


def test_for_applies_as_to_every_rule() -> None:
    r = rule(**{"for": "1h"})
    breach, calm = judge(r, "all", cohorts(*DROPPED)), judge(r, "all", cohorts(0.9, 0.8, 0.85, 0.9, 0.8))
    state, moved = step(AlertState(), breach, 0.0)
    state, moved = step(state, breach, 3599.0)
    assert (moved, state.firing_since) == (None, None)
    state, moved = step(state, breach, 3600.0)
    assert (moved, state.firing_since) == ("firing", 3600.0)
    _, moved = step(state, calm, 3700.0)
    assert moved == "resolved"


def observed(pipeline: PurePipeline, r: Rule, segment: str = "all") -> Any:
    (obs,) = run(cohort_plan([(r, segment)], NOW_US, UTC), pipeline.ask)
    return obs


def test_the_rule_reads_the_cohort_tables_of_every_store() -> None:
    # decay_events: month-1 retention 0.9 in January to March, 0.6 in April and May, June's running
    r = rule(previous=3, min_customers=10)
    for workers in (1, 3):  # a cluster's stores merged: the same numbers as one store
        obs = observed(PurePipeline(workers=workers).send(*decay_events()), r)
        assert (obs.breached, obs.cohorts, obs.samples) == (True, ("2025-04", "2025-05"), 10)
        assert (obs.value, obs.baseline, obs.drop) == pytest.approx((0.6, 0.9, 1 / 3))
    pipeline = PurePipeline().send(*decay_events())
    assert observed(pipeline, rule(min_customers=11)).breached is None
    assert observed(pipeline, rule(age=0, newest=1, previous=1, min_customers=10)).breached is False  # 1.0 vs 1.0
    assert observed(pipeline, rule(min_customers=10), "plan:pro").breached is True  # the cohorts signed up on pro
    weekly = observed(pipeline, rule(window="week", min_customers=10))
    assert (weekly.breached, weekly.samples) == (None, 0)  # most weeks have no sign-up at all


@settings(max_examples=25, deadline=None)
@given(st.randoms(use_true_random=False), st.data())
def test_order_and_duplicates_never_change_what_the_rule_sees(rnd: Any, data: st.DataObject) -> None:
    events = decay_events()
    mixed = [*events, *data.draw(st.lists(st.sampled_from(events), max_size=10))]
    rnd.shuffle(mixed)
    r = rule(previous=3, min_customers=10)
    workers = data.draw(st.sampled_from([1, 2]))
    # shuffled, sign-ups come after churns and much later than others: lateness is no question here
    assert observed(PurePipeline(workers=workers).send(*mixed), r) == observed(PurePipeline().send(*events), r)


def test_the_engine_observes_cohort_and_kpi_rules_in_rule_order_and_reuses_cohort_tables() -> None:
    pipeline = PurePipeline().send(*decay_events())
    asked: list[str] = []

    async def runner(job: Plan[Any]) -> Any:
        def ask(questions: list[Any]) -> list[Any]:
            asked.extend(q[0] for q in questions)
            return pipeline.ask(questions)

        return run(job, ask)

    async def now() -> int:
        return NOW_US

    churn = parse_rule({"name": "Churn", "kpi": "churn_rate", "window": "30d", "op": ">", "threshold": 0.5,
                        "severity": "info", "summary": "x"}, 1)
    engine = AlertEngine([rule(min_customers=10), churn], runner, updates=lambda: 0, owned=lambda: ["all"],
                         segments=["all"], now_us=now, state=None, client=None)  # type: ignore[arg-type]
    first = asyncio.run(engine.observe(NOW_US, lambda s: True, reuse=True))
    assert [(o.rule.name, o.breached) for o in first] == [("CohortDrop", True), ("Churn", False)]
    again = asyncio.run(engine.observe(NOW_US, lambda s: True, reuse=True))
    assert again == first
    assert asked.count("cohort_tables") == 1  # the second pass reused the tables (they took next to no time)
    asyncio.run(engine.dry_run(NOW_US))
    assert asked.count("cohort_tables") == 2  # a dry run (`alerts test`) never reuses them


def test_the_shipped_rule() -> None:
    (shipped,) = [r for r in load_rules() if r.name == "CohortRetentionDrop"]
    assert (shipped.kind, shipped.kpi, shipped.window, shipped.age, shipped.newest, shipped.previous) == (
        "cohort", "cohort_customer_retention", "month", 1, 2, 6)
    assert (shipped.op, shipped.threshold, shipped.min_customers, shipped.severity) == (">", 0.2, 50, "warning")
    assert condition(shipped) == ("cohort_customer_retention at age 1: the newest 2 completed month cohorts > 20% "
                                  "below the previous 6 (each >= 50 customers)")


def test_alerts_test_says_why_a_cohort_rule_would_fire_or_not(monkeypatch: pytest.MonkeyPatch) -> None:
    def row(**fields: Any) -> dict[str, Any]:
        return {"rule": "CohortDrop", "kind": "cohort", "segment": "all", "would_fire": False, "value": 0.6,
                "baseline": 0.9, "z_score": None, "drop": 1 / 3, "samples": 10, "min_samples": 0,
                "min_customers": 10, "cohorts": ["2025-04", "2025-05"], "undefined": False, **fields}

    answer = {"period": {"label": "2025-07-02", "end": "2025-07-03T00:00:00+00:00"}, "rules": [
        row(would_fire=True), row(undefined=True, value=None, cohorts=[], samples=0),
        row(undefined=True, samples=4), row(undefined=True, value=None)]}
    monkeypatch.setattr(alerts_cli, "get_json", lambda *args, **kwargs: answer)
    out = io.StringIO()
    args = argparse.Namespace(url="http://w", period="2025-07-02", json=False)
    assert alerts_cli.alerts_test(args, LoadedSettings(Settings(), {}), Console(file=out, width=200)) == 0
    text = out.getvalue()
    for why in ("condition holds (drop 33.3%, cohorts 2025-04, 2025-05)", "too few completed cohorts",
                "a cohort of only 4 customers < 10", "undefined retention"):
        assert why in text


@pytest.mark.parametrize(("change", "message"), [
    ({"window": "30d"}, "window='30d': cohort rules need the cohort period: one of week, month, quarter"),
    ({"kpi": "churn_rate"}, "kpi='churn_rate': cohort rules need one of cohort_customer_retention, "
                            "cohort_revenue_retention"),
    ({"kind": "static"}, "kind='static': cohort_customer_retention is read from cohort tables: kind must be cohort"),
    ({"op": "<"}, "op='<': cohort rules fire on a drop: op must be > or >="),
    ({"threshold": 20}, "threshold=20: cohort rules need the relative drop between 0 and 1, e.g. 0.2"),
    ({"age": -1}, "age=-1: must be an integer >= 0 (periods after the sign-up period)"),
    ({"newest": 0}, "newest=0: must be an integer >= 1 (cohorts compared)"),
    ({"previous": "six"}, "previous='six': must be an integer >= 1 (cohorts of the baseline)"),
    ({"min_customers": 2.5}, "min_customers=2.5: must be an integer >= 0"),
    ({"min_samples": 50}, "min_samples=50: cohort rules count customers per cohort: use min_customers"),
    ({"age": 100, "previous": 30}, "age=(100, 2, 30): age + newest + previous must be at most 120 periods"),
    ({"kind": "trend"}, "kind='trend': must be static, change, anomaly or cohort"),
])
def test_bad_fields_are_one_line_naming_the_value_and_what_is_allowed(change: dict[str, Any], message: str) -> None:
    with pytest.raises(RuleError) as info:
        rule(**change)
    assert str(info.value) == f"rules: rule CohortDrop: {message}"


def test_min_customers_belongs_to_cohort_rules() -> None:
    with pytest.raises(RuleError) as info:
        parse_rule({"name": "Churn", "kpi": "churn_rate", "window": "30d", "op": ">", "threshold": 0.5,
                    "min_customers": 50, "severity": "info", "summary": "x"}, 0)
    assert str(info.value) == ("rules: rule Churn: min_customers=50: only cohort rules count customers per cohort; "
                               "use min_samples")
