"""The engine on the worked examples of KPIS.md, and its order/duplicate invariance (no services)."""

from __future__ import annotations

from fractions import Fraction
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from fixtures import encode, event, seed_example
from hypothesis import given, settings
from hypothesis import strategies as st

from metrics.periods import parse_period
from streams.config import Settings
from streams.decode import Event, decode
from streams.engine import Engine

UTC = ZoneInfo("UTC")
SETTINGS = Settings(allowed_lateness="3650d")


def run(events: list[dict[str, Any]], settings: Settings = SETTINGS, partitions: int = 1) -> Engine:
    engine = Engine(settings)
    engine.assign(set(range(partitions)))
    currencies = frozenset(["EUR"])
    for ev in events:
        decoded = decode(encode(ev), currencies)
        assert isinstance(decoded, Event), decoded
        key = decoded.data.customer_id.encode()  # type: ignore[union-attr]
        engine.apply(hash(key) % partitions, key, decoded)
    return engine


@pytest.mark.parametrize(
    ("start", "new", "lost", "retention", "churn"),
    [(20, 5, 1, Fraction(19, 20), Fraction(1, 20)), (44, 12, 13, Fraction(31, 44), Fraction(13, 44))],
)
def test_seed_000_worked_examples(start: int, new: int, lost: int, retention: Fraction, churn: Fraction) -> None:
    engine = run(seed_example(start, new, lost))
    answer = engine.kpis(parse_period("2025-Q1", UTC), "all")
    inputs = answer["inputs"]
    assert (inputs["B"], inputs["N"], inputs["L"]) == (start, new, lost)
    assert inputs["E"] == start + new - lost
    assert answer["kpis"]["retention_rate"] == float(retention)
    assert answer["kpis"]["churn_rate"] == float(churn)
    assert answer["kpis"]["lost_by_reason"] == {"price": lost}


def test_undefined_when_no_customers_at_start() -> None:
    engine = run(seed_example(0, 3, 0))
    kpis = engine.kpis(parse_period("2025-Q1", UTC), "all")["kpis"]
    assert kpis["retention_rate"] is None
    assert kpis["churn_rate"] is None


def test_segment_move_is_not_churn() -> None:
    events = [
        event("customer.signed_up", "2024-12-01T00:00:00Z", {"customer_id": "a", "segment": {"plan": "basic"}}),
        event("customer.signed_up", "2024-12-01T00:00:00Z", {"customer_id": "b", "segment": {"plan": "basic"}}),
        event("customer.updated", "2025-02-01T00:00:00Z", {"customer_id": "a", "segment": {"plan": "pro"}}),
    ]
    engine = run(events)
    period = parse_period("2025-Q1", UTC)
    basic = engine.kpis(period, "plan:basic")
    pro = engine.kpis(period, "plan:pro")
    everyone = engine.kpis(period, "all")
    assert (basic["inputs"]["L"], basic["inputs"]["moved_out"]) == (0, 1)
    assert basic["kpis"]["retention_rate"] == 0.5
    assert (pro["inputs"]["B"], pro["inputs"]["E"], pro["inputs"]["moved_in"]) == (0, 1, 1)
    assert everyone["kpis"]["retention_rate"] == 1.0


def test_winback_counts_the_lost_pool() -> None:
    events = [
        event("customer.signed_up", "2024-11-01T00:00:00Z", {"customer_id": "a"}),
        event("customer.signed_up", "2024-11-01T00:00:00Z", {"customer_id": "b"}),
        event("customer.churned", "2024-12-01T00:00:00Z", {"customer_id": "a", "reason": "service"}),
        event("customer.churned", "2025-01-10T00:00:00Z", {"customer_id": "b", "reason": "mars"}),
        event("customer.reactivated", "2025-02-10T00:00:00Z", {"customer_id": "a"}),
    ]
    answer = run(events).kpis(parse_period("2025-Q1", UTC), "all")
    assert answer["inputs"]["lost_at_start"] == 1
    assert answer["kpis"]["winback_rate"] == 0.5
    assert answer["kpis"]["lost_by_reason"] == {"other": 1}


def test_semantically_odd_events_change_nothing() -> None:
    base = seed_example(3, 0, 0)
    odd = [
        event("customer.churned", "2025-01-05T00:00:00Z", {"customer_id": "ghost"}),
        event("customer.reactivated", "2025-01-05T00:00:00Z", {"customer_id": "c0"}),
        event("customer.signed_up", "2025-01-06T00:00:00Z", {"customer_id": "c1"}),
    ]
    period = parse_period("2025-Q1", UTC)
    assert run(base).kpis(period, "all") == run(base + odd).kpis(period, "all")


