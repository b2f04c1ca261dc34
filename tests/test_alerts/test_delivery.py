"""Alert delivery: the Alertmanager v2 JSON, the outbox (newest version wins, kept on connection errors
and 5xx with back-off, dropped on 4xx), the optional webhook, and the real Alertmanager of the stack."""

from __future__ import annotations

import asyncio
import json
import logging
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TypeVar
from urllib.parse import quote

import aiohttp
import pytest
import pytest_asyncio
from aiohttp import web
from fixtures import free_port
from prometheus_client import CollectorRegistry

from alerts.delivery import Alert, AlertmanagerClient, DeliveryMetrics, backoff_delay, rfc3339
from alerts.exceptions import AlertError

AM_URL = "http://127.0.0.1:9093"
T = TypeVar("T")


def make_alert(name: str = "ChurnHigh", summary: str = "churn 30%", ends_at: float | None = None,
               segment: str = "all", extra: dict[str, str] | None = None) -> Alert:
    labels = {"alertname": name, "severity": "warning", "kpi": f"kpi_{name.lower()}", "window": "1d",
              "segment": segment, **(extra or {})}
    annotations = {"summary": summary, "description": "20 customers at the start",
                   "runbook_url": "https://example.invalid/runbook", "dashboard_url": "https://example.invalid/d"}
    return Alert(labels=labels, annotations=annotations, starts_at=time.time() - 60, ends_at=ends_at)


async def apoll(check: Callable[[], Awaitable[T]], within: float, what: str, interval: float = 0.1) -> T:
    """``fixtures.poll`` inside the event loop: await ``check()`` until it is truthy, failing after ``within`` s."""
    deadline = time.monotonic() + within
    last: T | None = None
    while time.monotonic() < deadline:
        last = await check()
        if last:
            return last
        await asyncio.sleep(interval)  # the poll interval, not a wait for something to happen
    raise AssertionError(f"timed out after {within}s waiting for {what}; last: {last!r}")


@dataclass
class FakeReceiver:
    """An HTTP server standing in for Alertmanager (``/api/v2/alerts``) and a webhook (``/hook``)."""

    url: str = ""
    statuses: list[int] = field(default_factory=list)  # answers to the next POSTs to /api/v2/alerts; then 200
    requests: list[tuple[str, Any]] = field(default_factory=list)

    def bodies(self, path: str) -> list[Any]:
        return [body for p, body in self.requests if p == path]

    async def handle(self, request: web.Request) -> web.Response:
        self.requests.append((request.path, json.loads(await request.text())))
        status = self.statuses.pop(0) if request.path == "/api/v2/alerts" and self.statuses else 200
        return web.Response(status=status, text="" if status == 200 else f"fake error {status}")


