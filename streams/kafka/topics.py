"""Create the monitor's topics when missing, before any consumer subscribes to them.

A consumer that subscribes to a topic that does not exist yet only sees it after its next metadata
refresh (minutes), so events published right after start-up would wait; creating them first avoids it.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Collection

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaError, TopicAlreadyExistsError

from core.slices import KafkaSettings, TopicSettings
from streams.exceptions import TopicError
from streams.kafka.clients import INTERNAL_MESSAGE_BYTES, client_options
from streams.kafka.diagnose import explain

COMPACTION_LAG_S = 7 * 86_400
CHECKPOINT_MAX_AGE_S = 6 * 86_400


def topic_configs(topics: TopicSettings) -> dict[str, dict[str, str]]:
    """Configs of the topics the monitor creates (others get the broker's defaults)."""
    big = {"max.message.bytes": str(INTERNAL_MESSAGE_BYTES)}
    return {
        topics.rekeyed: big,
        # Entries younger than this are never compacted away, so a KPI store checkpoint younger than
        # it resumes without gaps (streams/follow/follower.py trusts checkpoints up to CHECKPOINT_MAX_AGE_S).
        topics.changelog: {**big, "cleanup.policy": "compact",
                                    "min.compaction.lag.ms": str(COMPACTION_LAG_S * 1000)},
        # The latest at-risk status per customer (streams/at_risk/tracker.py): what a new follower needs, and all.
        topics.at_risk: {"cleanup.policy": "compact"},
        # Which dead letters were redriven (retention-monitor dlq redrive): the latest marker per position.
        topics.redriven: {"cleanup.policy": "compact"},
    }


async def ensure_topics(kafka: KafkaSettings, topics: TopicSettings, timeout_s: float = 30.0,
                        only: Collection[str] | None = None) -> list[str]:
    """Create the input, dead-letter, re-keyed, changelog, at-risk and redrive-marker topics that are missing
    (or those of them in ``only``); return their names.

    A consumer group member that joins before a new topic shows up in the cluster metadata is
    assigned no partition of it, so every topic exists before any worker subscribes.
    """
    configs = topic_configs(topics)
    wanted = [t for t in (*topics.inputs, topics.dlq, *configs) if only is None or t in only]
    admin = AIOKafkaAdminClient(request_timeout_ms=10_000, **client_options(kafka))
    try:
        try:
            await asyncio.wait_for(admin.start(), timeout_s)
        except (KafkaError, TimeoutError, OSError) as exc:  # say why: refused login, TLS, nothing listening
            raise TopicError(await explain(kafka, exc)) from exc
        existing = set(await admin.list_topics())
        missing = [t for t in wanted if t not in existing]
        if missing:
            with contextlib.suppress(TopicAlreadyExistsError):  # another worker was faster
                await admin.create_topics([
                    NewTopic(t, num_partitions=topics.partitions, replication_factor=topics.replication_factor,
                             topic_configs=configs.get(t, {}))
                    for t in missing
                ])
        return missing
    except (KafkaError, TimeoutError, OSError) as exc:
        raise TopicError(f"cannot reach Kafka at kafka_bootstrap={kafka.bootstrap} ({exc!r})") from exc
    finally:
        await admin.close()
