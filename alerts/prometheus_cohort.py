"""A cohort rule (:mod:`alerts.cohort`) as PromQL over the cohort gauges, for :mod:`alerts.prometheus`.

The gauges (:mod:`metrics.gauges`) hold monthly cohorts by relative labels: ``cohort_offset`` o is the
cohort that signed up o months ago (0: this month), ``cohort_age`` its age in months; age o of cohort o
is the month holding "now", still running. So the cohorts that have completed age k are the offsets
from k + 1 on: the newest m of them are k + 1 … k + m, the n before them k + m + 1 … k + m + n. With
``drop = 1 - newest / baseline`` and ``0 < baseline``, ``drop > t`` is ``newest < (1 - t) * baseline``.
"""

from __future__ import annotations

from alerts.rules import Rule
from metrics.gauges import COHORT_AGES, COHORT_OFFSETS

METRICS = {"cohort_customer_retention": "retention_cohort_customer_retention_ratio",
           "cohort_revenue_retention": "retention_cohort_revenue_retention_ratio"}
ALL_ONLY = {"cohort_revenue_retention"}  # exported for segment all only (metrics.gauges.cohort_rows)
_BELOW = {">": "<", ">=": "<="}


def unexpressible(rule: Rule) -> str | None:
    """Why the cohort gauges cannot express ``rule`` (then it runs in the stream only), or None."""
    if rule.window != "month":
        return f"the cohort gauges hold monthly cohorts, not {rule.window}s"
    if rule.age >= COHORT_AGES or rule.age + rule.newest + rule.previous >= COHORT_OFFSETS:
        return f"the cohort gauges reach back {COHORT_OFFSETS - 1} months (age + newest + previous)"
    return None


def _offsets(first: int, count: int) -> str:
    return "|".join(str(o) for o in range(first, first + count))


def _shares(rule: Rule, seg: str, offsets: str) -> str:
    """Each cohort's share at the rule's age, one series per segment and cohort (``max``: its one owner)."""
    selector = f'{METRICS[rule.kpi]}{{cohort_age="{rule.age}",cohort_offset=~"{offsets}",{seg}}}'
    return f"max by (segment, cohort_offset) ({selector})"


def newest(rule: Rule, seg: str) -> str:
    """The mean share of the newest cohorts that completed the age."""
    return f"avg by (segment) ({_shares(rule, seg, _offsets(rule.age + 1, rule.newest))})"


def baseline(rule: Rule, seg: str) -> str:
    """The mean share of the cohorts before them."""
    return f"avg by (segment) ({_shares(rule, seg, _offsets(rule.age + 1 + rule.newest, rule.previous))})"


def smallest(rule: Rule, seg: str) -> str:
    """The customers of the smallest cohort compared."""
    offsets = _offsets(rule.age + 1, rule.newest + rule.previous)
    return (f"min by (segment) (max by (segment, cohort_offset) "
            f'(retention_cohort_customers{{cohort_offset=~"{offsets}",{seg}}}))')


def drop(rule: Rule, seg: str) -> str:
    return f"1 - {newest(rule, seg)} / {baseline(rule, seg)}"


def expression(rule: Rule, seg: str) -> str:
    """The alert's expression; its value is the newest cohorts' mean share (``{value}`` in the stream too).
    Every cohort compared has a share (an undefined one has no series), the baseline is above 0, and
    with ``min_customers`` every cohort has that many customers: else the stream does not evaluate it."""
    factor = round(1 - rule.threshold, 12)
    every = _shares(rule, seg, _offsets(rule.age + 1, rule.newest + rule.previous))
    parts = [f"{newest(rule, seg)}\n  {_BELOW[rule.op]}\n{factor:g} * {baseline(rule, seg)}",
             f"count by (segment) ({every}) == {rule.newest + rule.previous}",
             f"{baseline(rule, seg)} > 0"]
    if rule.min_customers:
        parts.append(f"{smallest(rule, seg)} >= {rule.min_customers}")
    return "\nand on(segment)\n".join(parts)
