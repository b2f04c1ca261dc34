"""The compiled apply step against its Python reference: byte-identical states, changelog entries,
outcomes and KPI answers on random mixed streams (ids repeat, times jump back and forth, segments
move, tickets and feedback refer to each other, the history horizon folds old records)."""

from __future__ import annotations

from typing import Any

from apply_reference.processor import ReferenceProcessor
from fixtures import PurePipeline
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from mixed import mixed_events, snapshot

from core.settings import Settings
from metrics.records import CustomerState, Rec, T, decode_state, encode_state
from streams.apply.processor import Processor, Update, change_entry

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
