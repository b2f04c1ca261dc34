"""Create the input and dead-letter topics when missing, before any consumer subscribes to them.

A consumer that subscribes to a topic that does not exist yet only sees it after its next metadata
refresh (minutes), so events published right after start-up would wait; creating them first avoids it.
"""

from __future__ import annotations

import asyncio
import contextlib

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaError, TopicAlreadyExistsError

from streams.config import Settings
from streams.errors import RetentionMonitorError


class TopicError(RetentionMonitorError):
    """The monitor's Kafka topics cannot be listed or created."""


def rekeyed_topic(settings: Settings) -> str:
    """The internal topic of valid events keyed by customer (stage 2's input)."""
    return f"{settings.app_id}-events-by-customer"


async def ensure_topics(settings: Settings, timeout_s: float = 30.0) -> list[str]:
    """Create the input, dead-letter and re-keyed topics that are missing; return the names created.

    The re-keyed topic is Faust's to create too, but a worker that joins its group before the new
    topic shows up in the cluster metadata is assigned no partition of it: create it first.
    """
    wanted = [*settings.input_topics, settings.topic_dlq, rekeyed_topic(settings)]
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap, request_timeout_ms=10_000)
    try:
        await asyncio.wait_for(admin.start(), timeout_s)
        existing = set(await admin.list_topics())
        missing = [t for t in wanted if t not in existing]
        if missing:
            with contextlib.suppress(TopicAlreadyExistsError):  # another worker was faster
                await admin.create_topics(
                    [NewTopic(t, num_partitions=settings.partitions, replication_factor=1) for t in missing]
                )
        return missing
    except (KafkaError, TimeoutError, OSError) as exc:
        raise TopicError(f"cannot reach Kafka at kafka_bootstrap={settings.kafka_bootstrap} ({exc!r})") from exc
    finally:
        await admin.close()
