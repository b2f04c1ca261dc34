"""The worker: the three stages wired to Kafka, and the KPI store's readers, in one Faust app.

Route (a batched consumer of the input topics, group ``<app_id>-route``) validates and packs; the
Faust agent ``apply`` (group ``app_id``) applies the packs to the owned partitions' states and writes
the changelog; the follower reads the changelog into the KPI store, which serves the HTTP pages, the
gauges and the alerts. docs/architecture.md draws it.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import faust
from faust.sensors.prometheus import setup_prometheus_sensors
from faust.types import TP
from prometheus_client import CollectorRegistry

from core.settings import Settings, parse_duration
from metrics import snapshot
from metrics.store import KpiStore
from streams.apply.processor import Processor
from streams.apply.stage import ApplyStage, Counts
from streams.cluster.coordinator import Cluster, LocalShare
from streams.cluster.http import HttpTransport
from streams.cluster.members import members
from streams.follow.checkpoints import Checkpoints
from streams.follow.follower import ChangelogFollower
from streams.follow.holds import Holds
from streams.kafka.clients import client_options, new_reader
from streams.kafka.topics import CHECKPOINT_MAX_AGE_S
from streams.kafka.transport import KafkaLogReader, SharedProducer
from streams.route.consumer import BatchConsumer
from streams.route.dead_letters import DeadLetters
from streams.route.stage import RouteStage
from streams.telemetry import ConsumerMetrics, PipelineMetrics
from streams.web.pages import register_pages
from streams.worker.alerting import new_alerting
from streams.worker.faust_app import TAKE_PACKS, TAKE_WITHIN_S, new_faust_app
from streams.worker.route_process import RouteProcess
from streams.worker.runtime import Runtime
from streams.worker.services import Engine, start_at_risk, start_background, warm

log = logging.getLogger(__name__)


def create_app(settings: Settings, registry: CollectorRegistry | None = None) -> Runtime:
    """A worker, ready for ``faust.Worker`` to run; ``settings`` is split here into each part's slice."""
    registry = registry or CollectorRegistry()
    app = new_faust_app(settings.kafka, settings.topics, settings.storage, settings.web)
    producer = SharedProducer(settings.kafka)
    runtime = _runtime(app, settings, producer, registry)
    thresholds = settings.storage.abc_thresholds
    start_at_risk(runtime, settings.risk, settings.kafka, producer, thresholds)
    _apply_agent(app, runtime)
    app.add_dependency(Engine(runtime, producer))
    alerting = new_alerting(runtime, settings.alerting)

    @app.task  # type: ignore[untyped-decorator]
    async def alert_loop() -> None:
        await alerting.run()

    register_pages(app, runtime, settings.calendar, thresholds)
    setup_prometheus_sensors(app, pattern="/faust-metrics", registry=registry, name_prefix="retention_faust")
    start_background(runtime, settings.currency, thresholds, parse_duration(settings.gauge_interval))
    return runtime


