"""Reading the dead-letter topic, and redriving dead letters to their source topics (``retention-monitor dlq``).

A redrive sends a dead letter's bytes, key and own headers back to the topic it came from, with
:data:`~streams.producers.dlq.REDRIVE_HEADER`, and then writes a marker keyed by the dead letter's position
to the compacted topic ``TopicSettings.redriven``: a dead letter with a marker is not sent again, so a
second run sends nothing. The markers live in Kafka, next to the dead letters, so the command (like the
workers) needs nothing else. A run that dies between a send and its marker sends that message again
next time; the worker counts it once, as it dedupes every customer's events by id.
Nothing is removed from the dead-letter topic.
"""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Mapping
from contextlib import aclosing, asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.errors import KafkaError

from core.errors import ConfigError
from core.settings import Settings
from core.slices import KafkaSettings
from streams.contract.decode import Rejection, decode
from streams.exceptions import PublishError
from streams.kafka.clients import client_options, new_reader
from streams.kafka.diagnose import explain
from streams.kafka.topics import ensure_topics
from streams.producers.dlq import Filter, Letter, Position, letter, redrive_headers
from streams.producers.publish import start_producer

Progress = Callable[[int, int], None]  # records read so far, records to read
Ranges = Mapping[TopicPartition, tuple[int, int]]  # [first, end) offsets to read per partition
_CHUNK = 500  # sends awaited (and then marked) together
EXAMPLES = 3  # still-failing dead letters named per reason


@dataclass
class Tally:
    """What a redrive did (or, dry, would do): ``failing`` counts the dead letters the monitor would
    reject again with these settings, by reason; they are not sent."""

    dry_run: bool
    matched: int = 0
    redriven: int = 0
    already: int = 0
    failing: Counter[str] = field(default_factory=Counter)
    examples: list[tuple[str, str, str]] = field(default_factory=list)  # position, reason, message
    stopped_at_limit: bool = False

    def fail(self, item: Letter, rejection: Rejection) -> None:
        self.failing[rejection.reason] += 1
        if self.failing[rejection.reason] <= EXAMPLES:
            self.examples.append((str(item.position), rejection.reason, rejection.message))


@asynccontextmanager
async def reader(kafka: KafkaSettings) -> AsyncIterator[AIOKafkaConsumer]:
    """A consumer outside any group; an unreachable Kafka is a :class:`PublishError` naming the cause."""
    consumer = new_reader(kafka)
    try:
        await consumer.start()
    except (KafkaError, OSError) as exc:
        await consumer.stop()
        raise PublishError(await explain(kafka, exc)) from exc
    try:
        yield consumer
    finally:
        await consumer.stop()


async def ranges(consumer: AIOKafkaConsumer, topic: str, since_ms: int | None = None) -> Ranges:
    """Every partition's offsets to read now (from the first dead-lettered at ``since_ms``, if given)."""
    parts = await _partitions(consumer, topic)
    if parts is None:
        raise ConfigError(f"topic {topic!r} does not exist in Kafka (topic_dlq; a worker creates it at start)")
    tps = [TopicPartition(topic, p) for p in sorted(parts)]
    ends = await consumer.end_offsets(tps)
    starts = await consumer.beginning_offsets(tps)
    if since_ms is not None:
        found = await consumer.offsets_for_times({tp: since_ms for tp in tps})
        starts = {tp: ends[tp] if found[tp] is None else found[tp].offset for tp in tps}
    return {tp: (starts[tp], ends[tp]) for tp in tps}


async def _partitions(consumer: AIOKafkaConsumer, topic: str) -> set[int] | None:
    # A consumer without subscriptions keeps no topic metadata (partitions_for_topic says None): fetch it.
    cluster = await consumer._client.fetch_all_metadata()
    parts: set[int] | None = cluster.partitions_for_topic(topic)
    return parts


async def letters(consumer: AIOKafkaConsumer, spans: Ranges,
                  progress: Progress | None = None) -> AsyncGenerator[Letter, None]:
    """The dead letters in ``spans``, each partition's in offset order."""
    total = sum(end - start for start, end in spans.values())
    consumer.assign(list(spans))
    pending = {tp for tp, (start, end) in spans.items() if start < end}
    for tp, (start, _) in spans.items():
        consumer.seek(tp, start)
    done = 0
    while pending:
        batch = await consumer.getmany(*pending, timeout_ms=1000)
        for tp, records in batch.items():
            end = spans[tp][1]
            for r in records:
                if r.offset < end:
                    done += 1
                    yield letter(Position(tp.partition, r.offset), r.timestamp, r.key, r.value, r.headers)
        for tp in list(pending):  # by position: compaction and transaction markers leave gaps in offsets
            if await consumer.position(tp) >= spans[tp][1]:
                pending.discard(tp)
        if progress is not None:
            progress(done, total)


