"""The stages' ports (:mod:`streams.ports`) on aiokafka: the worker's one producer and a log reader."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Sequence
from typing import Any

from aiokafka import AIOKafkaProducer, TopicPartition

from core.slices import KafkaSettings
from streams.kafka.clients import new_producer, new_reader
from streams.ports import Headers, LogRecord


class SharedProducer:
    """The worker's one producer, created once the event loop runs (aiokafka needs a running loop)."""

    def __init__(self, kafka: KafkaSettings) -> None:
        self.kafka = kafka
        self._producer: AIOKafkaProducer | None = None

    async def start(self) -> None:
        self._producer = new_producer(self.kafka)
        await self._producer.start()

    async def stop(self) -> None:
        if self._producer is not None:
            await self._producer.stop()

    def _client(self) -> AIOKafkaProducer:
        if self._producer is None:
            raise RuntimeError("the producer is used before the worker started it")
        return self._producer

    async def send(self, topic: str, value: bytes | None, *, key: bytes | None = None,
                   partition: int | None = None, headers: Headers | None = None) -> Awaitable[object]:
        future: Awaitable[object] = await self._client().send(topic, value, key=key, partition=partition,
                                                               headers=headers)
        return future

    async def send_all(self, topic: str, partition: int, items: Sequence[tuple[bytes, bytes]]) -> int:
        """In as few producer batches as fit (an entry larger than a batch goes alone)."""
        producer = self._client()
        sent: list[tuple[asyncio.Future[Any], int]] = []
        batch, n = producer.create_batch(), 0
        for key, value in items:
            if batch.append(key=key, value=value, timestamp=None) is not None:
                n += 1
                continue
            if n:
                sent.append((await producer.send_batch(batch, topic, partition=partition), n))
                batch, n = producer.create_batch(), 0
            if batch.append(key=key, value=value, timestamp=None) is not None:
                n += 1
            else:  # larger than a batch (a customer with a very long history): on its own
                sent.append((await producer.send(topic, value, key=key, partition=partition), 1))
        if n:
            sent.append((await producer.send_batch(batch, topic, partition=partition), n))
        if not sent:
            return 0
        metadata = await asyncio.gather(*(future for future, _ in sent))
        return int(metadata[-1].offset) + sent[-1][1]


class KafkaLogReader:
    """Reads a partition with a fresh consumer outside any group."""

    def __init__(self, kafka: KafkaSettings) -> None:
        self.kafka = kafka

    async def bounds(self, topic: str, partition: int) -> tuple[int, int]:
        tp = TopicPartition(topic, partition)
        consumer = new_reader(self.kafka)
        await consumer.start()
        try:
            return (await consumer.beginning_offsets([tp]))[tp], (await consumer.end_offsets([tp]))[tp]
        finally:
            await consumer.stop()

    async def read(self, topic: str, partition: int, start: int, end: int) -> AsyncIterator[Sequence[LogRecord]]:
        if start >= end:  # no consumer for nothing: one stopped right after its start can raise CancelledError
            return
        tp = TopicPartition(topic, partition)
        consumer = new_reader(self.kafka)
        await consumer.start()
        try:
            consumer.assign([tp])
            consumer.seek(tp, start)
            while await consumer.position(tp) < end:
                batch = await consumer.getmany(tp, timeout_ms=1000, max_records=20_000)
                records = batch.get(tp, [])
                if records:
                    yield records
        finally:
            await consumer.stop()
