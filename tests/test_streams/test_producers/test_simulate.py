"""Unit tests of the traffic generator: reproducible, contract-valid, realistic, scenario-aware."""

from __future__ import annotations

import collections

import pytest

from core.settings import Settings
from streams.contract.decode import Event, Rejection, decode
from streams.contract.events import EVENT_TYPES
from streams.producers.scenarios import SCENARIOS
from streams.producers.simulate import Simulator, rfc3339, topic_for

START_US = 1_735_689_600_000_000  # 2025-01-01T00:00:00Z
SETTINGS = Settings()
CURRENCIES = frozenset(SETTINGS.rates)
# 0.05 events/s: 20k events span ~4.6 days, so follow-ups hours or days later (refunds, reopens) occur.
RATE = 0.05


def _run(scenario: str = "steady", seed: int = 1, count: int = 20_000, rate: float = RATE,
         **kw: float) -> list[tuple[str, bytes, bytes]]:
    sim = Simulator(SETTINGS.facts, SETTINGS.topics, seed=seed, scenario=scenario, customers=500, **kw)
    return list(sim.events(START_US, count=count, rate=rate))


def _decoded(messages: list[tuple[str, bytes, bytes]]) -> list[Event]:
    out = [decode(value, CURRENCIES) for _, _, value in messages]
    bad = [r for r in out if isinstance(r, Rejection)]
    assert not bad, bad[:3]
    return [e for e in out if isinstance(e, Event)]


def test_same_seed_same_messages_other_seed_differs() -> None:
    assert _run(seed=3, count=3000) == _run(seed=3, count=3000)
    assert _run(seed=3, count=3000) != _run(seed=4, count=3000)


def test_every_message_is_valid_routed_keyed_and_in_time_order() -> None:
    messages = _run(count=20_000)
    events = _decoded(messages)
    assert len({e.id for e in events}) == len(events)
    assert [e.time_us for e in events] == sorted(e.time_us for e in events)
    for (topic, key, _), event in zip(messages, events, strict=True):
        assert topic == topic_for(SETTINGS.topics, event.type)
        owner = getattr(event.data, "customer_id", None) or getattr(event.data, "rep_id", None)
        assert key.decode() == owner


def test_all_types_appear_in_20k_events() -> None:
    counts = collections.Counter(e.type for e in _decoded(_run(count=20_000)))
    assert set(counts) == set(EVENT_TYPES)


def test_event_times_advance_at_the_requested_rate() -> None:
    events = _decoded(_run(count=5000))
    seconds = (events[-1].time_us - events[0].time_us) / 1e6
    assert 4999 / seconds == pytest.approx(RATE, rel=0.1)


_CUSTOMER_ACTS = ("order.placed", "survey.", "feedback.received", "customer.", "ticket.opened")


def _acted(event: Event) -> bool:
    """Whether the customer (not an agent or the back office) did something."""
    return event.type.startswith(_CUSTOMER_ACTS) or getattr(event.data, "author", "") == "customer"


def test_no_event_for_a_churned_customer_until_reactivated() -> None:
    churned: set[str] = set()
    for event in _decoded(_run(count=20_000)):
        cid = getattr(event.data, "customer_id", "")
        if event.type == "customer.churned":
            assert cid not in churned
            churned.add(cid)
        elif event.type == "customer.reactivated":
            churned.remove(cid)
        elif _acted(event):
            assert cid not in churned, event


def _middle_third(scenario: str, event_type: str) -> int:
    events = _decoded(_run(scenario, count=30_000))
    return sum(1 for e in events[10_000:20_000] if e.type == event_type)


def test_churn_spike_raises_churn_in_the_middle_third() -> None:
    assert _middle_third("churn-spike", "customer.churned") > 2 * _middle_third("steady", "customer.churned")


def test_complaint_surge_raises_complaints_in_the_middle_third() -> None:
    def complaints(scenario: str) -> int:
        events = _decoded(_run(scenario, count=30_000))[10_000:20_000]
        return sum(1 for e in events if e.type == "ticket.opened" and getattr(e.data, "kind", "") == "complaint")

    assert complaints("complaint-surge") > 2 * complaints("steady")


