"""The alert engine of a worker, its Alertmanager client and its Redis state, run as one task."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

from alerts.delivery import AlertmanagerClient, DeliveryMetrics
from alerts.engine import AlertEngine, Timing
from alerts.rules import DEFAULT_RULES, load_rules
from alerts.state import StateMetrics, StateStore
from core.slices import AlertSettings
from streams.worker.runtime import Runtime

log = logging.getLogger(__name__)


class Alerting:
    """The alert engine, its Alertmanager client and Redis state, run as one worker task.

    With ``posts`` False (alert_path = "prometheus") the task ends at once: the generated Prometheus rules
    page, and the engine only answers ``/alerts`` (what would fire, evaluated on request)."""

    def __init__(self, engine: AlertEngine, client: AlertmanagerClient, state: StateStore, *,
                 posts: bool = True) -> None:
        self.engine = engine
        self.client = client
        self.state = state
        self.posts = posts
        self.stop = asyncio.Event()

    async def run(self) -> None:
        if not self.posts:
            log.info("alert_path=prometheus: this worker posts no alerts (the Prometheus rules do)")
            return
        try:
            await asyncio.gather(self.engine.run(self.stop), self.client.run(self.stop))
        finally:
            await self.client.close()


def new_alerting(runtime: Runtime, alerting: AlertSettings) -> Alerting:
    """Rules on the worker's KPI store, evaluated for the segments it owns; sets ``runtime.alerts``."""
    rules = load_rules(Path(alerting.rules) if alerting.rules else DEFAULT_RULES, alerting.grafana_url)
    client = AlertmanagerClient(alerting.alertmanager_url, metrics=DeliveryMetrics.create(runtime.registry),
                                webhook_url=alerting.webhook_url or None)
    state = StateStore.from_settings(alerting.redis, runtime.topics.app_id,
                                     metrics=StateMetrics.create(runtime.registry))
    engine = AlertEngine(rules, runtime.cluster, updates=lambda: runtime.store.updates,
                         owned=runtime.owned_segments, segments=[*runtime.segmenter.all_keys()],
                         now_us=runtime.cluster_now_us, state=state, client=client,
                         timing=Timing(alerting.interval_s, alerting.resend_s),
                         live=runtime.risk.live_counts if runtime.risk is not None else None,
                         tz=runtime.calendar.tz, pinned=runtime.cluster.pinned)
    runtime.alerts = engine
    return Alerting(engine, client, state, posts=alerting.posts)
