"""What a running worker holds besides the Faust app: its stages, its KPI store and what it owns."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field

import faust
from prometheus_client import CollectorRegistry

from alerts.engine import AlertEngine
from core.slices import CalendarSettings, TopicSettings
from metrics.exposition import now_us, owner
from metrics.segments import Segmenter
from metrics.store import KpiStore
from streams.apply.stage import ApplyStage
from streams.at_risk.tracker import RiskTracker
from streams.follow.follower import ChangelogFollower
from streams.route.consumer import BatchConsumer
from streams.telemetry import PipelineMetrics

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
    route: BatchConsumer
    owned: frozenset[int] = frozenset()
    alerts: AlertEngine | None = None
    risk: RiskTracker | None = None
    started: asyncio.Event = field(default_factory=asyncio.Event)

    def ready(self) -> bool:
        """Owns partitions, their states are restored, and the KPI store has caught up."""
        return bool(self.owned) and self.follower.caught_up and self.owned <= self.apply.trusted()

    def owned_segments(self) -> list[str]:
        """Segments whose gauges (and alerts) this worker owns (see :func:`metrics.exposition.owner`).

        None until the KPI store has read the changelog up to where it stood at start-up: a worker
        that is still catching up would export too low numbers and could fire or resolve alerts.
        """
        if not self.follower.caught_up:
            return []
        owned, parts = self.owned, self.topics.partitions
        return [g for g in self.segmenter.all_keys() if owner(g, parts) in owned]

    def now_us(self) -> int | None:
        """The instant rolling windows end at: wall clock, or just after the newest event (``clock=event``)."""
        if self.calendar.clock == "event":
            newest = self.store.newest_us
            return None if newest is None else newest + 1
        return now_us()

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
