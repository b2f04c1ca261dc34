"""Kafka client options from the settings (bootstrap, TLS, SASL), shared by every client the monitor makes.

One place builds them, so the route and follower consumers, the producer, the admin client and the
changelog readers all connect the same way (Faust's equivalent: :func:`streams.worker.faust_app.faust_credentials`).
"""

from __future__ import annotations

from pathlib import Path
from ssl import SSLContext
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.helpers import create_ssl_context

from core.slices import KafkaSettings

INTERNAL_MESSAGE_BYTES = 16 * 1024 * 1024  # max.message.bytes of the topics the monitor creates


def ssl_context(kafka: KafkaSettings) -> SSLContext | None:
    if kafka.security_protocol not in ("SSL", "SASL_SSL"):
        return None

    def path(value: str) -> str | None:
        return str(Path(value).expanduser()) if value else None

    context: SSLContext = create_ssl_context(cafile=path(kafka.ssl_cafile),
                                             certfile=path(kafka.ssl_certfile),
                                             keyfile=path(kafka.ssl_keyfile))
    return context


def client_options(kafka: KafkaSettings) -> dict[str, Any]:
    """Keyword arguments for any aiokafka client (consumer, producer, admin)."""
    options: dict[str, Any] = {
        "bootstrap_servers": kafka.bootstrap,
        "security_protocol": kafka.security_protocol,
    }
    context = ssl_context(kafka)
    if context is not None:
        options["ssl_context"] = context
    if kafka.security_protocol.startswith("SASL_"):
        options["sasl_mechanism"] = kafka.sasl_mechanism
        options["sasl_plain_username"] = kafka.sasl_username
        options["sasl_plain_password"] = kafka.sasl_password
    return options


def new_producer(kafka: KafkaSettings, **extra: Any) -> AIOKafkaProducer:
    """The worker's producer: idempotent (a retried send never duplicates a changelog entry), batched."""
    size = max(kafka.max_message_bytes * 2 + 65_536, 1_048_576)
    return AIOKafkaProducer(
        enable_idempotence=True, acks="all", linger_ms=5, max_batch_size=size,
        # a single changelog entry may be larger than a batch: the state of a customer with a long history
        max_request_size=max(size, INTERNAL_MESSAGE_BYTES),
        request_timeout_ms=30_000, **{**client_options(kafka), **extra},
    )


def new_reader(kafka: KafkaSettings, **extra: Any) -> AIOKafkaConsumer:
    """A consumer outside any group (changelog readers), reading from the start; a fetch waits up to 100 ms
    for 64 KiB, so a follower of live traffic handles fewer, fuller batches."""
    return AIOKafkaConsumer(
        group_id=None, enable_auto_commit=False, auto_offset_reset="earliest",
        max_partition_fetch_bytes=8 << 20, fetch_max_wait_ms=100, fetch_min_bytes=64 << 10,
        **{**client_options(kafka), **extra},
    )
