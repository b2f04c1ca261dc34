"""Alert rules on the live at-risk counts (``window: now``): validation, evaluation in the stream, and the
Prometheus rule generated from them (ACustomersAtRisk is shipped)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
import yaml
from pure_pipeline import PurePipeline

from alerts import prometheus
from alerts.catalog import Live
from alerts.engine import AlertEngine
from alerts.evaluate import observe, step
from alerts.exceptions import RuleError
from alerts.rules import Rule, load_rules, parse_rule
from alerts.state import AlertState
from metrics.planning import Plan, run
from retention_monitor.alerts_cli import condition

LIVE = Live(at_risk={"A": 2, "B": 0, "C": 5, "none": 1}, classes={"A": 4, "B": 10, "C": 86})


def rule(**fields: Any) -> Rule:
    base = {"name": "AtRisk", "kpi": "customers_at_risk_a", "window": "now", "op": ">", "threshold": 0,
            "severity": "warning", "summary": "{value:.0f} A-class customers at risk"}
    return parse_rule({**base, **fields}, 0)


def test_the_shipped_rule() -> None:
    (shipped,) = [r for r in load_rules() if r.name == "ACustomersAtRisk"]
    assert (shipped.kpi, shipped.window, shipped.kind, shipped.segments, shipped.op, shipped.threshold) == (
        "customers_at_risk_share_a", "now", "static", ("all",), ">", 0.1)
    assert (shipped.for_seconds, shipped.keep_firing_seconds, shipped.severity) == (1800, 3600, "warning")
    assert shipped.min_samples == 20  # a handful of A customers is no basis for a share
    assert shipped.window_seconds == 0
    assert condition(shipped) == "customers_at_risk_share_a > 0.1 (n >= 20)"


@pytest.mark.parametrize(("kpi", "value", "samples"), [
    ("customers_at_risk_a", 2.0, 4), ("customers_at_risk_b", 0.0, 10), ("customers_at_risk_c", 5.0, 86),
    ("customers_at_risk", 8.0, 100),  # every class, unranked customers included
    ("customers_at_risk_share_a", 0.5, 4), ("customers_at_risk_share_b", 0.0, 10),
])
def test_live_readings(kpi: str, value: float, samples: int) -> None:
    obs = observe(PurePipeline().store.index, rule(kpi=kpi), "all", 0, LIVE)
    assert (obs.value, obs.samples, obs.breached) == (value, samples, value > 0)


def test_a_share_of_an_empty_class_is_undefined() -> None:
    obs = observe(PurePipeline().store.index, rule(kpi="customers_at_risk_share_a"), "all", 0,
                  Live({"A": 0}, {"A": 0}))
    assert (obs.value, obs.breached) == (None, None)


def test_undefined_without_counts_and_below_min_samples() -> None:
    index = PurePipeline().store.index
    assert observe(index, rule(), "all", 0, None).breached is None  # the registry is still catching up
    assert observe(index, rule(min_samples=5), "all", 0, LIVE).breached is None  # only 4 A customers
    assert observe(index, rule(min_samples=4), "all", 0, LIVE).breached is True


def test_for_and_keep_firing_for_apply() -> None:
    r = rule(**{"for": "15m", "keep_firing_for": "1h"})
    breach = observe(PurePipeline().store.index, r, "all", 0, LIVE)
    calm = observe(PurePipeline().store.index, r, "all", 0, Live({"A": 0}, {"A": 4}))
    state, moved = step(AlertState(), breach, 0.0)
    assert (moved, state.pending_since) == (None, 0.0)
    state, moved = step(state, breach, 900.0)
    assert (moved, state.firing_since) == ("firing", 900.0)
    state, moved = step(state, calm, 4400.0)
    assert moved is None  # within keep_firing_for of the last breach
    _, moved = step(state, calm, 4500.0)
    assert moved == "resolved"


def test_engine_dry_run_reads_the_counts_it_is_given() -> None:
    pipeline = PurePipeline()

    async def runner(job: Plan[Any]) -> Any:
        return run(job, pipeline.ask)

    async def now() -> int:
        return 1

    engine = AlertEngine([rule()], runner, updates=lambda: 0, owned=lambda: ["all"], segments=["all"], now_us=now,
                         state=None, client=None, live=lambda: LIVE)  # type: ignore[arg-type]
    (obs,) = asyncio.run(engine.dry_run(1))
    assert (obs.value, obs.breached) == (2.0, True)


@pytest.mark.parametrize(("change", "message"), [
    ({"window": "30d"}, "window='30d': customers_at_risk_a is counted now: window must be now"),
    ({"kind": "change", "baseline_window": "30d"},
     "kind='change': customers_at_risk_a is counted now: only static rules"),
    ({"segments": ["all", "plan:*"]}, "segments=('all', 'plan:*'): customers_at_risk_a exists for segment all only"),
    ({"kpi": "churn_rate"}, "window='now': must be one of 1d, 7d, 30d, 90d"),
])
def test_live_rules_are_checked_on_load(change: dict[str, Any], message: str) -> None:
    with pytest.raises(RuleError) as info:
        rule(**change)
    assert str(info.value) == f"rules: rule AtRisk: {message}"


def test_prometheus_rules_read_the_gauge_without_a_window(tmp_path: Path) -> None:
    one = rule(**{"for": "15m"})
    every = rule(name="ManyAtRisk", kpi="customers_at_risk", op=">=", threshold=50, summary="{value} at risk")
    doc = yaml.safe_load(prometheus.render([one, every]))
    first, second = doc["groups"][0]["rules"]
    assert first["expr"] == 'max (retention_customers_at_risk{class="A"}) > 0'
    assert first["labels"] == {"severity": "warning", "kpi": "customers_at_risk_a", "window": "now", "segment": "all"}
    assert first["annotations"]["summary"] == '{{ $value | printf "%.0f" }} A-class customers at risk'
    assert second["expr"] == "sum (max by (class) (retention_customers_at_risk)) >= 50"
    assert prometheus.expressible(one)
