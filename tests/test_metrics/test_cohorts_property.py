"""Cohort tables against a plain per-customer replay of the events, and unchanged by arrival order,
duplicates and the number of workers; the compiled customer lookup they use against a binary search
(hypothesis)."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
import retention_native
from fixtures import event
from hypothesis import given, settings
from hypothesis import strategies as st
from pure_pipeline import PurePipeline

from core.periods import to_us
from metrics.cohort_grid import Grid, grid
from metrics.cohorts import CohortQuery, cohorts_plan
from metrics.planning import run

UTC = ZoneInfo("UTC")
CUSTOMERS = [f"k{i}" for i in range(6)]
DAYS = [f"2024-12-{d:02d}" for d in (1, 31)] + [f"2025-{m:02d}-{d:02d}" for m in (1, 2, 3, 4) for d in (1, 14, 28)]
ALLOWED_PLANS = ("free", "basic", "pro", "enterprise")  # Settings().segments["plan"]
AS_OF = ["2025-01-20T00:00:00Z", "2025-03-01T00:00:00Z", "2025-04-14T12:00:00Z", "2025-06-01T00:00:00Z"]
SEGMENTS = ("all", "plan:pro", "plan:other")


@st.composite
def lifecycle_event(draw: st.DrawFn, i: int) -> dict[str, Any]:
    cid = draw(st.sampled_from(CUSTOMERS))
    # distinct instants: the replay below need not know how the monitor orders simultaneous events
    time = f"{draw(st.sampled_from(DAYS))}T{draw(st.integers(0, 23)):02d}:{i // 60:02d}:{i % 60:02d}Z"
    kind = draw(st.sampled_from(["customer.signed_up", "customer.updated", "customer.churned",
                                 "customer.reactivated", "order.placed", "order.refunded"]))
    data: dict[str, Any] = {"customer_id": cid}
    if kind in ("customer.signed_up", "customer.updated"):
        data["segment"] = {"plan": draw(st.sampled_from(["free", "pro", "weird"]))}
    elif kind.startswith("order."):
        data |= {"order_id": f"o{i}", "amount": draw(st.sampled_from([0, 9.5, 20, 100.25])), "currency": "EUR"}
    return event(kind, time, data, id_=f"e{i}")


@st.composite
def lifecycle_events(draw: st.DrawFn) -> list[dict[str, Any]]:
    return [draw(lifecycle_event(i)) for i in range(draw(st.integers(0, 40)))]


def us(text: str) -> int:
    return to_us(datetime.fromisoformat(text))


def replay(events: list[dict[str, Any]], g: Grid, segment: str) -> list[list[Any]]:
    """The table by hand: each customer's events in time order, the lifecycle rules of docs/contract/kpis.md."""
    by_customer: dict[str, list[dict[str, Any]]] = {}
    for e in {e["id"]: e for e in events}.values():
        by_customer.setdefault(e["data"]["customer_id"], []).append(e)
    n = g.periods
    rows = [[0, [0] * (n - c), [0] * (n - c)] for c in range(g.cohorts)]
    for history in by_customer.values():
        history.sort(key=lambda e: e["time"])
        signed, keys, raw, changes, money = None, (), {}, [], []
        for e in history:
            t, kind = us(e["time"]), e["type"]
            raw |= e["data"].get("segment", {})
            if kind == "customer.signed_up" and signed is None:
                plan = raw.get("plan")
                signed, keys = t, ("all", f"plan:{plan if plan in ALLOWED_PLANS else 'other'}")
                changes.append((t, True))
            elif kind == "customer.churned" and changes and changes[-1][1]:
                changes.append((t, False))
            elif kind == "customer.reactivated" and changes and not changes[-1][1]:
                changes.append((t, True))
            elif kind.startswith("order."):
                amount = round(e["data"]["amount"] * 1_000_000)
                money.append((t, amount if kind == "order.placed" else -amount))
        if signed is None or segment not in keys or not g.bounds[0] <= signed < min(g.bounds[g.cohorts], g.as_of_us):
            continue
        c = next(i for i in range(n) if signed < g.bounds[i + 1])
        row = rows[c]
        row[0] += 1
        for k in range(n - c):
            end = min(g.bounds[c + k + 1], g.as_of_us)
            states = [active for t, active in changes if t < end]
            row[1][k] += bool(states and states[-1])
        for t, amount in money:
            if g.bounds[c] <= t < g.as_of_us:
                row[2][next(i for i in range(n) if t < g.bounds[i + 1]) - c] += amount
    return rows


@settings(max_examples=80, deadline=None)
@given(lifecycle_events(), st.sampled_from(AS_OF))
def test_the_table_is_that_of_a_per_customer_replay(events: list[dict[str, Any]], as_of: str) -> None:
    p = PurePipeline().send(*events)
    g = grid("month", "2024-12", "2025-03", us(as_of), UTC)
    for segment in SEGMENTS:
        got = p.ask([("cohorts", segment, list(g.bounds), g.cohorts, g.as_of_us)])[0]
        assert got == replay(events, g, segment), segment


def tables(p: PurePipeline) -> list[Any]:
    return [run(cohorts_plan(CohortQuery(by, first, "2025-04" if by == "month" else last, segment, kind), UTC), p.ask)
            for by, first, last in (("month", "2024-12", ""), ("week", "2025-W01", "2025-W10"))
            for segment in SEGMENTS for kind in ("customers", "revenue")]


@settings(max_examples=60, deadline=None)
@given(lifecycle_events(), st.randoms(use_true_random=False), st.data())
def test_order_duplicates_and_workers_never_change_a_table(
    events: list[dict[str, Any]], rnd: Any, data: st.DataObject
) -> None:
    expected = tables(PurePipeline().send(*events))
    dups = data.draw(st.lists(st.sampled_from(events), max_size=8)) if events else []
    mixed = [*events, *dups]
    rnd.shuffle(mixed)
    assert tables(PurePipeline().send(*mixed)) == expected
    assert tables(PurePipeline(workers=3).send(*mixed)) == expected


@settings(max_examples=40, deadline=None)
@given(lifecycle_events())
def test_tables_computed_on_another_thread_are_the_same(events: list[dict[str, Any]]) -> None:
    # A worker computes cohort tables from copies of the facts on a thread of its own.
    assert tables(PurePipeline(deferred=True, workers=2).send(*events)) == tables(PurePipeline().send(*events))


def searched(keys: list[int], needles: list[int]) -> list[int]:
    """The lookup the compiled one replaced: a binary search in the sorted keys, -1 where absent."""
    order = np.argsort(keys)
    ranked = np.asarray(keys, np.int64)[order]
    at = np.minimum(np.searchsorted(ranked, needles), max(len(keys) - 1, 0))
    return [int(order[a]) if len(keys) and ranked[a] == n else -1 for a, n in zip(at, needles, strict=True)]


INT64 = st.integers(-(2**63), 2**63 - 1)


@given(st.lists(INT64, unique=True, max_size=300), st.lists(INT64, max_size=300), st.data())
@settings(max_examples=300, deadline=None)
def test_compiled_customer_lookup_finds_what_a_binary_search_finds(keys: list[int], others: list[int],
                                                                    data: st.DataObject) -> None:
    needles = others + data.draw(st.lists(st.sampled_from(keys), max_size=300)) if keys else others
    found = np.frombuffer(retention_native.positions(np.asarray(keys, np.int64), np.asarray(needles, np.int64)),
                          np.int64)
    assert found.tolist() == searched(keys, needles)
