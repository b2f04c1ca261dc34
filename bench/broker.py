"""Kafka chores of a bench run: check the broker, create and count topics, produce, clean up by run tag."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import shutil
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import replace
from pathlib import Path

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaError, TopicAlreadyExistsError
from rich.console import Console

from bench.cli import BenchError
from core.settings import Settings
from streams.producers.publish import PublishStats, produce

Message = tuple[str, bytes | None, bytes]


async def _admin(bootstrap: str, request_timeout_s: float = 10.0) -> AIOKafkaAdminClient:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=int(request_timeout_s * 1000))
    try:
        await asyncio.wait_for(admin.start(), max(15.0, request_timeout_s / 2))
    except (KafkaError, TimeoutError, OSError) as exc:
        await admin.close()
        raise BenchError(f"cannot reach Kafka at {bootstrap} ({type(exc).__name__}); "
                         "run `.venv/bin/retention-monitor stack up`") from exc  # fmt: skip
    return admin


async def check(bootstrap: str) -> None:
    """Fail fast, with one line, when the broker is not there (before minutes of simulation)."""
    admin = await _admin(bootstrap)
    await admin.close()


async def create_topics(bootstrap: str, names: Iterable[str], partitions: int) -> None:
    admin = await _admin(bootstrap)
    try:
        with contextlib.suppress(TopicAlreadyExistsError):
            await admin.create_topics([NewTopic(n, num_partitions=partitions, replication_factor=1) for n in names])
    finally:
        await admin.close()
    # A consumer that subscribes before the new topics reach the cluster metadata sees them minutes later.
    await asyncio.sleep(1.0)


async def message_count(bootstrap: str, topics: Iterable[str]) -> int:
    """Messages currently in ``topics`` (end minus beginning offsets over every partition)."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False)
    await consumer.start()
    try:
        # A consumer without subscriptions keeps no topic metadata: fetch the cluster's once.
        cluster = await consumer._client.fetch_all_metadata()
        parts = [TopicPartition(t, p) for t in topics for p in sorted(cluster.partitions_for_topic(t) or ())]
        ends = await consumer.end_offsets(parts)
        starts = await consumer.beginning_offsets(parts)
        return sum(ends[tp] - starts[tp] for tp in parts)
    finally:
        await consumer.stop()


async def publish(bootstrap: str, messages: Iterable[Message], total: int, rate: float | None = None) -> PublishStats:
    """Send messages with the monitor's own publisher (batched; paced by a token bucket when ``rate``)."""
    settings = replace(Settings(), kafka_bootstrap=bootstrap)
    return await produce(settings.kafka, messages, total=total, rate=rate)


_CHUNK = 500  # topics per DeleteTopics request: thousands at once exceed the request timeout


async def delete_topics(bootstrap: str, doomed: Callable[[str], bool], request_timeout_s: float = 10.0) -> list[str]:
    """Delete every topic whose name is ``doomed`` (inputs, re-key, changelog, repartition…)."""
    admin = await _admin(bootstrap, request_timeout_s)
    try:
        topics = sorted(t for t in await admin.list_topics() if doomed(t))
        for start in range(0, len(topics), _CHUNK):
            await admin.delete_topics(topics[start : start + _CHUNK])
        return topics
    finally:
        await admin.close()


def delete_groups(bootstrap: str, doomed: Callable[[str], bool]) -> list[str]:
    """Delete consumer groups whose id is ``doomed``; aiokafka's admin cannot, confluent-kafka can.

    confluent-kafka comes with the ``bench`` extra (quixstreams); without it groups are left to expire.
    """
    try:
        from confluent_kafka.admin import AdminClient  # type: ignore[import-untyped]  # noqa: PLC0415 - optional
    except ImportError:
        return []
    admin = AdminClient({"bootstrap.servers": bootstrap, "log_level": 3})  # no info chatter on stderr
    listed = admin.list_consumer_groups(request_timeout=10).result()
    groups = sorted(g.group_id for g in listed.valid if doomed(g.group_id))
    if not groups:
        return []
    for future in admin.delete_consumer_groups(groups, request_timeout=10).values():
        with contextlib.suppress(Exception):  # a group still shutting down is left to expire
            future.result()
    return groups


logging.getLogger("aiokafka").setLevel(logging.CRITICAL)  # our own errors name the broker; its retries are noise


# The tag each bench or soak run puts in every topic, group and app id it creates (see new_tag).
RUN_TAG = re.compile(r"(bench|soak)-[0-9a-f]{8}")


def new_tag(kind: str) -> str:
    """A run's unique tag, ``kind`` being ``bench`` or ``soak``: what :data:`RUN_TAG` recognises."""
    return f"{kind}-{uuid.uuid4().hex[:8]}"


def clean_kafka(console: Console, bootstrap: str, marker: str) -> None:
    """Delete the topics and consumer groups whose names contain ``marker``; report, never raise."""
    time.sleep(1.0)  # let the group coordinator notice the stopped members before deleting groups
    _clean(console, bootstrap, lambda name: marker in name, marker)


def clean_kept(console: Console, bootstrap: str, current: str, runs: Path) -> None:
    """Delete what earlier runs kept with ``--keep`` (topics, groups, state under ``runs``).

    Kept things last until the next run starts: a few kept million-customer runs are tens of GiB in
    the broker, and a broker that crashed with them re-reads all of it before it serves again.
    """
    doomed = earlier_run(current)
    _clean(console, bootstrap, doomed, "earlier runs")
    remove_dirs(runs, doomed)


def earlier_run(current: str) -> Callable[[str], bool]:
    """Whether a topic, group or directory name belongs to a bench or soak run other than ``current``."""
    return lambda name: bool(RUN_TAG.match(name)) and not name.startswith(current)


def remove_dirs(parent: Path, doomed: Callable[[str], bool]) -> None:
    for path in parent.glob("*"):
        if path.is_dir() and doomed(path.name):
            shutil.rmtree(path, ignore_errors=True)


def _clean(console: Console, bootstrap: str, doomed: Callable[[str], bool], what: str) -> None:
    try:
        groups = delete_groups(bootstrap, doomed)
        topics = asyncio.run(delete_topics(bootstrap, doomed, 60.0))
        if topics or groups:
            console.print(f"[dim]clean-up: deleted {len(topics)} topics and {len(groups)} consumer groups of {what}[/]")
    except Exception as exc:  # clean-up must never hide the run's own outcome
        console.print(f"[yellow]clean-up of {what} in Kafka failed: {exc!r}[/]")


def clean_redis(console: Console, tag: str) -> None:
    """Delete the alert state the run's workers kept in Redis (keys ``retention:<tag>…``); never raise."""
    try:
        import redis  # noqa: PLC0415 - only needed at the very end

        client = redis.Redis.from_url(Settings().redis_url, socket_timeout=5)
        keys = list(client.scan_iter(match=f"retention:{tag}*", count=1000))
        if keys:
            client.delete(*keys)
        client.close()
    except Exception as exc:
        console.print(f"[yellow]clean-up of {tag}'s alert state in Redis failed: {exc!r}[/]")
