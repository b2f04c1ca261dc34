"""Publishing to Kafka: simulated traffic, JSON Lines files and live (wall-clock) simulation.

Sends are batched: ``send`` only appends to aiokafka's accumulator, delivery futures are awaited
in chunks, and a final flush waits for the rest, so throughput is bound by the broker, not by
one round trip per event.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterable, AsyncIterator, Iterable, Iterator
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgspec
from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError
from rich.console import Console
from rich.progress import Progress, ProgressColumn, Task, TaskID, TextColumn, TimeElapsedColumn
from rich.text import Text

from core.slices import KafkaSettings, TopicSettings
from streams.exceptions import BrokerUnreachable, PublishError
from streams.kafka.clients import client_options
from streams.kafka.diagnose import diagnose
from streams.producers.simulate import Simulator, topic_for

Message = tuple[str, bytes | None, bytes]
_CHUNK = 2000  # delivery futures awaited together: bounds memory, keeps the accumulator full


@dataclass(frozen=True)
class PublishStats:
    """How many messages were acknowledged by the broker, and how long it took."""

    sent: int
    seconds: float

    @property
    def rate(self) -> float:
        return self.sent / self.seconds if self.seconds > 0 else 0.0


class TokenBucket:
    """Paces to ``rate`` per second on the loop clock; a 50 ms burst avoids one sleep per event."""

    def __init__(self, rate: float) -> None:
        if rate <= 0:
            raise ValueError("rate must be > 0")
        self.rate, self.capacity = rate, max(1.0, rate * 0.05)
        self.tokens, self.last = 1.0, asyncio.get_running_loop().time()

    async def take(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            now = loop.time()
            self.tokens = min(self.capacity, self.tokens + (now - self.last) * self.rate)
            self.last = now
            if self.tokens >= 1.0:
                self.tokens -= 1.0
                return
            await asyncio.sleep((1.0 - self.tokens) / self.rate)


class _RateColumn(ProgressColumn):
    def render(self, task: Task) -> Text:
        return Text(f"{task.speed or 0:,.0f} events/s", style="progress.data.speed")


def _progress_bar(enabled: bool, total: int | None) -> tuple[AbstractContextManager[Any], Progress | None]:
    if not enabled:
        return nullcontext(), None
    # Bar and percentage only make sense when the total is known up front.
    sized = Progress.get_default_columns()[1:3] if total else ()
    bar = Progress(
        TextColumn("[bold]publishing"),
        *sized,
        TextColumn("{task.completed:,} events"),
        _RateColumn(),
        TimeElapsedColumn(),
        console=Console(stderr=True),  # stdout stays clean for piping
    )
    return bar, bar


async def _iterate(messages: Iterable[Message] | AsyncIterable[Message]) -> AsyncIterator[Message]:
    if isinstance(messages, AsyncIterable):
        async for message in messages:
            yield message
    else:
        for message in messages:
            yield message


async def _start(kafka: KafkaSettings) -> Any:
    # acks=1 (one broker confirms) is plenty for generated traffic and keeps latency low.
    producer = AIOKafkaProducer(linger_ms=5, acks=1, max_batch_size=256 * 1024, request_timeout_ms=15_000,
                                **client_options(kafka))  # fmt: skip
    return await start_producer(kafka, producer)


async def start_producer(kafka: KafkaSettings, producer: Any) -> Any:
    """Start ``producer``; a failure becomes a :class:`PublishError` naming its cause (a refused login…)."""
    try:
        await producer.start()
    except (KafkaError, OSError) as exc:
        await producer.stop()
        found = await diagnose(kafka, exc)
        raise (PublishError if found.settings else BrokerUnreachable)(found.text) from exc
    return producer


async def produce(
    kafka: KafkaSettings,
    messages: Iterable[Message] | AsyncIterable[Message],
    *,
    total: int | None = None,
    rate: float | None = None,
    progress: bool = True,
) -> PublishStats:
    """Send ``(topic, key, value)`` messages, optionally paced to ``rate``/s; returns acknowledged count."""
    producer = await _start(kafka)
    bucket = TokenBucket(rate) if rate else None
    context, bar = _progress_bar(progress, total)
    started, sent = time.perf_counter(), 0
    try:
        with context:
            task = bar.add_task("publish", total=total) if bar else None
            sent = await _send_all(producer, _iterate(messages), bucket, bar, task)
            await producer.flush()
    except KafkaError as exc:
        raise BrokerUnreachable(f"publishing to Kafka at {kafka.bootstrap} failed: {exc!r}") from exc
    finally:
        await producer.stop()
    return PublishStats(sent, time.perf_counter() - started)


async def _send_all(
    producer: Any, messages: AsyncIterator[Message], bucket: TokenBucket | None, bar: Progress | None,
    task: TaskID | None,
) -> int:  # fmt: skip
    loop = asyncio.get_running_loop()
    pending: list[asyncio.Future[Any]] = []
    sent, last_report = 0, loop.time()
    while True:
        if bucket is not None:
            await bucket.take()  # before pulling, so a live message is stamped when it is sent
        try:
            topic, key, value = await anext(messages)
        except StopAsyncIteration:
            break
        pending.append(await producer.send(topic, value, key=key))
        # Await deliveries in chunks, or every 0.25 s when paced, so progress and errors surface.
        if len(pending) >= _CHUNK or loop.time() - last_report >= 0.25:
            sent += len(await asyncio.gather(*pending))
            pending.clear()
            last_report = loop.time()
            if bar is not None and task is not None:
                bar.update(task, completed=sent)
    sent += len(await asyncio.gather(*pending))
    if bar is not None and task is not None:
        bar.update(task, completed=sent)
    return sent


def read_jsonl(topics: TopicSettings, path: str | Path) -> Iterator[Message]:
    """Messages from a JSON Lines file, each line's bytes unchanged, routed and keyed by its content."""
    file = Path(path)
    if not file.is_file():
        raise PublishError(f"no such events file: {file}")
    return _lines(topics, file)


