"""Cohort retention: customers grouped by the period they signed up in, and what share of them (and of
their revenue) is still there 0, 1, 2 ... periods later. Definitions: docs/contract/kpis.md, "Cohorts".

A store answers one question for a whole table (:func:`table`): per cohort, its customers, how many
of them are active at the end of each age, and their net revenue in each age — plain counts and sums of
the store's own customers, so the answers of several stores (a worker's partitions, or every worker)
merge by adding them up, cell by cell. The shares are formed only from the merged sums (:func:`cohorts_plan`).

Everything is read from the lifecycle and commerce facts (:mod:`metrics.facts`) by customer (``who``):
the sign-up (``NEW``) gives a customer's cohort and sign-up segment; ``NEW`` and ``REACTIVATED`` raise,
``LOST`` lowers whether it is active; ``ORDER`` minus ``REFUND`` is its net revenue. Vectorised per kind
with numpy: no loop over customers; each fact's customer is found among the sign-ups by a compiled hash
lookup (``retention_native.positions``: a binary search of millions of facts was half of a table's time).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
import numpy.typing as npt
import retention_native

from core.errors import PeriodError
from core.periods import from_us
from metrics import facts as F
from metrics.cohort_grid import KINDS, Grid, grid
from metrics.day_columns import NO_VALUE
from metrics.frozen import Read, Scans
from metrics.kpis import money, ratio
from metrics.planning import Plan, newest
from metrics.segments import ALL

# Cohort tables move with the month, not the second, and one reads every lifecycle and order fact since the
# oldest cohort: the gauges and the cohort alert rules reuse one while younger than this many times what it
# took (about 3 % of the event loop), so a small store is fresh within a fraction of a second and 200,000
# customers within about ten.
REUSE_FACTOR = 30

I64 = npt.NDArray[np.int64]
# how each lifecycle fact changes "is active" (weights are +1, or -1 for a retracted fact)
_ACTIVITY = ((F.NEW, 1), (F.REACTIVATED, 1), (F.LOST, -1))
_REVENUE = ((F.ORDER, 1), (F.REFUND, -1))


def signups(index: Scans, start: int, end: int) -> tuple[I64, I64, I64]:
    """``(who, sign-up time, sign-up combination)`` of the customers who signed up in ``[start, end)``, sorted
    by who. A retracted sign-up (a late, earlier one replaced it) nets out with the fact it retracts."""
    t, _v, combos, who, weights = index.scan(F.NEW, start, end)
    if (weights < 0).any():  # net each fact (who, time, combination) over its additions and retractions
        order = np.lexsort((combos, t, who))
        who, t, combos, weights = who[order], t[order], combos[order], weights[order]
        starts = _starts((who, t, combos))
        alive = starts[np.add.reduceat(weights, starts) > 0] if len(starts) else starts
        who, t, combos = who[alive], t[alive], combos[alive]
    order = np.lexsort((t, who))
    who, t, combos = who[order], t[order], combos[order]
    first = _starts((who,))  # a customer has one sign-up; were there two, the earlier would count
    return who[first], t[first], combos[first]


def _starts(columns: tuple[I64, ...]) -> I64:
    """Where a run of equal rows begins in sorted ``columns``."""
    if not len(columns[0]):
        return np.zeros(0, np.int64)
    changed = np.zeros(len(columns[0]) - 1, np.bool_)
    for col in columns:
        changed |= col[1:] != col[:-1]
    return np.flatnonzero(np.r_[True, changed])


@dataclass(frozen=True)
class _Cells:
    """Facts of the cohorts' customers as cells: the customer (its position in the sign-ups), the
    cohort, the age, and what the fact adds there."""

    customer: I64
    cohort: I64
    age: I64
    amount: I64


def _cells(index: Scans, kinds: Sequence[tuple[str, int]], *, cohort_of: tuple[I64, I64],
           edges: I64, until: int, values: bool) -> _Cells:
    """Each fact of ``kinds`` of a cohort's customer: its sign times its weight (times its value with
    ``values``) at ``(cohort, age)``; facts before the customer's cohort period count nowhere."""
    who, cohort = cohort_of
    everyone = index.member(ALL)  # every lifecycle and order fact counts for "all": each once
    parts: list[tuple[I64, I64, I64, I64]] = []
    for kind, sign in kinds:
        t, v, combos, customers, weights = index.scan(kind, int(edges[0]), until)
        if not len(who) or not len(t):
            continue
        at = np.frombuffer(retention_native.positions(who, customers), np.int64)
        keep = everyone[combos] & (at >= 0)
        c = cohort[at[keep]]
        age = np.searchsorted(edges, t[keep], side="right") - 1 - c
        amount = sign * weights[keep] * (np.where(v[keep] == NO_VALUE, 0, v[keep]) if values else 1)
        ok = age >= 0
        parts.append((at[keep][ok], c[ok], age[ok], amount[ok]))
    if not parts:
        empty = np.zeros(0, np.int64)
        return _Cells(empty, empty, empty, empty)
    return _Cells(*(np.concatenate([p[i] for p in parts]).astype(np.int64) for i in range(4)))


def _sum(cells: _Cells, mine: npt.NDArray[np.bool_], shape: tuple[int, int]) -> I64:
    out = np.zeros(shape, np.int64)
    keep = mine[cells.customer]
    np.add.at(out, (cells.cohort[keep], cells.age[keep]), cells.amount[keep])  # int64: money stays exact
    return out


