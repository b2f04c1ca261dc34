"""What a running worker holds besides the Faust app: its stages, its KPI store and what it owns."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass, field

import faust
from prometheus_client import CollectorRegistry

from alerts.engine import AlertEngine
from core.slices import CalendarSettings, TopicSettings
from metrics.exceptions import Unavailable
from metrics.exposition import now_us
from metrics.gauges import owner
from metrics.planning import newest as newest_plan
from metrics.segments import Segmenter
from metrics.store import KpiStore
from streams.apply.stage import ApplyStage
from streams.at_risk.tracker import RiskTracker
from streams.cluster.coordinator import Cluster
from streams.follow.follower import ChangelogFollower
from streams.route.consumer import BatchConsumer
from streams.telemetry import PipelineMetrics
from streams.worker.route_process import RouteProcess

RETRY_SECONDS = (0.5, 1, 2, 5, 10)
log = logging.getLogger(__name__)


@dataclass
class Runtime:
    """Everything a worker holds besides the Faust app itself."""

    app: faust.App
    topics: TopicSettings
    calendar: CalendarSettings
    segmenter: Segmenter
    store: KpiStore
    follower: ChangelogFollower
    registry: CollectorRegistry
    pipeline: PipelineMetrics
    apply: ApplyStage
    route: BatchConsumer | RouteProcess
    cluster: Cluster
    owned: frozenset[int] = frozenset()
    newest_seen: int | None = None  # the cluster's newest event time, as last asked
    alerts: AlertEngine | None = None
    risk: RiskTracker | None = None
    started: asyncio.Event = field(default_factory=asyncio.Event)

    def ready(self) -> bool:
        """Owns partitions, their states are restored, and the KPI store has caught up."""
        return bool(self.owned) and self.follower.caught_up and self.owned <= self.apply.trusted()

    def owned_segments(self) -> list[str]:
        """Segments whose gauges (and alerts) this worker owns (see :func:`metrics.gauges.owner`).

        None until the KPI store has read its partitions' changelog: the answers of the whole cluster
        are not asked for before this worker's own share is whole.
        """
        if not self.follower.caught_up:
            return []
        owned, parts = self.owned, self.topics.partitions
        return [g for g in self.segmenter.all_keys() if owner(g, parts) in owned]

    def now_us(self) -> int | None:
        """The instant rolling windows end at: wall clock, or just after the newest event (``clock=event``)
        of the cluster, as last asked (at least the newest this worker holds)."""
        if self.calendar.clock == "event":
            known = [t for t in (self.store.newest_us, self.newest_seen) if t is not None]
            return max(known) + 1 if known else None
        return now_us()

    async def cluster_now_us(self) -> int | None:
        """:meth:`now_us`, asking the cluster for its newest event first (``clock=event``)."""
        if self.calendar.clock == "event":
            with contextlib.suppress(Unavailable):  # then what was last known
                newest = await self.cluster(newest_plan())
                if newest is not None and (self.newest_seen is None or newest > self.newest_seen):
                    self.newest_seen = newest
        return self.now_us()

    async def apply_packed(self, packs: list[tuple[int, bytes, float]]) -> None:
        """Apply packed batches; retried until it succeeds, since Faust acks whatever returns."""
        await self.started.wait()
        for attempt in range(1_000_000):
            try:
                await self.apply.handle(packs)
                return
            except Exception as exc:
                delay = RETRY_SECONDS[min(attempt, len(RETRY_SECONDS) - 1)]
                # The traceback may quote event data: only at debug level.
                log.error("apply: %d packed batches failed (%s); retrying in %ss", len(packs), type(exc).__name__,
                          delay)
                log.debug("apply failure", exc_info=True)
                await asyncio.sleep(delay)
