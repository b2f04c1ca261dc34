"""The Faust app a worker runs: its broker connection, web server and the apply agent's buffer.

Faust decodes nothing itself (raw serializers): a decode error inside Faust acks the message and
crashes the agent, so every byte is checked by the route stage instead.
"""

from __future__ import annotations

from typing import Any

import faust

from core.slices import KafkaSettings, StorageSettings, TopicSettings, WebSettings
from streams.kafka.clients import ssl_context
from streams.web.auth import token_middlewares

# Packs the apply agent takes per turn of the event loop, and the size of its buffer: a rebalance waits
# for the buffer to drain; and how long a turn waits for them: each turn costs a changelog round trip, so
# live traffic goes in fewer, fuller turns (docs/architecture.md, "Batch sizes").
TAKE_PACKS, TAKE_WITHIN_S = 128, 0.1
SESSION_TIMEOUT_S = 10.0  # a crashed worker's partitions (and the series and alerts it owned) move after this


def faust_credentials(kafka: KafkaSettings) -> Any:
    """The same connection for Faust (``broker_credentials``), or ``None`` for plaintext."""
    context = ssl_context(kafka)
    if kafka.security_protocol.startswith("SASL_"):
        return faust.SASLCredentials(username=kafka.sasl_username, password=kafka.sasl_password,
                                     mechanism=kafka.sasl_mechanism, ssl_context=context)
    if context is not None:
        return faust.SSLCredentials(context)
    return None


def new_faust_app(kafka: KafkaSettings, topics: TopicSettings, storage: StorageSettings, web: WebSettings) -> faust.App:
    return faust.App(
        topics.app_id,
        broker=[f"kafka://{hp.strip()}" for hp in kafka.bootstrap.split(",")],
        broker_credentials=faust_credentials(kafka),
        store="memory://",
        datadir=str(storage.worker_dir / "faust"),
        topic_partitions=topics.partitions,
        topic_replication_factor=topics.replication_factor,
        # Faust's own (sticky) assignor, not round robin: only it tells every member who owns which
        # partition, at which advertised URL (streams/cluster/members.py). The app has no tables, so
        # nothing is kept as a standby.
        table_standby_replicas=1,
        key_serializer="raw",
        value_serializer="raw",
        web_host=web.host, web_bind=web.host, web_port=web.port, canonical_url=web.url,
        web_application_options={"middlewares": token_middlewares(web)},
        web_tables_enabled=False, web_router_enabled=False, web_graph_enabled=False, web_metrics_enabled=False,
        autodiscover=False,
        consumer_auto_offset_reset="earliest",
        # A rebalance waits for the batch in hand (and its changelog writes): the next owner of the
        # partition must read them when it restores (streams/apply/stage.py).
        stream_wait_empty=True,
        stream_buffer_maxsize=4 * TAKE_PACKS,
        broker_session_timeout=SESSION_TIMEOUT_S,
        broker_heartbeat_interval=2.0,
    )
