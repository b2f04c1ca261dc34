"""The route stage's compiled fast path against its Python reference (every message through msgspec):
the same packs, byte for byte and in the same order, and the same dead letters, on random fetches of
valid, borderline and broken events; and the usual event really takes the fast path."""

from __future__ import annotations

import asyncio
import json
import random
from datetime import datetime
from typing import Any

import pytest
import retention_native
from hypothesis import given, settings
from hypothesis import strategies as st
from route_reference.stage import reference_route

from core.settings import Settings
from streams.contract.events import DATA_TYPES
from streams.memory import MemoryLog, Message, Partition
from streams.producers.simulate import Simulator
from streams.route.dead_letters import DeadLetters
from streams.route.records import Recorder
from streams.route.stage import RouteStage

SETTINGS = Settings(currency_rates={"USD": 0.9123456789, "JPY": 1e9})  # JPY: amounts that overflow int64
TOPICS = SETTINGS.topics
TEXT = st.one_of(st.sampled_from(["c1", "c2", "", "x" * 256, "x" * 257, "é" * 256, "é" * 257, "a\"b", "a\\b",
                                  "tab\there", "ü-ß", "😀", "rep:9"]), st.text(max_size=12))
NUMBER = st.one_of(st.integers(-5, 12), st.floats(allow_nan=False, allow_infinity=False),
                   st.floats(0, 1e12), st.sampled_from([1e12, 1e12 + 1, -0.0, 0.1, 2.5, 1e-7, 10**20, 12.345678]))
SCALAR = st.one_of(TEXT, NUMBER, st.none(), st.booleans(), st.sampled_from(["EUR", "USD", "JPY", "XYZ", "eur"]),
                   st.sampled_from(["complaint", "request", "agent", "customer", "bogus"]))
VALUE = st.one_of(SCALAR, st.dictionaries(TEXT, TEXT, max_size=3), st.lists(SCALAR, max_size=3))
FIELDS = ["customer_id", "rep_id", "order_id", "ticket_id", "feedback_id", "amount", "currency", "kind", "category",
          "channel", "author", "score", "rating", "reason", "team", "segment", "extra"]
TIMES = st.one_of(
    st.datetimes(timezones=st.timezones()).map(lambda t: t.isoformat()),
    st.datetimes(datetime(1999, 1, 1), datetime(2100, 1, 1), timezones=st.timezones()).map(lambda t: t.isoformat()),
    st.datetimes(datetime(1999, 1, 1), datetime(2100, 1, 1)).map(lambda t: t.isoformat() + "Z"),
    st.sampled_from(["2025-01-05T10:00:00Z", "2025-01-05T10:00:00.5Z", "2025-01-05T10:00:00.1234567Z",
                     "2025-01-05t10:00:00z", "2025-01-05 10:00:00Z", "2024-02-29T23:59:59-00:00",
                     "2025-02-29T10:00:00Z", "2025-01-05T10:00:60Z", "2025-01-05T10:00:00+14:00",
                     "2025-01-05T10:00:00", "0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-01:00"]))


@st.composite
def events(draw: st.DrawFn) -> bytes:
    """A message near the contract: a real type with fields valid or not, shuffled, spaced, escaped."""
    broken = st.one_of(st.just([]), st.just([]), st.lists(st.sampled_from(FIELDS), max_size=4, unique=True))
    data = {name: draw(VALUE) for name in draw(broken)}
    typ = draw(st.sampled_from([*DATA_TYPES, "nope.type"]))
    for name, value in draw(valid_data(typ)).items():
        data.setdefault(name, value)
    envelope: dict[str, Any] = {"specversion": draw(st.sampled_from(["1.0", "1.0", "1.0", "0.3", 1.0])),
                                "id": draw(st.one_of(st.sampled_from(["e1", "e2", "ü"]), TEXT)),
                                "source": draw(st.sampled_from(["billing", "billing", ""])),
                                "type": typ, "time": draw(TIMES), "data": data}
    for name in draw(st.one_of(st.just([]), st.lists(st.sampled_from([*envelope, "extra"]), max_size=2, unique=True))):
        envelope.pop(name, None) if draw(st.booleans()) else envelope.__setitem__(name, draw(VALUE))
    items = list(envelope.items())
    random.Random(draw(st.integers(0, 99))).shuffle(items)
    spacing = draw(st.sampled_from([(",", ":"), (", ", ": ")]))
    text = json.dumps(dict(items), separators=spacing, ensure_ascii=not draw(st.integers(0, 3)))
    raw = text.encode()
    if draw(st.integers(0, 4)):
        return raw + draw(st.sampled_from([b"", b" \n"]))
    return raw[:draw(st.sampled_from([-1, 5, None]))] + draw(st.sampled_from([b"", b"x", b"\xff"]))


NEEDS = {"order.placed": ("order_id", "amount", "currency"), "order.refunded": ("order_id", "amount", "currency"),
         "order.returned": ("order_id",), "customer.updated": ("segment",), "ticket.replied": ("ticket_id", "author"),
         "survey.nps": ("score",), "survey.csat": ("score",), "feedback.received": ("feedback_id",),
         "feedback.responded": ("feedback_id",)} | {t: ("ticket_id",) for t in DATA_TYPES if t.startswith("ticket.")
                                                    and t != "ticket.replied"}


