"""Pure alert evaluation: what a rule sees in a fact view now, and the pending/firing state machine.

``observe`` reads the KPI windows a rule needs from any :class:`metrics.kpis.FactView` (a live KPI
from the :class:`alerts.catalog.Live` counts it is given; cohort rules: :mod:`alerts.cohort`); ``step``
advances one rule-and-segment state with the same ``for`` / ``keep_firing_for`` semantics as
Prometheus. Neither touches Redis, Kafka or the clock: the caller passes ``now``.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from alerts.catalog import KPIS, LIVE, Live, Reading
from alerts.rules import Rule
from alerts.state import AlertState
from core.periods import ROLLING
from metrics import kpis as K

OPS: dict[str, Callable[[float, float], bool]] = {">": operator.gt, ">=": operator.ge, "<": operator.lt,
                                                  "<=": operator.le}
DAY_US = 86_400_000_000


@dataclass(frozen=True)
class Observation:
    """One look at a rule for one segment. ``breached`` is None when the KPI is undefined or has too
    few samples (then the rule neither fires nor keeps pending)."""

    rule: Rule
    segment: str
    breached: bool | None
    value: float | None
    samples: int
    baseline: float | None = None
    z_score: float | None = None
    drop: float | None = None  # cohort rules: 1 - value / baseline
    cohorts: tuple[str, ...] = ()  # cohort rules: the newest cohorts compared

    def context(self) -> dict[str, Any]:
        """Values for the rule's summary/description templates."""
        return {"value": self.value, "baseline": self.baseline, "samples": self.samples,
                "window": self.rule.window, "segment": self.segment, "threshold": self.rule.threshold,
                "z_score": self.z_score, "drop": self.drop, "cohorts": ", ".join(self.cohorts)}


def read(view: K.FactView, rule: Rule, segment: str, end_us: int, days: int) -> Reading:
    return KPIS[rule.kpi](K.Ask(view, segment, end_us - days * DAY_US, end_us))


def observe(view: K.FactView, rule: Rule, segment: str, now_us: int, live: Live | None = None) -> Observation:
    """Evaluate ``rule`` on ``segment`` for windows ending at ``now_us`` (a live KPI: as ``live`` says;
    undefined without it). Cohort rules read cohort tables instead: :func:`alerts.cohort.cohort_plan`."""
    if rule.kind == "cohort":
        raise ValueError(f"{rule.name}: a cohort rule is observed with alerts.cohort.cohort_plan")
    if rule.kpi in LIVE:
        current = LIVE[rule.kpi](live) if live is not None else Reading(None, 0)
    else:
        current = read(view, rule, segment, now_us, ROLLING[rule.window])
    if current.value is None or current.samples < rule.min_samples:
        return Observation(rule, segment, None, current.value, current.samples)
    compare = OPS[rule.op]
    if rule.kind == "static":
        return Observation(rule, segment, compare(current.value, rule.threshold), current.value, current.samples)
    days = ROLLING[rule.window]
    if rule.kind == "change":
        assert rule.baseline_window is not None  # checked on load
        base_days = ROLLING[rule.baseline_window]
        base = read(view, rule, segment, now_us, base_days).value
        if base is None:
            return Observation(rule, segment, None, current.value, current.samples)
        if rule.scale_to_window:
            base = base * days / base_days
        limit = base * rule.factor + rule.delta
        return Observation(rule, segment, compare(current.value, limit), current.value, current.samples, base)
    return _anomaly(view, rule, segment, now_us, current)


def _anomaly(view: K.FactView, rule: Rule, segment: str, now_us: int, current: Reading) -> Observation:
    days = ROLLING[rule.window]
    history = [read(view, rule, segment, now_us - i * days * DAY_US, days).value for i in range(1, rule.buckets + 1)]
    values = [v for v in history if v is not None]
    if len(values) < 3 or current.value is None:
        return Observation(rule, segment, None, current.value, current.samples)
    mean = sum(values) / len(values)
    stdev = math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1))
    if stdev == 0:
        # A perfectly flat history: any change is infinitely unusual; say so without dividing by 0.
        z = 0.0 if current.value == mean else math.copysign(math.inf, current.value - mean)
    else:
        z = (current.value - mean) / stdev
    breached = OPS[rule.op](z, rule.z if rule.op in (">", ">=") else -rule.z)
    return Observation(rule, segment, breached, current.value, current.samples, mean, z)


def step(state: AlertState, obs: Observation, now: float) -> tuple[AlertState, str | None]:
    """Advance ``state`` by one observation at ``now`` (epoch s); returns the transition, if any:
    ``"firing"`` when ``for`` has elapsed, ``"resolved"`` when the breach is gone for ``keep_firing_for``."""
    rule = obs.rule
    if obs.breached:
        pending = state.pending_since if state.pending_since is not None else now
        state = replace(state, pending_since=pending, last_breach=now, last_value=obs.value)
        if state.firing_since is None and now - pending >= rule.for_seconds:
            # Derived from the shared pending time, not from ``now``: two workers racing on the same
            # breach compute the same start, so only one of them wins the page claim.
            return replace(state, firing_since=pending + rule.for_seconds), "firing"
        return state, None
    if state.firing_since is not None:
        last = state.last_breach if state.last_breach is not None else state.firing_since
        if now - last >= rule.keep_firing_seconds:
            return AlertState(last_sent=state.last_sent, last_value=obs.value), "resolved"
        return state, None
    return replace(state, pending_since=None, last_value=obs.value), None