async def scan(kafka: KafkaSettings, topic: str, since_ms: int | None,
               progress: Progress | None = None) -> AsyncGenerator[Letter, None]:
    """Every dead letter of ``topic`` (dead-lettered at ``since_ms`` or later, if given)."""
    async with reader(kafka) as consumer:
        async for item in letters(consumer, await ranges(consumer, topic, since_ms), progress):
            yield item


async def one(kafka: KafkaSettings, topic: str, text: str) -> Letter:
    """The dead letter at position ``text`` (``PARTITION:OFFSET``)."""
    async with reader(kafka) as consumer:
        spans = await ranges(consumer, topic)
        where = Position.parse(text, len(spans))
        tp = TopicPartition(topic, where.partition)
        first, end = spans[tp]
        if not first <= where.offset < end:
            raise ConfigError(f"no dead letter at {where}: partition {where.partition} holds offsets {first}-{end - 1}"
                              if first < end else f"no dead letter at {where}: partition {where.partition} is empty")
        async with aclosing(letters(consumer, {tp: (where.offset, where.offset + 1)})) as found:
            async for item in found:
                return item
    raise ConfigError(f"no dead letter at {where} (compacted or transaction marker)")


async def markers(consumer: AIOKafkaConsumer, topic: str) -> dict[str, str]:
    """Position -> digest of every dead letter redriven so far (none when the marker topic is new)."""
    if await _partitions(consumer, topic) is None:
        return {}
    done: dict[str, str] = {}
    async for item in letters(consumer, await ranges(consumer, topic)):
        if item.key is not None and item.value is not None:
            done[item.key.decode()] = json.loads(item.value)["digest"]
    return done


def still_failing(item: Letter, settings: Settings) -> Rejection | None:
    """Why the monitor would reject the message again with ``settings`` (``too_late`` cannot be told here:
    it depends on the customer's state; the worker judges it)."""
    if not item.source_topic:
        return Rejection("no_source_topic", "the dead letter has no source_topic header")
    decoded = decode(item.value, frozenset(settings.rates), settings.max_message_bytes)
    return decoded if isinstance(decoded, Rejection) else None


async def redrive(settings: Settings, chosen: Filter, limit: int | None, dry_run: bool,
                  progress: Progress | None = None) -> Tally:
    """Send the matching dead letters that would pass now and have no marker; see the module docstring."""
    tally = Tally(dry_run)
    topics = settings.topics
    async with reader(settings.kafka) as consumer:
        done = await markers(consumer, topics.redriven)
        producer = None if dry_run else await _producer(settings)
        pending: list[tuple[Letter, asyncio.Future[Any]]] = []
        try:
            chosen_letters = letters(consumer, await ranges(consumer, topics.dlq, chosen.since_ms), progress)
            async for item in chosen_letters:
                if not chosen.matches(item):
                    continue
                if limit is not None and tally.redriven >= limit:
                    tally.stopped_at_limit = True
                    await chosen_letters.aclose()
                    break
                tally.matched += 1
                if done.get(str(item.position)) == item.digest:
                    tally.already += 1
                elif (rejection := still_failing(item, settings)) is not None:
                    tally.fail(item, rejection)
                else:
                    tally.redriven += 1
                    if producer is not None:
                        sent = await producer.send(item.source_topic, item.value, key=item.key,
                                                   headers=redrive_headers(item))
                        pending.append((item, sent))
                if producer is not None and len(pending) >= _CHUNK:
                    await _mark(producer, topics.redriven, pending)
            if producer is not None:
                await _mark(producer, topics.redriven, pending)
        except KafkaError as exc:
            raise PublishError(f"redriving to Kafka at {settings.kafka_bootstrap} failed: {exc!r}") from exc
        finally:
            if producer is not None:
                await producer.stop()
    return tally


async def _producer(settings: Settings) -> AIOKafkaProducer:
    await ensure_topics(settings.kafka, settings.topics, only={settings.topics.redriven})
    # acks=all and idempotence: a message counted as redriven is durable and was written once per send.
    producer = AIOKafkaProducer(acks="all", enable_idempotence=True, linger_ms=5,
                                max_request_size=settings.max_message_bytes + 65_536,
                                **client_options(settings.kafka))  # fmt: skip
    started: AIOKafkaProducer = await start_producer(settings.kafka, producer)
    return started


async def _mark(producer: AIOKafkaProducer, topic: str, pending: list[tuple[Letter, asyncio.Future[Any]]]) -> None:
    """Once the sends are acknowledged, a marker per dead letter (only then: a lost send is sent again)."""
    if not pending:
        return
    sent = await asyncio.gather(*(future for _, future in pending))
    now = datetime.now(UTC).isoformat(timespec="milliseconds")
    marks = [await producer.send(topic, json.dumps({"digest": item.digest, "redriven_at": now,
                                                    "to": f"{meta.topic}:{meta.partition}:{meta.offset}"}).encode(),
                                 key=str(item.position).encode())
             for (item, _), meta in zip(pending, sent, strict=True)]
    await asyncio.gather(*marks)
    pending.clear()
