"""Each rule kind, the minimum sample size, and the for / keep_firing_for state machine."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fixtures import event
from pure_pipeline import PurePipeline

from alerts.evaluate import Observation, observe, step
from alerts.rules import Rule, load_rules, parse_rule
from alerts.state import AlertState
from core.periods import to_us

NOW = datetime(2025, 3, 31, 12, tzinfo=UTC)


def rule(**fields: Any) -> Rule:
    base = {"name": "TestRule", "kpi": "churn_rate", "window": "30d", "op": ">", "threshold": 0.05,
            "severity": "critical", "summary": "x"}
    return parse_rule({**base, **fields}, 0)


def customers(n: int, churned: int, churn_day: datetime, signup: datetime = NOW - timedelta(days=200)) -> PurePipeline:
    p = PurePipeline()
    p.send(*(event("customer.signed_up", signup, {"customer_id": f"c{i}"}) for i in range(n)))
    p.send(*(event("customer.churned", churn_day, {"customer_id": f"c{i}"}) for i in range(churned)))
    return p


def test_static_threshold_and_min_samples() -> None:
    p = customers(100, 6, NOW - timedelta(days=3))
    obs = observe(p.store.index, rule(min_samples=50), "all", to_us(NOW))
    assert (obs.breached, obs.value, obs.samples) == (True, 0.06, 100)
    assert observe(p.store.index, rule(min_samples=101), "all", to_us(NOW)).breached is None
    assert observe(p.store.index, rule(threshold=0.06), "all", to_us(NOW)).breached is False


def test_change_against_a_scaled_baseline() -> None:
    # 300 customers; 1 churn per day for 29 days, then 4 today: 1d churn 4/271, 30d daily mean 33/300/30
    p = customers(300, 0, NOW)
    for day in range(1, 30):
        p.send(event("customer.churned", NOW - timedelta(days=day, hours=1), {"customer_id": f"c{day}"}))
    p.send(*(event("customer.churned", NOW - timedelta(hours=2), {"customer_id": f"c{100 + i}"}) for i in range(4)))
    spike = rule(kind="change", window="1d", baseline_window="30d", scale_to_window=True, factor=3)
    obs = observe(p.store.index, spike, "all", to_us(NOW))
    assert obs.baseline == pytest.approx(33 / 300 / 30)
    assert obs.value == pytest.approx(4 / 271)
    assert obs.breached is True  # 0.0148 > 3 * 0.00367
    three = rule(kind="change", window="1d", baseline_window="30d", scale_to_window=True, factor=5)
    assert observe(p.store.index, three, "all", to_us(NOW)).breached is False  # 0.0148 < 5 * 0.00367


def test_change_with_delta_nps_drop() -> None:
    p = PurePipeline()
    # 90 days: 60 promoters spread out; last 7 days: 10 detractors and 10 promoters
    for i in range(60):
        p.send(event("survey.nps", NOW - timedelta(days=10 + i), {"customer_id": f"p{i}", "score": 10}))
    for i in range(10):
        p.send(event("survey.nps", NOW - timedelta(days=1), {"customer_id": f"d{i}", "score": 2}),
               event("survey.nps", NOW - timedelta(days=2), {"customer_id": f"q{i}", "score": 9}))
    drop = rule(kpi="nps", kind="change", window="7d", baseline_window="90d", delta=-15, op="<", min_samples=20)
    obs = observe(p.store.index, drop, "all", to_us(NOW))
    assert obs.value == 0.0  # (10 - 10) / 20
    assert obs.baseline == pytest.approx(100 * 60 / 80)  # (70 - 10) / 80
    assert obs.breached is True
    too_few = rule(kpi="nps", kind="change", window="7d", baseline_window="90d", delta=-15, op="<", min_samples=21)
    assert observe(p.store.index, too_few, "all", to_us(NOW)).breached is None


def test_anomaly_z_score_against_trailing_buckets() -> None:
    p = PurePipeline()
    counts = [2, 3, 2, 4, 3, 2, 3, 3, 2, 3]  # complaints per day over the 10 days before today
    for day, n in enumerate(counts, start=1):
        for i in range(n):
            p.send(event("ticket.opened", NOW - timedelta(days=day, hours=3),
                         {"customer_id": f"c{day}-{i}", "ticket_id": "t", "kind": "complaint"}))
    for i in range(9):
        p.send(event("ticket.opened", NOW - timedelta(hours=3), {"customer_id": f"n{i}", "ticket_id": "t",
                                                                  "kind": "complaint"}))
    surge = rule(kpi="complaints", kind="anomaly", window="1d", buckets=10, z=3, op=">")
    obs = observe(p.store.index, surge, "all", to_us(NOW))
    mean = sum(counts) / 10
    stdev = (sum((c - mean) ** 2 for c in counts) / 9) ** 0.5
    assert obs.baseline == pytest.approx(mean)
    assert obs.z_score == pytest.approx((9 - mean) / stdev)
    assert obs.breached is True


def obs_(r: Rule, breached: bool | None, value: float = 1.0) -> Observation:
    return Observation(r, "all", breached, value, 100)


def test_for_and_keep_firing_for() -> None:
    r = rule(**{"for": "5m", "keep_firing_for": "10m"})
    s = AlertState()
    s, t = step(s, obs_(r, True), 1000)
    assert (t, s.pending_since, s.firing_since) == (None, 1000, None)
    s, t = step(s, obs_(r, True), 1000 + 299)
    assert t is None
    s, t = step(s, obs_(r, True), 1000 + 312)
    assert (t, s.firing_since) == ("firing", 1300)  # pending since + for: the same on every worker
    s, t = step(s, obs_(r, True), 1400)
    assert t is None  # firing once, not again
    s, t = step(s, obs_(r, False), 1500)
    assert (t, s.firing_since) == (None, 1300)  # keep firing for 10 minutes after the last breach
    s, t = step(s, obs_(r, False), 1400 + 600)
    assert (t, s.firing_since, s.pending_since) == ("resolved", None, None)


def test_a_breach_shorter_than_for_never_fires() -> None:
    r = rule(**{"for": "5m"})
    s, t = step(AlertState(), obs_(r, True), 0)
    s, t = step(s, obs_(r, False), 200)
    assert (t, s.pending_since) == (None, None)
    s, t = step(s, obs_(r, True), 250)
    s, t = step(s, obs_(r, True), 500)
    assert t is None  # the pending clock restarted at 250
    s, t = step(s, obs_(r, True), 550)
    assert t == "firing"


def test_undefined_or_too_few_samples_does_not_keep_pending() -> None:
    r = rule(**{"for": "1m"})
    s, _ = step(AlertState(), obs_(r, True), 0)
    s, t = step(s, obs_(r, None), 30)
    assert (t, s.pending_since) == (None, None)


def test_shipped_rules_cover_the_required_alerts() -> None:
    names = {r.name for r in load_rules()}
    assert {"ChurnRateHigh", "ChurnSpike", "NpsLow", "NpsDrop", "CsatLow", "FirstResponseSlow", "ComplaintSurge",
            "RefundRateHigh", "CohortRetentionDrop"} <= names
    assert {r.kind for r in load_rules()} == {"static", "change", "anomaly", "cohort"}
