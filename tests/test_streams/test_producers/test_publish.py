"""read_jsonl routing (unit) and one round trip through a real broker (integration)."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from core.errors import RetentionMonitorError
from core.settings import Settings
from streams.exceptions import PublishError
from streams.producers.publish import TokenBucket, produce, read_jsonl
from streams.producers.simulate import Simulator

SETTINGS = Settings()
BOOTSTRAP = "127.0.0.1:9092"

LINES = [
    b'{"specversion":"1.0","type":"customer.signed_up","data":{"customer_id":"c-1"}}',
    b'{"type":"order.placed","data":{"customer_id":"c-2","order_id":"o-1"}}',
    b'{"type":"ticket.opened","data":{"customer_id":"c-3","ticket_id":"t-1"}}',
    b'{"type":"survey.nps","data":{"customer_id":"c-4","score":3}}',
    b'{"type":"feedback.received","data":{"customer_id":"c-5"}}',
    b'{"type":"rep.joined","data":{"rep_id":"r-1"}}',
    b'{"type":"customer.teleported","data":{}}',
    b"{not json at all",
    b"[1, 2]",
    b'{"type": 7, "data": {"customer_id": 42}}',
]


def test_read_jsonl_routes_by_type_keys_by_owner_and_keeps_bytes(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    path.write_bytes(b"\n".join(LINES[:5]) + b"\r\n\n   \n" + b"\n".join(LINES[5:]))  # no final newline
    got = list(read_jsonl(SETTINGS.topics, path))
    life, sup, fb, team = SETTINGS.topic_lifecycle, SETTINGS.topic_support, SETTINGS.topic_feedback, SETTINGS.topic_team
    assert [(t, k) for t, k, _ in got] == [
        (life, b"c-1"), (life, b"c-2"), (sup, b"c-3"), (fb, b"c-4"), (fb, b"c-5"), (team, b"r-1"),
        (life, None), (life, None), (life, None), (life, None),
    ]  # fmt: skip
    assert [v for _, _, v in got] == LINES


def test_read_jsonl_missing_file_names_the_path(tmp_path: Path) -> None:
    missing = tmp_path / "nope.jsonl"
    with pytest.raises(PublishError, match=r"nope\.jsonl"):
        read_jsonl(SETTINGS.topics, missing)
    assert issubclass(PublishError, RetentionMonitorError)


@pytest.mark.asyncio
async def test_unreachable_broker_is_a_publish_error_naming_the_address() -> None:
    settings = Settings(kafka_bootstrap="127.0.0.1:9")  # discard port: nothing listens there
    with pytest.raises(PublishError, match=r"127\.0\.0\.1:9\b"):
        await produce(settings.kafka, [], progress=False)


@pytest.mark.asyncio
async def test_token_bucket_paces_on_the_loop_clock() -> None:
    loop = asyncio.get_running_loop()
    bucket = TokenBucket(200.0)
    start = loop.time()
    for _ in range(100):
        await bucket.take()
    assert 0.4 < loop.time() - start < 0.8


async def _read_back(settings: Settings, expected: int, deadline_s: float) -> list[bytes]:
    consumer = AIOKafkaConsumer(*settings.topics.inputs, bootstrap_servers=BOOTSTRAP, auto_offset_reset="earliest")
    await consumer.start()
    values: list[bytes] = []
    try:
        loop = asyncio.get_running_loop()
        end = loop.time() + deadline_s
        while len(values) < expected and loop.time() < end:
            batches = await consumer.getmany(timeout_ms=500)
            values += [record.value for records in batches.values() for record in records]
    finally:
        await consumer.stop()
    return values


@pytest.mark.integration
@pytest.mark.asyncio
async def test_round_trip_through_kafka(stack: str) -> None:
    tag = f"it-publish-{uuid.uuid4().hex[:8]}"
    settings = Settings(
        kafka_bootstrap=BOOTSTRAP, topic_lifecycle=f"{tag}.lifecycle", topic_support=f"{tag}.support",
        topic_feedback=f"{tag}.feedback", topic_team=f"{tag}.team", topic_dlq=f"{tag}.dlq",
    )  # fmt: skip
    admin = AIOKafkaAdminClient(bootstrap_servers=BOOTSTRAP)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(t, num_partitions=2, replication_factor=1) for t in settings.topics.inputs])
        sim = Simulator(settings.facts, settings.topics, seed=5, customers=100)
        messages = list(sim.events(1_735_689_600_000_000, count=1000, rate=1.0))
        stats = await produce(settings.kafka, messages, total=1000, progress=False)
        assert stats.sent == 1000
        values = await _read_back(settings, 1000, deadline_s=30.0)
        assert sorted(values) == sorted(v for _, _, v in messages)
    finally:
        await admin.delete_topics(settings.topics.inputs)
        await admin.close()
