"""The worker's long-running parts besides the apply agent: the route consumer, the changelog follower,
the KPI gauges, the loop watch and at-risk scoring, each restarted after a failure."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import mode

from core.slices import KafkaSettings, RiskSettings
from metrics.abc_classes import AbcSummary, Cut
from metrics.exposition import GaugeBoard
from metrics.planning import abc
from metrics.segments import ALL
from streams.at_risk.registry import AtRiskCollector, Classes
from streams.at_risk.tracker import RiskTracker, new_tracker
from streams.kafka.transport import SharedProducer
from streams.worker.backpressure import BufferFullSensor
from streams.worker.heap_trim import trim_forever
from streams.worker.loop_watch import LoopWatch
from streams.worker.runtime import RETRY_SECONDS, Runtime

log = logging.getLogger(__name__)


class Engine(mode.Service):
    """Starts the shared producer, then runs the route consumer and the changelog follower."""

    def __init__(self, runtime: Runtime, producer: SharedProducer) -> None:
        super().__init__()
        self.runtime = runtime
        self.producer = producer

    async def on_start(self) -> None:
        await self.producer.start()
        self.runtime.started.set()

    async def on_stop(self) -> None:
        await self.producer.stop()
        self.runtime.apply.close()

    @mode.Service.task
    async def _route(self) -> None:
        await forever("route", self.runtime.route.run)

    @mode.Service.task
    async def _follow(self) -> None:
        await forever("follower", self.runtime.follower.run)


async def forever(name: str, run: Any) -> None:
    """Run ``run()`` again after a failure (a broker outage, say), with backoff; offsets make it safe."""
    attempt = 0
    while True:
        try:
            await run()
            return
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            delay = RETRY_SECONDS[min(attempt, len(RETRY_SECONDS) - 1)]
            log.error("%s failed (%s: %s); restarting in %ss", name, type(exc).__name__, str(exc)[:200], delay)
            log.debug("%s failure", name, exc_info=True)
            attempt += 1
            await asyncio.sleep(delay)


async def warm(runtime: Runtime, partition: int) -> None:
    """Restore a newly owned partition now rather than at its first batch."""
    await runtime.started.wait()
    try:
        await runtime.apply.store(partition)
    except Exception:  # the first batch of the partition tries again
        log.warning("could not restore partition %d yet", partition, exc_info=True)


def start_background(runtime: Runtime, currency: str, thresholds: tuple[float, float], interval_s: float) -> None:
    """The KPI gauges, computed off the scrape path; the event loop's stall and GC pause times; Faust's
    pauses of the apply agent's partitions; freed heap pages handed back."""
    registry = runtime.registry
    board = GaugeBoard(runtime.owned_segments, runtime.cluster_now_us, tz=runtime.calendar.tz, currency=currency,
                       thresholds=thresholds, run=runtime.cluster, min_interval=interval_s,
                       pinned=runtime.cluster.pinned)
    registry.register(board)
    loop_watch = LoopWatch.create(registry)
    runtime.app.sensors.add(BufferFullSensor(registry))

    @runtime.app.task  # type: ignore[untyped-decorator]
    async def gauges() -> None:
        await forever("gauges", board.run)

    @runtime.app.task  # type: ignore[untyped-decorator]
    async def watch_loop() -> None:
        await loop_watch.run()

    @runtime.app.task  # type: ignore[untyped-decorator]
    async def trim_heap() -> None:
        await trim_forever()


def start_at_risk(runtime: Runtime, risk_settings: RiskSettings, kafka: KafkaSettings,
                  producer: SharedProducer, thresholds: tuple[float, float]) -> RiskTracker:
    """The at-risk tracker, fed by the apply stage, with its gauge and its task."""
    registry = runtime.registry

    async def ranking(at_us: int) -> tuple[list[Cut], AbcSummary]:
        return await runtime.cluster.pinned(abc(at_us, thresholds))

    risk = new_tracker(risk_settings, runtime.topics, kafka, apply=runtime.apply, producer=producer,
                       classes=Classes(runtime.store, ranking), now_us=runtime.now_us,
                       kpi_ready=lambda: runtime.follower.caught_up, registry=registry)
    runtime.apply.on_changed = risk.changed
    # One worker exports the counts, like the other series without a segment label (with "all").
    registry.register(AtRiskCollector(risk.registry, lambda: ALL in runtime.owned_segments()
                                      and risk.follower.caught_up, lambda: risk.classes.counts))

    @runtime.app.task  # type: ignore[untyped-decorator]
    async def at_risk() -> None:
        await runtime.started.wait()  # the tracker publishes with the shared producer
        await asyncio.gather(forever("at-risk follower", risk.follower.run), forever("at-risk", risk.run))

    runtime.risk = risk
    return risk
