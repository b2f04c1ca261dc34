"""Delivery of alerts to Alertmanager (``POST /api/v2/alerts``) through an outbox that survives outages.

Design notes: docs/architecture.md, "alerts/delivery.py".
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import aiohttp
from prometheus_client import CollectorRegistry, Counter, Gauge

from alerts.exceptions import AlertError
from core.config import redact_url

log = logging.getLogger(__name__)

REQUIRED_LABELS = ("alertname", "severity", "kpi", "window", "segment")
ANNOTATIONS = ("summary", "description", "runbook_url", "dashboard_url")
_LABEL_NAME = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")  # what Alertmanager 0.25 accepts

LabelKey = tuple[tuple[str, str], ...]


def rfc3339(epoch_s: float) -> str:
    """``epoch_s`` as RFC 3339 in UTC with a ``Z`` and milliseconds, e.g. ``2025-03-10T12:00:00.000Z``."""
    return datetime.fromtimestamp(epoch_s, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass(frozen=True)
class Alert:
    """One alert as Alertmanager sees it; its labels identify it, annotations do not."""

    labels: dict[str, str]
    annotations: dict[str, str]
    starts_at: float
    ends_at: float | None
    generator_url: str = ""

    def __post_init__(self) -> None:
        missing = [name for name in REQUIRED_LABELS if not self.labels.get(name)]
        if missing:
            raise AlertError(f"alert {self.labels!r}: missing or empty labels {', '.join(missing)}")
        bad = [name for name in self.labels if not _LABEL_NAME.match(name)]
        if bad:
            raise AlertError(f"alert {self.labels!r}: invalid label names {', '.join(bad)}")

    def key(self) -> LabelKey:
        """The identity of the alert: its labels, sorted."""
        return tuple(sorted(self.labels.items()))

    def resolved(self, now: float | None = None) -> bool:
        """True when ``ends_at`` is not in the future (Alertmanager treats the alert as resolved)."""
        now = time.time() if now is None else now
        return self.ends_at is not None and self.ends_at <= now

    def to_json(self) -> dict[str, Any]:
        """The Alertmanager v2 API form; ``endsAt`` and ``generatorURL`` are omitted when unset."""
        out: dict[str, Any] = {
            "labels": dict(self.labels),
            "annotations": dict(self.annotations),
            "startsAt": rfc3339(self.starts_at),
        }
        if self.ends_at is not None:
            out["endsAt"] = rfc3339(self.ends_at)
        if self.generator_url:
            out["generatorURL"] = self.generator_url
        return out


@dataclass
class DeliveryMetrics:
    """Counters of delivered alerts and failed attempts, and the outbox size."""

    sent: Counter
    failures: Counter
    outbox: Gauge

    @classmethod
    def create(cls, registry: CollectorRegistry) -> DeliveryMetrics:
        return cls(
            sent=Counter("retention_alerts_sent_total", "Alerts accepted by Alertmanager",
                         ["alertname", "status"], registry=registry),
            failures=Counter("retention_alert_delivery_failures_total",
                             "Failed delivery attempts (connection, http_5xx: retried; http_4xx: dropped)",
                             ["reason"], registry=registry),
            outbox=Gauge("retention_alert_outbox", "Alerts waiting for delivery", registry=registry),
        )


def backoff_delay(failures: int, cap: float, base: float = 1.0, rand: Callable[[], float] = random.random) -> float:
    """Delay before the next attempt after ``failures`` consecutive failures: ``base * 2**(failures-1)``
    capped at ``cap``, with "equal jitter" (between half and all of it) so workers do not retry in step."""
    if failures <= 0:
        return 0.0
    delay = min(cap, base * 2.0 ** min(failures - 1, 62))
    return delay / 2 + rand() * delay / 2


@dataclass
class _Outbox:
    """Alerts waiting for one target, and that target's back-off state."""

    name: str
    alerts: dict[LabelKey, Alert] = field(default_factory=dict)
    failures: int = 0
    next_attempt: float = 0.0  # time.monotonic() before which only an explicit flush() tries