def _lines(topics: TopicSettings, file: Path) -> Iterator[Message]:
    with file.open("rb") as fh:
        for raw in fh:
            line = raw.rstrip(b"\r\n")
            if line.strip():
                yield _route(topics, line)


def _route(topics: TopicSettings, value: bytes) -> Message:
    # Malformed lines are sent too (for dead-letter demos), so parsing failures only pick defaults.
    try:
        doc = msgspec.json.decode(value)
    except msgspec.DecodeError:
        return topics.lifecycle, None, value
    if not isinstance(doc, dict):
        return topics.lifecycle, None, value
    kind, data = doc.get("type"), doc.get("data")
    topic = topic_for(topics, kind) if isinstance(kind, str) else topics.lifecycle
    owner = None
    if isinstance(data, dict):
        owner = data.get("customer_id") or data.get("rep_id")
    return topic, owner.encode() if isinstance(owner, str) else None, value


async def simulate_live(
    kafka: KafkaSettings,
    simulator: Simulator,
    rate: float,
    *,
    duration_s: float | None = None,
    count: int | None = None,
    progress: bool = True,
) -> PublishStats:
    """Publish simulated events stamped with the wall clock at send time, paced to ``rate``/s."""
    live = _live(simulator, duration_s, count)
    return await produce(kafka, live, total=count, rate=rate, progress=progress)


async def _live(simulator: Simulator, duration_s: float | None, count: int | None) -> AsyncIterator[Message]:
    # produce() pulls one message per token, so "now" at pull time is the send time.
    started, n = time.time(), 0
    while count is None or n < count:
        elapsed = time.time() - started
        if duration_s is not None and elapsed >= duration_s:
            return
        if count is not None:
            where = n / count
        elif duration_s:
            where = elapsed / duration_s
        else:  # unbounded: the scenario window comes back every hour
            where = elapsed % 3600 / 3600
        yield simulator.emit(time.time_ns() // 1000, where)
        n += 1
