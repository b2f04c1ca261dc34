"""The worker's alert task posts only when alert_path lets the stream engine page."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from streams.worker.alerting import Alerting


class Recorder:
    """Stands in for the engine and the Alertmanager client: records which of their loops ran."""

    def __init__(self, calls: list[str], name: str) -> None:
        self.calls = calls
        self.name = name

    async def run(self, stop: asyncio.Event) -> None:
        self.calls.append(f"{self.name}.run")

    async def close(self) -> None:
        self.calls.append(f"{self.name}.close")


@pytest.mark.parametrize(("posts", "expected"), [
    (True, ["engine.run", "client.run", "client.close"]),
    (False, []),  # alert_path = "prometheus": the Prometheus rules page, the engine only answers /alerts
])
def test_the_alert_task_runs_the_engine_only_when_it_posts(posts: bool, expected: list[str]) -> None:
    calls: list[str] = []
    engine: Any = Recorder(calls, "engine")
    client: Any = Recorder(calls, "client")
    state: Any = None  # the Redis state is used by the engine alone
    asyncio.run(Alerting(engine, client, state, posts=posts).run())
    assert calls == expected