@st.composite
def valid_data(draw: st.DrawFn, typ: str) -> dict[str, Any]:
    """Fields that make ``typ``'s data valid most of the time (then ``events`` may break them)."""
    who = {"rep_id": "r1"} if typ.startswith("rep.") else {"customer_id": draw(st.sampled_from(["c1", "c2", "ö"]))}
    amount = draw(st.one_of(st.floats(0, 1e12), st.integers(0, 10**6)))
    values = {"order_id": "o1", "ticket_id": "t1", "feedback_id": "f1", "amount": amount,
              "currency": draw(st.sampled_from(["EUR", "USD", "JPY"])), "author": "agent",
              "score": draw(st.integers(0, 11)), "segment": draw(st.dictionaries(st.sampled_from(["plan", "region"]),
                                                                                   st.sampled_from(["free", "eu"])))}
    return who | {name: values[name] for name in NEEDS.get(typ, ())}


def stage(log: MemoryLog) -> RouteStage:
    return RouteStage(recorder=Recorder(SETTINGS.currency, SETTINGS.rates), producer=log, rekeyed=TOPICS.rekeyed,
                      partitions=TOPICS.partitions, dead_letters=DeadLetters(log, TOPICS.dlq, lambda reasons: None),
                      max_bytes=2048)


def as_fetch(values: list[bytes | None], headers: list[bool]) -> dict[Partition, list[Message]]:
    half = len(values) // 2
    tagged = [Message(b"k", v, 7 + i, 1_700_000_000_000 + i, [("trace", b"1")] if h else [])
              for i, (v, h) in enumerate(zip(values, headers, strict=True))]
    return {Partition(TOPICS.lifecycle, 1): tagged[:half], Partition(TOPICS.support, 0): tagged[half:]}


@settings(max_examples=300, deadline=None)
@given(st.lists(st.one_of(events(), st.none(), st.just(b"x" * 3000)), max_size=25), st.data())
def test_the_fast_path_gives_the_references_packs_and_dead_letters(values: list[bytes | None], data: st.DataObject
                                                                   ) -> None:
    batch = as_fetch(values, data.draw(st.lists(st.booleans(), min_size=len(values), max_size=len(values))))
    log = MemoryLog(TOPICS.partitions)
    routing = stage(log)
    asyncio.run(routing.handle(batch))
    packs, letters = reference_route(routing, batch)
    sent = [(p, m.value) for p in range(TOPICS.partitions) for m in log.messages(TOPICS.rekeyed, p)]
    assert sent == [(p, v) for q in range(TOPICS.partitions) for p, v in packs if p == q]
    dead = [(m.value, dict(m.headers)["reason"].decode(), m.key) for m in log.everything(TOPICS.dlq)]
    assert dead == [(value, reason, b"k") for value, reason, _ in letters]


def test_packs_are_cut_as_the_reference_cuts_them() -> None:
    big = [json.dumps({"specversion": "1.0", "id": f"e{i}", "source": "s", "type": "customer.churned",
                       "time": "2025-01-05T10:00:00Z", "data": {"customer_id": "c", "reason": "r" * 200,
                                                                "note": "n" * 1500}}).encode() for i in range(200)]
    batch = as_fetch(big, [False] * len(big))
    log = MemoryLog(TOPICS.partitions)
    routing = stage(log)
    routing.max_bytes = 1 << 20
    routing.router = retention_native.Router(SETTINGS.currency, list(SETTINGS.rates.items()), TOPICS.partitions,
                                             1 << 20)
    asyncio.run(routing.handle(batch))
    packs, _ = reference_route(routing, batch)
    assert len(packs) > 2  # 200 events of ~1.8 KB: more than one pack of 128 KiB
    assert [m.value for m in log.everything(TOPICS.rekeyed)] == [v for _, v in packs]


def test_the_simulators_events_all_take_the_fast_path() -> None:
    """Without this, a fast path that declined everything would pass the property above."""
    sim = Simulator(SETTINGS.facts, SETTINGS.topics, seed=3, scenario="steady", customers=300)
    messages = [Message(key, value, i, 0) for i, (_, key, value) in
                enumerate(sim.events(start_us=1_735_689_600_000_000, count=3000, rate=0.01))]
    router = retention_native.Router(SETTINGS.currency, list(SETTINGS.rates.items()), TOPICS.partitions, 1 << 20)
    assert router.scan(retention_native.Fetch(), messages, TOPICS.support, 0) == []


def test_a_slot_is_filled_or_dropped_once() -> None:
    fetch = retention_native.Fetch()
    router = retention_native.Router("EUR", [("EUR", 1.0)], 4, 1024)
    assert router.scan(fetch, [Message(None, None, 0, 0)], "t", 0) == [0]
    fetch.drop(0)
    for again in (lambda: fetch.drop(0), lambda: fetch.fill(0, 1, b"\x90", 0), lambda: fetch.drop(5)):
        with pytest.raises(ValueError, match="is not pending"):
            again()
    pending = retention_native.Fetch()
    router.scan(pending, [Message(None, None, 0, 0)], "t", 0)
    with pytest.raises(ValueError, match="still pending"):
        pending.packs(1024)