# -- properties ----------------------------------------------------------------------------------

CUSTOMERS = [f"k{i}" for i in range(6)]
TYPES = ["customer.signed_up", "customer.churned", "customer.reactivated", "customer.updated"]


@st.composite
def lifecycle_events(draw: st.DrawFn) -> list[dict[str, Any]]:
    n = draw(st.integers(min_value=0, max_value=40))
    out = []
    for i in range(n):
        type_ = draw(st.sampled_from(TYPES))
        cid = draw(st.sampled_from(CUSTOMERS))
        day = draw(st.integers(min_value=1, max_value=27))
        month = draw(st.integers(min_value=11, max_value=15))
        year, month = (2024, month) if month <= 12 else (2025, month - 12)
        data: dict[str, Any] = {"customer_id": cid}
        if type_ in ("customer.signed_up", "customer.updated"):
            data["segment"] = {"plan": draw(st.sampled_from(["free", "pro", "weird"]))}
        if type_ == "customer.churned":
            data["reason"] = draw(st.sampled_from(["price", "service", "x"]))
        out.append(event(type_, f"{year}-{month:02d}-{day:02d}T12:00:00Z", data, id_=f"e{i}"))
    return out


PERIODS = ["2025-Q1", "2025-01", "2024-12", "2025-W03", "2024-12-20T00:00:00Z/2025-01-20T12:00:00Z"]


def snapshot(engine: Engine) -> list[Any]:
    out = []
    for p in PERIODS:
        for s in ("all", "plan:pro", "plan:other"):
            answer = engine.kpis(parse_period(p, UTC), s)
            out.append((answer["kpis"], answer["inputs"]))
    return out


@settings(max_examples=150, deadline=None)
@given(lifecycle_events(), st.randoms(use_true_random=False), st.data())
def test_order_and_duplicates_never_change_a_kpi(events: list[dict[str, Any]], rnd: Any, data: st.DataObject) -> None:
    expected = snapshot(run(events))
    shuffled = list(events)
    rnd.shuffle(shuffled)
    dups = data.draw(st.lists(st.sampled_from(events), max_size=10)) if events else []
    mixed = shuffled + dups
    rnd.shuffle(mixed)
    assert snapshot(run(mixed)) == expected
    assert snapshot(run(mixed, partitions=3)) == expected


@settings(max_examples=150, deadline=None)
@given(lifecycle_events())
def test_identity_e_equals_b_plus_n_plus_r_minus_l(events: list[dict[str, Any]]) -> None:
    engine = run(events)
    for p in PERIODS:
        for segment in ("all", "plan:pro", "plan:free", "plan:other"):
            i = engine.kpis(parse_period(p, UTC), segment)["inputs"]
            assert i["E"] == i["B"] + i["N"] + i["R"] - i["L"] + i["moved_in"] - i["moved_out"]
            if segment == "all":
                assert i["moved_in"] == i["moved_out"] == 0
            assert min(i["B"], i["lost_at_start"]) >= 0


def test_lateness_is_measured_from_the_customers_newest_event() -> None:
    engine = Engine(Settings(allowed_lateness="7d"))
    engine.assign({0})
    currencies = frozenset(["EUR"])

    def apply(ev: dict[str, Any]) -> str:
        decoded = decode(encode(ev), currencies)
        assert isinstance(decoded, Event)
        return engine.apply(0, decoded.data.customer_id.encode(), decoded).status  # type: ignore[union-attr]

    assert apply(event("customer.signed_up", "2025-03-01T00:00:00Z", {"customer_id": "a"}, id_="1")) == "applied"
    # another customer's history is not late: lateness is per customer
    assert apply(event("customer.signed_up", "2024-01-01T00:00:00Z", {"customer_id": "b"}, id_="2")) == "applied"
    upd = {"customer_id": "a", "segment": {"plan": "pro"}}
    assert apply(event("customer.updated", "2025-02-22T00:00:00Z", upd, id_="3")) == "applied"
    assert apply(event("customer.updated", "2025-02-21T23:59:59Z", upd, id_="4")) == "too_late"
    assert apply(event("customer.updated", "2025-02-22T00:00:00Z", upd, id_="3")) == "duplicate"
