"""A real public data set through Kafka: the CDNOW purchases (1997-1998) replayed into a real worker.

Every CDNOW row becomes one ``order.placed`` (several rows of a customer on one day are separate orders at
the same instant); every customer signs up at 00:00 of its first purchase day. The worker's KPIs are then
checked, period by period, against an independent pandas computation from the raw rows (docs/contract/kpis.md).
"""

from __future__ import annotations

import time
from typing import Any

import pandas as pd
import pytest
from datasets import CdnowRow, cdnow_rows
from fixtures import encode, event, isolated_env, poll, produce, running_worker
from prometheus_client.parser import text_string_to_metric_families

pytestmark = pytest.mark.integration

FULL = "1997-01-01T00:00:00Z/1999-01-01T00:00:00Z"
UTC = "UTC"


def ts(text: str) -> pd.Timestamp:
    return pd.Timestamp(text, tz=UTC)


# label -> [start, end), computed here, not by the monitor
PERIODS: dict[str, tuple[pd.Timestamp, pd.Timestamp]] = {
    **{
        f"{y}-Q{q}": (ts(f"{y}-{3 * q - 2:02d}-01"), ts(f"{y + (q == 4)}-{(3 * q) % 12 + 1:02d}-01"))
        for y in (1997, 1998)
        for q in (1, 2, 3, 4)
    },
    "1997": (ts("1997-01-01"), ts("1998-01-01")),
    "1998-06": (ts("1998-06-01"), ts("1998-07-01")),
    FULL: (ts("1997-01-01"), ts("1999-01-01")),
}
ABC_THRESHOLDS = (0.8, 0.95)


def customer_id(row: CdnowRow) -> str:
    return f"cdnow-{row.customer_id}"


def cdnow_events(rows: list[CdnowRow]) -> list[dict[str, Any]]:
    """Sign-ups (first purchase day, 00:00Z) and orders (purchase day, 12:00Z), in event-time order."""
    first_day: dict[str, Any] = {}
    for row in rows:
        cid = customer_id(row)
        first_day[cid] = min(first_day.get(cid, row.day), row.day)
    signups = [
        event("customer.signed_up", f"{day.isoformat()}T00:00:00Z", {"customer_id": cid}, id_=f"cdnow-signup-{cid}",
              source="cdnow")
        for cid, day in first_day.items()
    ]
    orders = [
        event(
            "order.placed",
            f"{row.day.isoformat()}T12:00:00Z",
            {"customer_id": customer_id(row), "order_id": f"{row.customer_id}-{row.day:%Y%m%d}-{row.line}",
             "amount": row.amount, "currency": "USD"},
            id_=f"cdnow-order-{row.line}",
            source="cdnow",
        )
        for row in rows
    ]
    return sorted(signups + orders, key=lambda e: e["time"])  # stable: a sign-up precedes its day's orders


# -- the independent computation ---------------------------------------------------------------------