@pytest_asyncio.fixture
async def receiver() -> AsyncIterator[FakeReceiver]:
    fake = FakeReceiver()
    app = web.Application()
    app.router.add_post("/api/v2/alerts", fake.handle)
    app.router.add_post("/hook", fake.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    host, port = runner.addresses[0][:2]
    fake.url = f"http://{host}:{port}"
    try:
        yield fake
    finally:
        await runner.cleanup()


def sample(registry: CollectorRegistry, name: str, **labels: str) -> float:
    return registry.get_sample_value(name, labels) or 0.0


# -- the alert itself -------------------------------------------------------------------------------


def test_to_json_is_alertmanager_v2_with_rfc3339_utc() -> None:
    start = datetime(2025, 3, 10, 12, 0, 0, 123000, tzinfo=UTC).timestamp()
    alert = Alert(labels={"alertname": "ChurnHigh", "severity": "critical", "kpi": "churn_rate", "window": "1d",
                          "segment": "plan:pro"},
                  annotations={"summary": "s", "description": "d", "runbook_url": "r", "dashboard_url": "u"},
                  starts_at=start, ends_at=None)
    assert alert.to_json() == {
        "labels": {"alertname": "ChurnHigh", "severity": "critical", "kpi": "churn_rate", "window": "1d",
                   "segment": "plan:pro"},
        "annotations": {"summary": "s", "description": "d", "runbook_url": "r", "dashboard_url": "u"},
        "startsAt": "2025-03-10T12:00:00.123Z",
    }
    ended = Alert(alert.labels, alert.annotations, start, start + 3600.5, generator_url="http://w:6066/kpis")
    assert ended.to_json()["endsAt"] == "2025-03-10T13:00:00.623Z"
    assert ended.to_json()["generatorURL"] == "http://w:6066/kpis"
    assert rfc3339(0) == "1970-01-01T00:00:00.000Z"


def test_key_is_the_sorted_labels_only() -> None:
    a = make_alert(summary="one")
    b = make_alert(summary="two", ends_at=time.time())
    assert a.key() == b.key() == tuple(sorted(a.labels.items()))
    assert make_alert(segment="plan:pro").key() != a.key()


def test_alert_needs_the_contract_labels() -> None:
    with pytest.raises(AlertError, match="severity"):
        Alert(labels={"alertname": "X", "kpi": "k", "window": "1d", "segment": "all"}, annotations={},
              starts_at=0, ends_at=None)
    with pytest.raises(AlertError, match="bad-name"):
        make_alert(extra={"bad-name": "v"})


def test_backoff_doubles_up_to_the_cap_with_jitter() -> None:
    assert [backoff_delay(n, 60, rand=lambda: 1.0) for n in range(9)] == [0, 1, 2, 4, 8, 16, 32, 60, 60]
    assert [backoff_delay(n, 60, rand=lambda: 0.0) for n in range(1, 4)] == [0.5, 1, 2]
    assert backoff_delay(10_000, 60, rand=lambda: 1.0) == 60


# -- the outbox against a fake Alertmanager ----------------------------------------------------------


@pytest.mark.asyncio
async def test_outbox_keeps_the_newest_version_per_alert(receiver: FakeReceiver) -> None:
    registry = CollectorRegistry()
    client = AlertmanagerClient(f"http://127.0.0.1:{free_port()}", metrics=DeliveryMetrics.create(registry))
    try:
        await client.send([make_alert(summary="old")])
        await client.send([make_alert(summary="new"), make_alert(segment="plan:pro")])
        assert client.pending() == 2
        assert sample(registry, "retention_alert_outbox") == 2
        # the second send fell into the back-off: one failed attempt, not two
        assert sample(registry, "retention_alert_delivery_failures_total", reason="connection") == 1

        client.url = receiver.url
        assert await client.flush()
        [posted] = receiver.bodies("/api/v2/alerts")
        assert sorted((a["labels"]["segment"], a["annotations"]["summary"]) for a in posted) == [
            ("all", "new"), ("plan:pro", "churn 30%")]
        assert client.pending() == 0
        assert sample(registry, "retention_alert_outbox") == 0
        assert sample(registry, "retention_alerts_sent_total", alertname="ChurnHigh", status="firing") == 2
    finally:
        await client.close()


@pytest.mark.asyncio
async def test_5xx_keeps_the_outbox_and_4xx_drops_it(
    receiver: FakeReceiver, caplog: pytest.LogCaptureFixture
) -> None:
    registry = CollectorRegistry()
    client = AlertmanagerClient(receiver.url, metrics=DeliveryMetrics.create(registry))
    try:
        receiver.statuses = [503, 400]
        await client.send([make_alert()])
        assert client.pending() == 1
        assert sample(registry, "retention_alert_delivery_failures_total", reason="http_5xx") == 1

        with caplog.at_level(logging.ERROR, logger="alerts.delivery"):
            assert await client.flush()  # 400: dropped, since sending it again cannot succeed
        assert client.pending() == 0
        assert "fake error 400" in caplog.text
        assert sample(registry, "retention_alert_delivery_failures_total", reason="http_4xx") == 1
        assert sample(registry, "retention_alerts_sent_total", alertname="ChurnHigh", status="firing") == 0

        await client.send([make_alert(ends_at=time.time())])  # the back-off was reset by the answer
        assert client.pending() == 0
        assert sample(registry, "retention_alerts_sent_total", alertname="ChurnHigh", status="resolved") == 1
        assert len(receiver.bodies("/api/v2/alerts")) == 3
    finally:
        await client.close()


@pytest.mark.asyncio
async def test_run_retries_after_the_backoff(receiver: FakeReceiver) -> None:
    registry = CollectorRegistry()
    client = AlertmanagerClient(receiver.url, metrics=DeliveryMetrics.create(registry), base_backoff_s=0.05)
    stop = asyncio.Event()
    receiver.statuses = [502, 503]
    try:
        await client.send([make_alert()])
        assert client.pending() == 1
        task = asyncio.create_task(client.run(stop))
        async def delivered() -> bool:
            return client.pending() == 0

        await apoll(delivered, 10, "the background re-delivery")
        stop.set()
        await asyncio.wait_for(task, 5)
        assert len(receiver.bodies("/api/v2/alerts")) == 3
        assert sample(registry, "retention_alert_delivery_failures_total", reason="http_5xx") == 2
        assert sample(registry, "retention_alerts_sent_total", alertname="ChurnHigh", status="firing") == 1
    finally:
        await client.close()


@pytest.mark.asyncio
async def test_webhook_gets_the_same_json(receiver: FakeReceiver) -> None:
    client = AlertmanagerClient(receiver.url, webhook_url=f"{receiver.url}/hook")
    alert = make_alert()
    try:
        await client.send([alert])
        assert client.pending() == 0
        assert receiver.bodies("/hook") == [[alert.to_json()]]
        assert receiver.bodies("/api/v2/alerts") == [[alert.to_json()]]
    finally:
        await client.close()


@pytest.mark.asyncio
async def test_webhook_down_keeps_only_its_own_outbox(receiver: FakeReceiver) -> None:
    client = AlertmanagerClient(receiver.url, webhook_url=f"http://127.0.0.1:{free_port()}/hook")
    try:
        await client.send([make_alert()])
        assert len(receiver.bodies("/api/v2/alerts")) == 1
        assert client.pending() == 1  # still owed to the webhook
        client.webhook_url = f"{receiver.url}/hook"
        assert await client.flush()
        assert len(receiver.bodies("/api/v2/alerts")) == 1  # Alertmanager is not posted twice
        assert len(receiver.bodies("/hook")) == 1
    finally:
        await client.close()


# -- the real Alertmanager of the local stack ----------------------------------------------------------


async def am_alerts(name: str, extra: str = "") -> list[dict[str, Any]]:
    matcher = quote(f'alertname="{name}"')
    query = f"filter={matcher}{extra}"
    async with aiohttp.ClientSession() as session, session.get(f"{AM_URL}/api/v2/alerts?{query}") as resp:
        assert resp.status == 200, await resp.text()
        found: list[dict[str, Any]] = await resp.json()
        return found


@pytest.mark.integration
@pytest.mark.asyncio
async def test_real_alertmanager_fires_and_resolves(stack: str) -> None:
    name = f"TestDelivery{uuid.uuid4().hex[:12]}"
    registry = CollectorRegistry()
    client = AlertmanagerClient(AM_URL, metrics=DeliveryMetrics.create(registry))
    firing = make_alert(name, summary="churn 31%", ends_at=time.time() + 600)
    try:
        await client.send([firing])
        assert client.pending() == 0

        async def shown_active() -> list[dict[str, Any]]:
            return [a for a in await am_alerts(name) if a["status"]["state"] == "active"]

        [shown] = await apoll(shown_active, 20, f"{name} active in Alertmanager")
        assert shown["labels"] == firing.labels
        assert shown["annotations"] == firing.annotations
        assert shown["startsAt"] == firing.to_json()["startsAt"]

        # same labels, new annotations: the same alert, updated
        await client.send([make_alert(name, summary="churn 35%", ends_at=time.time() + 600)])
        await apoll(lambda: _summary_is(name, "churn 35%"), 20, "the updated annotation")
        assert len(await am_alerts(name)) == 1

        await client.send([make_alert(name, summary="recovered", ends_at=time.time())])
        assert client.pending() == 0
        only_active = "&active=true&silenced=false&inhibited=false&unprocessed=false"
        await apoll(lambda: _gone(name, only_active), 20, f"{name} resolved")
        assert sample(registry, "retention_alerts_sent_total", alertname=name, status="firing") == 2
        assert sample(registry, "retention_alerts_sent_total", alertname=name, status="resolved") == 1
    finally:
        await client.close()


async def _summary_is(name: str, summary: str) -> bool:
    return [a["annotations"]["summary"] for a in await am_alerts(name)] == [summary]


async def _gone(name: str, extra: str) -> bool:
    return await am_alerts(name, extra) == []


@pytest.mark.integration
@pytest.mark.asyncio
async def test_alertmanager_down_then_flushed_when_back(stack: str) -> None:
    name = f"TestDelivery{uuid.uuid4().hex[:12]}"
    registry = CollectorRegistry()
    client = AlertmanagerClient(f"http://127.0.0.1:{free_port()}", metrics=DeliveryMetrics.create(registry))
    try:
        await client.send([make_alert(name, ends_at=time.time() + 600)])  # must not raise
        assert client.pending() == 1
        assert sample(registry, "retention_alert_delivery_failures_total", reason="connection") == 1
        assert sample(registry, "retention_alert_outbox") == 1

        client.url = AM_URL
        assert await client.flush()
        assert client.pending() == 0
        assert sample(registry, "retention_alerts_sent_total", alertname=name, status="firing") == 1
        await apoll(lambda: am_alerts(name), 20, f"{name} in Alertmanager")
    finally:
        await client.send([make_alert(name, ends_at=time.time())])  # leave nothing firing behind
        await client.close()