def reads(bounds: Sequence[int], cohorts: int, until: int) -> list[Read]:
    """The scans :func:`tables` makes."""
    start = int(bounds[0])
    return [(F.NEW, start, min(int(bounds[cohorts]), until)),
            *((kind, start, until) for kind, _ in (*_ACTIVITY, *_REVENUE))]


def tables(index: Scans, segments: Sequence[str], bounds: Sequence[int], cohorts: int,
           until: int) -> list[list[list[Any]]]:
    """This store's part of the cohort table of each of ``segments`` on the periods ``bounds`` (see
    :class:`metrics.cohort_grid.Grid`), with the facts before ``until``: per cohort ``[customers, active at
    the end of age k (k = 0, 1, ...), net revenue in age k (micro-units)]``, ages up to the last period.
    One scan serves every segment (a customer is in the segments of its sign-up). Merges by sums."""
    edges = np.asarray(bounds, np.int64)
    n = len(edges) - 1
    if cohorts <= 0:
        return [[] for _ in segments]
    who, signed, combos = signups(index, int(edges[0]), min(int(edges[cohorts]), until))
    cohort = np.searchsorted(edges, signed, side="right") - 1
    active_cells = _cells(index, _ACTIVITY, cohort_of=(who, cohort), edges=edges, until=until, values=False)
    revenue_cells = _cells(index, _REVENUE, cohort_of=(who, cohort), edges=edges, until=until, values=True)
    out = []
    for segment in segments:
        mine = index.member(segment)[combos]
        sizes = np.bincount(cohort[mine], minlength=cohorts)
        active = np.cumsum(_sum(active_cells, mine, (cohorts, n)), axis=1)  # changes -> active at each age's end
        revenue = _sum(revenue_cells, mine, (cohorts, n))
        out.append([[int(sizes[c]), active[c, : n - c].tolist(), revenue[c, : n - c].tolist()]
                    for c in range(cohorts)])
    return out


def table(index: Scans, segment: str, bounds: Sequence[int], cohorts: int, until: int) -> list[list[Any]]:
    """:func:`tables` of one segment."""
    return tables(index, [segment], bounds, cohorts, until)[0]


@dataclass(frozen=True)
class CohortQuery:
    """A cohort table asked for: cohorts ``first`` .. ``last`` (labels of unit ``by``; ``None``: up to the
    current period) of ``segment``."""

    by: str
    first: str
    last: str | None
    segment: str = ALL
    kind: str = "customers"

    def check(self) -> None:
        """Raise :class:`PeriodError` naming the bad part (before any store is asked)."""
        if self.kind not in KINDS:
            raise PeriodError(f"cohort kind {self.kind!r} is not one of {', '.join(KINDS)}")
        if self.segment.startswith("abc:"):  # see docs/contract/kpis.md, "Cohorts"
            raise PeriodError(f"segment {self.segment!r}: cohorts are by sign-up segment (all or DIMENSION:VALUE); "
                              "an ABC class is a customer's CLV rank now, which its retention itself decides")
        grid(self.by, self.first, self.last, 0, ZoneInfo("UTC"))  # the labels and their order


def table_plan(query: CohortQuery, tz: ZoneInfo, as_of_us: int | None = None) -> Plan[tuple[Grid, list[list[Any]]]]:
    """The grid of ``query`` and the merged rows of :func:`table`; ``as_of_us`` defaults to just after the
    newest event any store holds (event time: a replay of last year shows last year's table as it ended)."""
    query.check()
    if as_of_us is None:
        found = yield from newest()
        as_of_us = 0 if found is None else found + 1
    g = grid(query.by, query.first, query.last, as_of_us, tz)
    rows = (yield [("cohorts", query.segment, list(g.bounds), g.cohorts, g.as_of_us)])[0] if g.cohorts else []
    return g, rows


def cohorts_plan(query: CohortQuery, tz: ZoneInfo, as_of_us: int | None = None) -> Plan[dict[str, Any]]:
    """The cohort table of ``query`` as JSON-able rows (see :func:`table_plan`)."""
    g, rows = yield from table_plan(query, tz, as_of_us)
    return {
        "by": query.by, "kind": query.kind, "segment": query.segment, "from": query.first, "to": query.last,
        "as_of": from_us(g.as_of_us).isoformat(),
        "cohorts": [row_of(g, c, row, query.kind) for c, row in enumerate(rows)],
    }


def row_of(g: Grid, c: int, row: list[Any], kind: str) -> dict[str, Any]:
    """Cohort ``c`` of a merged table as JSON: the shares of ``kind`` per age, with what they are made of."""
    size, active, revenue = row
    cells = []
    for k in range(len(active)):
        num, den = (active[k], size) if kind == "customers" else (revenue[k], revenue[0])
        value = ratio(num, den) if kind == "customers" or den > 0 else None  # no revenue to retain
        cells.append({"age": k, "value": value, "numerator": num if kind == "customers" else money(num),
                      "denominator": den if kind == "customers" else money(den),
                      "provisional": g.bounds[c + k + 1] > g.as_of_us})
    return {"cohort": g.labels[c], "start": from_us(g.bounds[c]).isoformat(), "customers": size,
            "provisional": g.bounds[c + 1] > g.as_of_us, "ages": cells}