def frames(rows: list[CdnowRow]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Orders (customer, time, amount, micro) and sign-ups (customer, time) from the raw rows."""
    orders = pd.DataFrame(
        {"customer": [customer_id(r) for r in rows], "day": [r.day for r in rows], "amount": [r.amount for r in rows]}
    )
    orders["time"] = pd.to_datetime(orders["day"]).dt.tz_localize(UTC) + pd.Timedelta(hours=12)
    orders["micro"] = (orders["amount"] * 1_000_000).round().astype("int64")
    signups = orders.groupby("customer", as_index=False)["day"].min()
    signups["time"] = pd.to_datetime(signups["day"]).dt.tz_localize(UTC)
    return orders, signups


def ratio(numerator: float, denominator: float) -> float | None:
    return None if denominator == 0 else numerator / denominator


def abc_expected(orders: pd.DataFrame, signups: pd.DataFrame, end: pd.Timestamp) -> dict[str, Any]:
    """ABC classes as of ``end``: customers signed up or ordering before it, ranked by CLV desc, then key."""
    before = orders[orders["time"] < end]
    known = pd.Index(signups.loc[signups["time"] < end, "customer"]).union(pd.Index(before["customer"].unique()))
    clv = before.groupby("customer")["micro"].sum().reindex(known, fill_value=0).rename("clv").reset_index()
    clv.columns = ["customer", "clv"]
    ranked = clv[clv["clv"] > 0].sort_values(["clv", "customer"], ascending=[False, True])
    total = int(ranked["clv"].sum())
    cumulative_before = ranked["clv"].cumsum() - ranked["clv"]
    a_limit, b_limit = ABC_THRESHOLDS[0] * total, ABC_THRESHOLDS[1] * total
    cls = pd.Series("C", index=ranked.index)
    cls[cumulative_before < b_limit] = "B"
    cls[cumulative_before < a_limit] = "A"
    counts = {c: int((cls == c).sum()) for c in "ABC"}
    counts["C"] += int((clv["clv"] <= 0).sum())
    value = {c: int(ranked.loc[cls == c, "clv"].sum()) for c in "ABC"}
    return {
        "customers": counts,
        "total_clv": total / 1e6,
        "clv_share": {c: ratio(value[c], total) for c in "ABC"},
    }


def expected_for(orders: pd.DataFrame, signups: pd.DataFrame, start: pd.Timestamp, end: pd.Timestamp) -> dict[str, Any]:
    """Every compared value for ``[start, end)``, as ``{"inputs.X" | "kpis.X" | "abc.X": value}``."""
    inside = orders[(orders["time"] >= start) & (orders["time"] < end)]
    to_date = orders[orders["time"] < end]
    per_customer = inside["customer"].value_counts()
    per_customer_to_date = to_date["customer"].value_counts()
    ordering, ordering_2plus = len(per_customer), int((per_customer >= 2).sum())
    ordered, ordered_2plus = len(per_customer_to_date), int((per_customer_to_date >= 2).sum())
    net_to_date = float(to_date["amount"].sum())
    # no churn in CDNOW: every signed-up customer stays active
    b = int((signups["time"] < start).sum())
    e = int((signups["time"] < end).sum())
    n = int(((signups["time"] >= start) & (signups["time"] < end)).sum())
    out: dict[str, Any] = {
        "inputs.orders": len(inside),
        "inputs.order_amount": float(inside["amount"].sum()),
        "inputs.customers_ordering": ordering,
        "inputs.customers_ordering_2plus": ordering_2plus,
        "inputs.customers_ordered_to_date": ordered,
        "inputs.customers_ordered_2plus_to_date": ordered_2plus,
        "inputs.net_revenue_to_date": net_to_date,
        "inputs.N": n,
        "inputs.B": b,
        "inputs.E": e,
        "inputs.L": 0,
        "inputs.R": 0,
        "kpis.net_revenue": float(inside["amount"].sum()),
        "kpis.repeat_purchase_rate": ratio(ordering_2plus, ordering),
        "kpis.repeat_purchase_rate_lifetime": ratio(ordered_2plus, ordered),
        "kpis.clv_historical_mean": ratio(net_to_date, ordered),
        "kpis.retention_rate": ratio(e - n, b),
        "kpis.churn_rate": ratio(0, b),
    }
    abc = abc_expected(orders, signups, end)
    out["abc.customers"] = abc["customers"]
    out["abc.total_clv"] = abc["total_clv"]
    for c, share in abc["clv_share"].items():
        out[f"abc.clv_share.{c}"] = share
    return out


def actual_value(answer: dict[str, Any], name: str) -> Any:
    value: Any = answer
    for part in name.split("."):
        value = value[part]
    return value


def same(actual: Any, expected: Any) -> bool:
    if isinstance(expected, float) and actual is not None:
        return bool(actual == pytest.approx(expected, rel=1e-9, abs=1e-9))
    return bool(actual == expected)


def metric_total(text: str, name: str, labels: dict[str, str] | None = None) -> float:
    """Sum of the samples ``name`` (optionally with exactly ``labels``) in a Prometheus text exposition."""
    return sum(
        s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name == name and (labels is None or s.labels == labels)
    )


# -- the test ------------------------------------------------------------------------------------------


def test_cdnow_purchases_replayed_through_kafka_match_pandas(stack: str) -> None:
    started = time.monotonic()
    rows = cdnow_rows()
    assert len(rows) == 6919  # the documented size of the CDNOW 1/10 sample
    events = cdnow_events(rows)
    orders, signups = frames(rows)
    assert len(signups) == 2357
    assert len(events) == len(rows) + len(signups)

    env = isolated_env(RETENTION_CURRENCY="USD", RETENTION_CURRENCY_RATES="{}", RETENTION_CLOCK="event")
    topic = env["RETENTION_TOPIC_LIFECYCLE"]
    with running_worker(env) as worker:
        ready = time.monotonic()
        produce(stack, [(topic, e["data"]["customer_id"].encode(), encode(e)) for e in events])
        produced = time.monotonic()

        def applied() -> bool:
            inputs = worker.kpis(FULL)["inputs"]
            if (inputs["orders"], inputs["N"]) == (len(rows), len(signups)):
                return True
            text = worker.fresh_metrics()
            rejected = metric_total(text, "retention_events_rejected_total")
            ignored = metric_total(text, "retention_events_ignored_total")
            assert rejected == 0, f"{rejected} CDNOW events went to the dead-letter topic (log {worker.log})"
            assert ignored == 0, f"{ignored} CDNOW events were ignored (log {worker.log})"
            return False

        poll(applied, 120, f"the worker to apply {len(rows)} orders and {len(signups)} sign-ups", interval=1.0)
        caught_up = time.monotonic()

        text = worker.fresh_metrics()
        assert metric_total(text, "retention_events_total", {"type": "order.placed"}) == len(rows)
        assert metric_total(text, "retention_events_total", {"type": "customer.signed_up"}) == len(signups)
        assert metric_total(text, "retention_events_rejected_total") == 0
        assert metric_total(text, "retention_events_duplicate_total") == 0

        answers = {label: worker.kpis(label) for label in PERIODS}

    mismatches = []
    compared = 0
    for label, (start, end) in PERIODS.items():
        answer = answers[label]
        bounds = (pd.Timestamp(answer["period"]["start"]), pd.Timestamp(answer["period"]["end"]))
        assert bounds == (start, end), label
        for name, want in expected_for(orders, signups, start, end).items():
            got = actual_value(answer, name)
            compared += 1
            if not same(got, want):
                mismatches.append(f"{label} {name}: monitor {got!r}, pandas {want!r}")
    elapsed = time.monotonic() - started
    print(
        f"\nCDNOW: {len(events)} events; worker start {ready - started:.1f}s, produce {produced - ready:.1f}s, "
        f"applied after {caught_up - produced:.1f}s; {compared} values in {len(PERIODS)} periods; "
        f"total {elapsed:.1f}s"
    )
    assert not mismatches, "monitor and pandas disagree:\n" + "\n".join(mismatches)
    # the data set really exercises the KPIs: repeat buyers, several ABC classes, empty periods
    full = answers[FULL]
    assert full["kpis"]["repeat_purchase_rate"] > 0.3
    assert all(full["abc"]["customers"][c] > 0 for c in "ABC")
    assert answers["1998-Q3"]["kpis"]["repeat_purchase_rate"] is None
