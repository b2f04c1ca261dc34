"""Cohort alert rules (``kind: cohort``): the newest cohorts' retention at one age against the cohorts before.

A rule with ``age: k``, ``newest: m`` and ``previous: n`` reads the cohort table of its ``window`` (``week``,
``month`` or ``quarter`` cohorts, :mod:`metrics.cohorts`) as of the evaluation instant. Of the cohorts whose
age k has ended — the age holding "now" is provisional and never counts — it takes the newest m and the n
before them and compares the means of their shares at age k (customer or revenue retention, as the rule's
``kpi`` says): ``drop = 1 - mean(newest) / mean(previous)``, breached when ``drop OP threshold``.

Every one of the m + n cohorts needs ``min_customers`` customers and a defined share, and the baseline must
be above 0; else the rule is not evaluated (``breached`` is None), as a KPI below ``min_samples``.

The shares come from one ``cohort_tables`` question per period unit for every segment the rules watch: plain
counts and sums per store that merge exactly across a cluster's workers (:mod:`metrics.questions`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo

from alerts.catalog import COHORT
from alerts.evaluate import OPS, Observation
from alerts.rules import Rule
from metrics.cohort_grid import Grid, grid, recent
from metrics.cohorts import row_of
from metrics.planning import Plan


@dataclass(frozen=True)
class CohortCell:
    """One cohort's share at a rule's age: ``value`` None when undefined, ``complete`` once the age has ended."""

    label: str
    customers: int
    value: float | None
    complete: bool


def judge(rule: Rule, segment: str, cohorts: Sequence[CohortCell]) -> Observation:
    """What ``rule`` sees in ``cohorts`` (oldest first, every cohort of the table at the rule's age)."""
    done = [c for c in cohorts if c.complete]
    wanted = rule.newest + rule.previous
    if len(done) < wanted:
        return Observation(rule, segment, None, None, 0)  # not enough history yet
    newest, before = done[-rule.newest:], done[-wanted:-rule.newest]
    labels = tuple(c.label for c in newest)
    samples = min(c.customers for c in done[-wanted:])
    value, baseline = _mean(newest), _mean(before)
    if samples < rule.min_customers or value is None or baseline is None or baseline <= 0:
        # too small to say, undefined, or nothing retained before to drop from
        return Observation(rule, segment, None, value, samples, baseline, cohorts=labels)
    drop = 1 - value / baseline
    return Observation(rule, segment, OPS[rule.op](drop, rule.threshold), value, samples, baseline, drop=drop,
                       cohorts=labels)


def _mean(cells: Sequence[CohortCell]) -> float | None:
    values = [c.value for c in cells]
    if any(v is None for v in values):
        return None
    return sum(v for v in values if v is not None) / len(values)


def cells(rule: Rule, g: Grid, rows: Sequence[list[Any]]) -> list[CohortCell]:
    """The cohorts of a merged table (``rows`` on grid ``g``) at ``rule``'s age, oldest first; a cohort too
    young to have reached the age is left out."""
    out = []
    for c, row in enumerate(rows):
        ages = row_of(g, c, row, COHORT[rule.kpi])["ages"]
        if rule.age < len(ages):
            cell = ages[rule.age]
            out.append(CohortCell(g.labels[c], row[0], cell["value"], not cell["provisional"]))
    return out


def cohort_plan(pairs: Sequence[tuple[Rule, str]], end_us: int, tz: ZoneInfo) -> Plan[list[Observation]]:
    """What each cohort rule and segment of ``pairs`` sees as of ``end_us``, in their order: one round, one
    ``cohort_tables`` question per period unit for all of its segments (one scan per store)."""
    units = sorted({rule.window for rule, _ in pairs})
    grids: dict[str, Grid] = {}
    segments: dict[str, list[str]] = {}
    for unit in units:
        mine = [(rule, segment) for rule, segment in pairs if rule.window == unit]
        # one period more than the rules look back: "now" on a period's first instant leaves that period out
        back = max(rule.age + rule.newest + rule.previous for rule, _ in mine) + 1
        grids[unit] = grid(unit, recent(unit, end_us, tz, back), None, end_us, tz)
        segments[unit] = sorted({segment for _, segment in mine})
    asked = [u for u in units if grids[u].cohorts]
    answers = (yield [("cohort_tables", segments[u], list(grids[u].bounds), grids[u].cohorts, grids[u].as_of_us)
                      for u in asked]) if asked else []
    tables = {(u, segment): rows for u, answer in zip(asked, answers, strict=True)
              for segment, rows in zip(segments[u], answer, strict=True)}
    return [judge(rule, segment, cells(rule, grids[rule.window], tables.get((rule.window, segment), [])))
            for rule, segment in pairs]
