"""The route stage's real code over the in-memory log: valid events packed by customer partition,
everything else dead-lettered with its reason and origin, and the fetch handled only once all is sent."""

from __future__ import annotations

import asyncio

import pytest
from fixtures import encode, event

from core.settings import Settings
from streams.memory import LogUnavailable, MemoryLog, Message, Partition
from streams.route.dead_letters import DeadLetters
from streams.route.records import Recorder
from streams.route.stage import RouteStage
from streams.wire import decode_batch, partition_of

SETTINGS = Settings(currency_rates={"USD": 1e9})  # 1e12 USD then overflows the stored micro-units
TOPICS = SETTINGS.topics


def stage(log: MemoryLog, counted: dict[str, int]) -> RouteStage:
    def count(reasons: dict[str, int]) -> None:
        for reason, n in reasons.items():
            counted[reason] = counted.get(reason, 0) + n

    return RouteStage(recorder=Recorder(SETTINGS.currency, SETTINGS.rates), producer=log, rekeyed=TOPICS.rekeyed,
                      partitions=TOPICS.partitions, dead_letters=DeadLetters(log, TOPICS.dlq, count),
                      max_bytes=4096)


def fetch(*values: bytes) -> dict[Partition, list[Message]]:
    messages = [Message(b"k", v, 100 + i, 1_700_000_000_000) for i, v in enumerate(values)]
    return {Partition(TOPICS.lifecycle, 3): messages}


def signup(customer: str) -> bytes:
    return encode(event("customer.signed_up", "2025-01-05T10:00:00Z", {"customer_id": customer}))


def test_valid_events_are_packed_by_their_customers_partition() -> None:
    log, counted = MemoryLog(TOPICS.partitions), {}
    customers = [f"c{i}" for i in range(20)]
    asyncio.run(stage(log, counted).handle(fetch(*(signup(c) for c in customers))))
    routed = {p: [r for m in log.messages(TOPICS.rekeyed, p) for r in decode_batch(m.value or b"")]
              for p in range(TOPICS.partitions)}
    assert sorted(r.key.decode() for rs in routed.values() for r in rs) == sorted(customers)
    for p, rs in routed.items():
        assert all(partition_of(r.key, TOPICS.partitions) == p for r in rs)
        assert all((r.topic, r.partition, r.timestamp_ms) == (TOPICS.lifecycle, 3, 1_700_000_000_000) for r in rs)
    assert counted == {}
    assert log.everything(TOPICS.dlq) == []


def test_invalid_messages_are_dead_lettered_with_reason_and_origin() -> None:
    log, counted = MemoryLog(TOPICS.partitions), {}
    huge = encode(event("order.placed", "2025-01-05T10:00:00Z",
                        {"customer_id": "c", "order_id": "o", "amount": 1e12, "currency": "USD"}))
    asyncio.run(stage(log, counted).handle(fetch(b"{nope", signup("ok"), b"x" * 5000, huge)))
    letters = log.everything(TOPICS.dlq)
    reasons = [dict(m.headers)["reason"].decode() for m in letters]
    assert reasons == ["not_json", "too_large", "unprocessable"]
    assert counted == {"not_json": 1, "too_large": 1, "unprocessable": 1}
    first = dict(letters[0].headers)
    assert (first["source_topic"], first["source_partition"], first["source_offset"]) == (
        TOPICS.lifecycle.encode(), b"3", b"100")
    assert letters[0].value == b"{nope"  # the original bytes
    assert sum(len(log.messages(TOPICS.rekeyed, p)) for p in range(TOPICS.partitions)) == 1


def test_a_dead_letter_keeps_the_messages_own_key_and_headers_apart_from_ours() -> None:
    log, counted = MemoryLog(TOPICS.partitions), {}
    own = [("ce_source", b"shop"), ("reason", b"a producer's header named like ours")]
    message = Message(b"shop-key", b"{nope", 7, 1_700_000_000_000, own)
    asyncio.run(stage(log, counted).handle({Partition(TOPICS.lifecycle, 0): [message]}))
    [letter] = log.everything(TOPICS.dlq)
    assert letter.key == b"shop-key"
    assert letter.headers[0] == ("reason", b"not_json")
    assert letter.headers[5:] == [("source_header.ce_source", b"shop"),
                                  ("source_header.reason", b"a producer's header named like ours")]


def test_a_fetch_fails_when_the_log_does_not_take_it() -> None:
    log = MemoryLog(TOPICS.partitions)
    log.fail = True
    with pytest.raises(LogUnavailable):
        asyncio.run(stage(log, {}).handle(fetch(signup("a"))))
