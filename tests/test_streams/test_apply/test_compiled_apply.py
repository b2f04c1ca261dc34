"""The compiled apply step against its Python reference: byte-identical states, changelog entries,
outcomes and KPI answers on random mixed streams (ids repeat, times jump back and forth, segments
move, tickets and feedback refer to each other, the history horizon folds old records), and a
partition's packs applied in one call as the Python stage applied them event by event."""

from __future__ import annotations

from typing import Any

from apply_reference.processor import ReferenceProcessor
from apply_reference.stage import apply_packs as apply_packs_reference
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from mixed import mixed_events, snapshot
from pure_pipeline import PurePipeline

from core.settings import Settings
from metrics.records import CustomerState, Rec, T, decode_state, encode_state
from streams.apply.processor import Applied, Processor, Update, change_entry
from streams.wire import Routed, encode_batch

DAY = 86_400_000_000
SETTINGS = Settings(allowed_lateness="2d", history="20d")
COMPILED, REFERENCE = Processor(SETTINGS.facts), ReferenceProcessor(SETTINGS.facts)
DIMENSIONS = dict(SETTINGS.facts.segments)
TEXTS = [None, "", "agent", "customer", "complaint:billing", "complaint:", "complaint:zzz", "request:x", "price",
         "other-reason", "nocolon", "ü:ß", *SETTINGS.facts.churn_reasons]
SEGMENT_VALUES = ["pro", "basic", "eu", "us", "x", *[v for values in DIMENSIONS.values() for v in values]]

records = st.builds(
    Rec,
    time_us=st.integers(0, 60).map(lambda half_days: 1_700_000_000_000_000 + half_days * DAY // 2),
    type=st.sampled_from(list(T)),
    id=st.sampled_from([f"e{i}" for i in range(40)]),
    ref=st.sampled_from([None, "", "a", "b", "c", "~folded-orders@1"]),
    text=st.sampled_from(TEXTS),
    value=st.one_of(st.none(), st.integers(-5, 20), st.integers(0, 10**12)),
    segment=st.one_of(st.none(), st.dictionaries(st.sampled_from([*DIMENSIONS, "bogus"]),
                                                 st.sampled_from(SEGMENT_VALUES), max_size=3)),
)
batches = st.lists(st.lists(records, min_size=1, max_size=8), min_size=1, max_size=8)


def _run(processor: Any, batches: list[list[Rec]], legacy: bool) -> list[object]:
    """Everything the apply step hands on, batch by batch: outcomes, newest time, state, entry."""
    out: list[object] = []
    stored: bytes | None = None
    for i, batch in enumerate(batches):
        if legacy and i == 1 and stored is not None:  # a state stored before states carried their facts
            old = decode_state(stored)
            stored = encode_state(CustomerState(records=old.records, newest_us=old.newest_us))
        update: Update = processor.apply_records(stored, batch)
        out += [[(o.status, o.detail) for o in update.outcomes], update.newest_us]
        if update.state is not None:
            out += [update.state, change_entry(update, 7)]
            stored = update.state
    return out


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(batches, st.booleans())
def test_same_bytes_as_the_reference(batches: list[list[Rec]], legacy: bool) -> None:
    assert _run(COMPILED, batches, legacy) == _run(REFERENCE, batches, legacy)


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mixed_events())
def test_same_kpi_answers_as_the_reference(events: list[dict[str, Any]]) -> None:
    compiled = PurePipeline().send_batch(*events)
    reference = PurePipeline(processor=ReferenceProcessor).send_batch(*events)
    assert snapshot(compiled) == snapshot(reference)


routed = st.builds(
    Routed, key=st.sampled_from([b"k1", b"k2", b"k3", b"rep:r"]), rec=records, raw=st.binary(max_size=4),
    topic=st.sampled_from(["customers", "orders"]), partition=st.integers(0, 3), offset=st.integers(0, 10**6),
    timestamp_ms=st.one_of(st.just(0), st.integers(1_700_000_000_000, 1_700_000_100_000)))
packs = st.lists(st.lists(routed, max_size=6), min_size=1, max_size=4)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(packs, min_size=1, max_size=3))
def test_packs_applied_in_one_call_as_the_reference_does(fetches: list[list[list[Routed]]]) -> None:
    """Several fetches of one partition: the same entries, states, counts, event times, too-late events
    and oldest timestamps (states carry over from one fetch to the next)."""
    states: dict[str, dict[bytes, bytes]] = {"compiled": {}, "reference": {}}

    def run(name: str, fetch: list[list[Routed]]) -> Applied:
        table = states[name]
        values = [encode_batch(pack) for pack in fetch]
        applied = (COMPILED.apply_packs(values, lambda keys: [table.get(k) for k in keys]) if name == "compiled"
                   else apply_packs_reference(COMPILED, values, lambda keys: [table.get(k) for k in keys]))
        table.update((key, state) for key, state, _ in applied.changes)
        return applied

    for fetch in fetches:
        assert run("compiled", fetch) == run("reference", fetch)