class AlertmanagerClient:
    """Posts alerts to Alertmanager at ``url`` (and, best effort, to a plain ``webhook_url``).

    ``url`` may be changed between attempts. One ``aiohttp.ClientSession`` is created on first use
    (inside the running event loop) and closed by :meth:`close`. The webhook has its own outbox and
    back-off, so one target being down never holds back the other; its failed attempts are counted in
    the same ``retention_alert_delivery_failures_total``, while ``retention_alerts_sent_total`` counts
    only what Alertmanager accepted. A 2xx is success, a 5xx or connection error/timeout is retried,
    any other status is treated as a client error (``http_4xx``) and dropped.
    """

    def __init__(
        self,
        url: str,
        *,
        timeout_s: float = 5,
        max_backoff_s: float = 60,
        metrics: DeliveryMetrics | None = None,
        webhook_url: str | None = None,
        base_backoff_s: float = 1.0,
    ) -> None:
        self.url = url.rstrip("/")
        self.webhook_url = webhook_url
        self.timeout_s = timeout_s
        self.max_backoff_s = max_backoff_s
        self.base_backoff_s = base_backoff_s
        self.metrics = metrics
        self._am = _Outbox("alertmanager")
        self._hook = _Outbox("webhook")
        self._session: aiohttp.ClientSession | None = None
        self._lock = asyncio.Lock()

    # -- public API -------------------------------------------------------------------------------

    async def send(self, alerts: list[Alert]) -> None:
        """Queue ``alerts`` (replacing queued versions with the same labels) and deliver what is due.

        Never raises because of a delivery failure; while a target backs off, alerts only queue.
        """
        for alert in alerts:
            self._am.alerts[alert.key()] = alert
            if self.webhook_url:
                self._hook.alerts[alert.key()] = alert
        self._update_gauge()
        await self._flush(force=False)

    async def flush(self) -> bool:
        """Try to deliver every queued alert now, whatever the back-off; True when the outbox is empty."""
        await self._flush(force=True)
        return self.pending() == 0

    async def run(self, stop: asyncio.Event, idle_s: float = 1.0) -> None:
        """Deliver queued alerts whenever a back-off ends, until ``stop`` is set."""
        while not stop.is_set():
            await self._flush(force=False)
            with contextlib.suppress(TimeoutError):  # the timer: wake when due, at once when stopped
                await asyncio.wait_for(stop.wait(), timeout=self._next_due(idle_s))

    def pending(self) -> int:
        """How many distinct alerts (by labels) are not yet delivered to every target."""
        return len(self._am.alerts.keys() | self._hook.alerts.keys())

    async def close(self) -> None:
        """Close the HTTP session (queued alerts stay queued)."""
        if self._session is not None:
            await self._session.close()
            self._session = None

    # -- internals --------------------------------------------------------------------------------

    def _next_due(self, idle_s: float) -> float:
        now = time.monotonic()
        due = [box.next_attempt - now for box in (self._am, self._hook) if box.alerts]
        return min(idle_s, max(0.01, min(due))) if due else idle_s

    def _update_gauge(self) -> None:
        if self.metrics is not None:
            self.metrics.outbox.set(self.pending())

    async def _flush(self, force: bool) -> None:
        async with self._lock:
            targets: list[tuple[_Outbox, str | None]] = [(self._am, f"{self.url}/api/v2/alerts"),
                                                         (self._hook, self.webhook_url)]
            for box, url in targets:
                if url is None or not box.alerts:
                    box.alerts.clear()
                    continue
                if force or time.monotonic() >= box.next_attempt:
                    await self._post(box, url)
            self._update_gauge()

    def _session_now(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=self.timeout_s))
        return self._session

    async def _post(self, box: _Outbox, url: str) -> None:
        batch = dict(box.alerts)
        body = json.dumps([a.to_json() for a in batch.values()])
        try:
            async with self._session_now().post(url, data=body,
                                                headers={"Content-Type": "application/json"}) as resp:
                status = resp.status
                text = (await resp.text(errors="replace"))[:2000] if status >= 300 else ""
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            self._failed(box, "connection", f"{redact_url(url)}: {type(exc).__name__}: {exc}")
            return
        if 200 <= status < 300:
            self._delivered(box, batch)
        elif status >= 500:
            self._failed(box, "http_5xx", f"{redact_url(url)}: HTTP {status}: {text}")
        else:  # the request itself is wrong: re-sending it cannot help
            log.error("%s rejected %d alert(s) with HTTP %d, dropping them: %s", redact_url(url), len(batch), status,
                      text)
            self._count_failure("http_4xx")
            self._remove(box, batch)
            box.failures, box.next_attempt = 0, 0.0

    def _delivered(self, box: _Outbox, batch: dict[LabelKey, Alert]) -> None:
        if box.failures:
            log.info("%s: delivered %d alert(s) after %d failed attempt(s)", box.name, len(batch), box.failures)
        box.failures, box.next_attempt = 0, 0.0
        self._remove(box, batch)
        if box is self._am and self.metrics is not None:
            now = time.time()
            for alert in batch.values():
                status = "resolved" if alert.resolved(now) else "firing"
                self.metrics.sent.labels(alert.labels["alertname"], status).inc()

    def _failed(self, box: _Outbox, reason: str, detail: str) -> None:
        self._count_failure(reason)
        box.failures += 1
        delay = backoff_delay(box.failures, self.max_backoff_s, self.base_backoff_s)
        box.next_attempt = time.monotonic() + delay
        # warn on the first failure of an outage and every 10th attempt after it; the counter tells the rest
        level = logging.WARNING if box.failures % 10 == 1 else logging.DEBUG
        log.log(level, "%s: delivery of %d alert(s) failed (%s, attempt %d), retrying in %.1fs: %s",
                box.name, len(box.alerts), reason, box.failures, delay, detail)

    def _count_failure(self, reason: str) -> None:
        if self.metrics is not None:
            self.metrics.failures.labels(reason).inc()

    @staticmethod
    def _remove(box: _Outbox, batch: dict[LabelKey, Alert]) -> None:
        """Drop what was posted, but keep versions queued while the request was in flight."""
        for key, alert in batch.items():
            if box.alerts.get(key) is alert:
                del box.alerts[key]