def _runtime(app: faust.App, settings: Settings, producer: SharedProducer, registry: CollectorRegistry) -> Runtime:
    """The stages and the KPI store, with their metrics."""
    pipeline = PipelineMetrics.create(registry)
    topics, storage = settings.topics, settings.storage
    processor = Processor(settings.facts)
    store = KpiStore(processor.ctx, storage.abc_thresholds)
    pipeline.facts.set_function(lambda: len(store.index))
    pipeline.fact_bytes.set_function(store.fact_bytes)
    letters = DeadLetters(producer, topics.dlq, count=lambda reasons: _count_rejected(pipeline, reasons))

    def counted(counts: Counts) -> None:
        pipeline.count(counts.events, counts.duplicates, counts.ignored, counts.event_times_us, time.time())

    apply = ApplyStage(processor=processor, producer=producer, reader=KafkaLogReader(settings.kafka),
                       changelog=topics.changelog, store_url=storage.store_url, data_dir=storage.worker_dir / "state",
                       reject=letters.reject, on_counts=counted, on_restored=pipeline.restored.inc,
                       on_timing=lambda stage, seconds: pipeline.stage.labels(stage).observe(seconds))
    route = _route(settings, processor, producer, letters, ConsumerMetrics(registry))
    checkpoints = Checkpoints(storage.worker_dir / "kpi-checkpoint", snapshot.fingerprint(settings.to_dict()),
                              storage.checkpoint_interval_s, CHECKPOINT_MAX_AGE_S)
    holds = Holds()
    follower = ChangelogFollower(lambda: new_reader(settings.kafka), topics.changelog, store, holds,
                                 visible=pipeline.visible, on_change=pipeline.last_update.set_to_current_time,
                                 on_repair=pipeline.repaired.inc, checkpoints=checkpoints,
                                 stages=(pipeline.stage.labels("route_apply"), pipeline.stage.labels("follow")))
    local = LocalShare(store, lambda: follower.owned, lambda: follower.caught, holds)
    cluster = Cluster(topics.partitions, members(app, topics.rekeyed), settings.web.url, local,
                      HttpTransport(settings.web.auth_header))
    return Runtime(app, topics, settings.calendar, processor.ctx.segmenter, store, follower, registry, pipeline,
                   apply, route, cluster)


def _route(settings: Settings, processor: Processor, producer: SharedProducer, letters: DeadLetters,
           metrics: ConsumerMetrics) -> BatchConsumer | RouteProcess:
    """The route stage: in a child process (a second core), or in this worker's loop."""
    if settings.route == "process":
        return RouteProcess(settings, metrics, letters.count)
    topics = settings.topics
    stage = RouteStage(recorder=processor.recorder, producer=producer, rekeyed=topics.rekeyed,
                       partitions=topics.partitions, dead_letters=letters, max_bytes=settings.kafka.max_message_bytes)
    return BatchConsumer(stage="route", options=client_options(settings.kafka), group_id=f"{topics.app_id}-route",
                         topics=topics.inputs, handle=stage.handle, metrics=metrics)


def _count_rejected(pipeline: PipelineMetrics, reasons: dict[str, int]) -> None:
    for reason, n in reasons.items():
        pipeline.rejected.labels(reason).inc(n)


def _apply_agent(app: faust.App, runtime: Runtime) -> None:
    """The Faust agent of the re-keyed topic, and what a rebalance does to the owned partitions."""
    rekeyed = app.topic(runtime.topics.rekeyed, value_type=bytes, partitions=runtime.topics.partitions, internal=True)
    table_topic = rekeyed.get_topic_name()

    @app.agent(rekeyed, name="apply")
    async def apply(stream: Any) -> None:
        # A few packs at a time: their changelog writes are acknowledged together.
        async for events in stream.take_events(TAKE_PACKS, within=TAKE_WITHIN_S):
            await runtime.apply_packed([(e.message.partition, e.message.value, e.message.timestamp) for e in events])

    @app.on_partitions_revoked.connect  # type: ignore[arg-type]
    async def on_revoked(app: faust.App, revoked: set[TP], **kwargs: Any) -> None:
        runtime.apply.revoked({tp.partition for tp in revoked if tp.topic == table_topic})
        if runtime.risk is not None:
            await runtime.risk.revoked()

    @app.on_partitions_assigned.connect  # type: ignore[arg-type]
    async def on_assigned(app: faust.App, assigned: set[TP], **kwargs: Any) -> None:
        owned = frozenset(tp.partition for tp in assigned if tp.topic == table_topic)
        runtime.apply.assigned(set(owned))
        runtime.follower.assign(owned)
        if runtime.risk is not None:
            runtime.risk.assigned(owned)
        runtime.owned = owned
        log.info("customer partitions now owned: %s", sorted(owned))
        for partition in sorted(owned):
            app.loop.create_task(warm(runtime, partition))