def test_nps_drop_raises_detractor_share() -> None:
    def detractor_share(scenario: str) -> float:
        scores = [
            getattr(e.data, "score", 0)
            for e in _decoded(_run(scenario, count=30_000))[10_000:20_000]
            if e.type == "survey.nps"
        ]
        return sum(1 for s in scores if s <= 6) / len(scores)

    assert detractor_share("nps-drop") > detractor_share("steady") + 0.25


_DAY_US = 86_400_000_000


def _churn_within(scenario: str, days: int) -> tuple[float, list[float]]:
    """Of the customers signing up in the first 30 days: the share churned within ``days`` of signing up,
    and those churns' delays in days (0.005 events/s: 30,000 events span about 70 days)."""
    signed, delays = {}, []
    for e in _decoded(_run(scenario, count=30_000, rate=0.005)):
        cid = getattr(e.data, "customer_id", "")
        if e.type == "customer.signed_up" and e.time_us < START_US + 30 * _DAY_US:
            signed[cid] = e.time_us
        elif e.type == "customer.churned" and cid in signed and e.time_us - signed[cid] < days * _DAY_US:
            delays.append((e.time_us - signed.pop(cid)) / _DAY_US)
    return len(delays) / (len(signed) + len(delays)), sorted(delays)


def test_cohort_decay_churns_young_customers_within_about_a_month() -> None:
    decayed, delays = _churn_within("cohort-decay", 40)
    steady, _ = _churn_within("steady", 40)
    assert decayed > steady + 0.3, (decayed, steady)
    assert 6 < delays[len(delays) // 2] < 20  # a median of 12 days, and the background churn of any age


def test_lifecycle_follow_ups_keep_their_pace_when_the_rest_speeds_up() -> None:
    sim = Simulator(SETTINGS.facts, SETTINGS.topics, seed=5, scenario="cohort-decay", customers=200)
    now = START_US + 3_000_000_000
    for second in range(3000):  # the demo's history, briefly: the scenario on, one event a second
        sim.emit(START_US + second * 1_000_000, 0.5)
    before = {(f.type, f.seq): f.due_us - now for f in sim.pending}
    assert any(kind == "customer.churned" for kind, _ in before)
    sim.speed_up(now, 1000.0)  # as go_live does: replies and refunds come sooner, young customers' churn not
    for f in sim.pending:
        expected = before[f.type, f.seq] if f.type == "customer.churned" else before[f.type, f.seq] / 1000
        assert f.due_us - now == pytest.approx(expected, abs=1), f


def test_invalid_ratio_mixes_in_messages_that_decode_rejects() -> None:
    messages = _run(count=4000, invalid_ratio=0.1)
    rejected = collections.Counter(
        r.reason for r in (decode(v, CURRENCIES) for _, _, v in messages) if isinstance(r, Rejection)
    )
    assert 250 < sum(rejected.values()) < 550
    assert {"not_json", "unknown_type", "missing_field", "bad_time", "bad_value", "bad_currency"} <= set(rejected)


def test_scenarios_registry_and_argument_checks() -> None:
    assert {"steady", "churn-spike", "nps-drop", "complaint-surge", "cohort-decay"} <= set(SCENARIOS)
    with pytest.raises(ValueError, match="unknown scenario"):
        Simulator(SETTINGS.facts, SETTINGS.topics, seed=1, scenario="meteor", customers=10)
    with pytest.raises(ValueError, match="rate"):
        next(Simulator(SETTINGS.facts, SETTINGS.topics, seed=1).events(START_US, count=1, rate=0))


def test_end_us_bounds_the_run_and_rfc3339_uses_z() -> None:
    end = START_US + 3_600_000_000
    events = _decoded(list(Simulator(SETTINGS.facts, SETTINGS.topics, seed=2).events(START_US, end_us=end, rate=1.0)))
    assert 3000 < len(events) < 4200
    assert all(e.time_us < end for e in events)
    assert rfc3339(START_US + 1500) == "2025-01-01T00:00:00.001Z"
