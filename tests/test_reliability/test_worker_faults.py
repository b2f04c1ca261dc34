"""Worker faults under load: SIGKILL and restart, and a Kafka broker restart (scaling 1 -> 3 -> 2 is kept
out of the suite while it is flaky under load: see the issue 6 note and commit 7b66af2).

Each test publishes the same seeded simulated history (about 60 days from 2025-01-01) and requires the
worker's KPI query to end up *exactly* equal to :class:`fixtures.PurePipeline` fed with the same events
(the worker's logic without Kafka): redeliveries after a crash, rebalances and broker outages must not
change any KPI. Times to recover are printed (run with ``-s``).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from fixtures import PurePipeline, WorkerProcess, converge, free_port, isolated_env, poll, produce

from retention_monitor.stack import StackConfig
from retention_monitor.stack.kafka import Kafka
from retention_monitor.stack.process import spawn, stop, wait_ready
from streams.config import Settings, load_settings
from streams.simulate import Message, Simulator

pytestmark = pytest.mark.integration

PARTITIONS = 4
START_US = 1_735_689_600_000_000  # 2025-01-01T00:00:00Z
COUNT = 3000
RATE = COUNT / (60 * 86_400)  # ~60 days of event time
PERIODS = ["2025-01", "2025-02", "2025-Q1"]
GAUGES = ("retention_customer_retention_ratio", "retention_customers_active")


# -- helpers -----------------------------------------------------------------------------------------


def worker_env(**extra: str) -> dict[str, str]:
    # clock = event: windows end at the newest event (history replay); allowed lateness above the span of
    # the history, so that how Kafka interleaves the input topics cannot reject anything (README).
    return isolated_env(RETENTION_CLOCK="event", RETENTION_ALLOWED_LATENESS="120d", **extra)


def settings_of(env: dict[str, str]) -> Settings:
    return load_settings(env=env).settings


def simulate(settings: Settings, seed: int) -> list[Message]:
    sim = Simulator(settings, seed=seed, scenario="churn-spike", customers=300)
    return list(sim.events(START_US, count=COUNT, rate=RATE))


def pure_of(settings: Settings, messages: list[Message]) -> PurePipeline:
    return PurePipeline(settings).send(*(json.loads(value) for _, _, value in messages))


def segments_of(pure: PurePipeline) -> list[str]:
    keys: list[str] = list(pure.processors[0].ctx.segmenter.all_keys())
    return keys


def checked_segments(pure: PurePipeline) -> list[str]:
    """``all`` and the busiest dimension segment (so that a segment with real numbers is compared)."""
    busiest = max(
        (s for s in segments_of(pure) if s != "all"), key=lambda s: pure.kpis("2025-Q1", s)["customers_active_at_end"]
    )
    return ["all", busiest]


def expected_answers(pure: PurePipeline) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for segment in checked_segments(pure):
        for period in PERIODS:
            answer = json.loads(json.dumps(pure.answer(period, segment)))
            answer["timezone"] = pure.settings.timezone
            out[f"{period} {segment}"] = answer
    return out


def worker_answers(worker: WorkerProcess, pure: PurePipeline) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for segment in checked_segments(pure):
        for period in PERIODS:
            answer = worker.kpis(period, segment)
            answer.pop("worker")
            out[f"{period} {segment}"] = answer
    return out


def publish(bootstrap: str, messages: list[Message]) -> None:
    produce(bootstrap, [(topic, key, value) for topic, key, value in messages])


def applied(workers: list[WorkerProcess]) -> float:
    return sum(w.metric_sum("retention_events_total") for w in workers)


def log_tail(worker: WorkerProcess, chars: int = 3000) -> str:
    try:
        return worker.log.read_text(errors="replace")[-chars:]
    except OSError:
        return "(no log)"


# -- 1. SIGKILL mid-stream -----------------------------------------------------------------------------


def test_kill_9_mid_stream_then_restart(stack: str) -> None:
    env = worker_env()
    settings = settings_of(env)
    messages = simulate(settings, seed=41)
    first, second = messages[: COUNT // 2], messages[COUNT // 2 :]
    pure = pure_of(settings, messages)
    expected = expected_answers(pure)

    worker = WorkerProcess(env)
    again = WorkerProcess(env)  # same app id, topics, port and data dir
    try:
        worker.start()
        publish(stack, first)
        at_kill = poll(lambda: max(0.0, applied([worker]) - 200), 60, "part of the first half applied", 0.02) + 200
        assert worker.proc is not None
        worker.proc.kill()  # SIGKILL: no commit, no flush, no leave-group
        worker.proc.wait(timeout=10)
        print(f"\n[kill -9] killed after {at_kill:.0f} events applied (of {len(first)} published)")

        began = time.monotonic()
        again.start(timeout=120)
        ready = time.monotonic() - began
        publish(stack, second)
        converge(lambda: worker_answers(again, pure), expected, "exact KPIs after kill -9 and restart", 120)
        exact = time.monotonic() - began
        print(
            f"[kill -9] restart -> ready {ready:.1f}s, -> exact KPIs {exact:.1f}s; "
            f"events applied by the new process: {applied([again]):.0f}"
        )
    finally:
        worker.stop()
        again.stop()


# -- 2. scale 1 -> 3 -> 2 under load: flaky under load, out of the suite until understood (issue 6) --------


# -- 3. broker restart under load --------------------------------------------------------------------


def start_kafka(kafka: Kafka) -> float:
    async def run() -> None:
        await kafka.prepare(lambda _message: None)
        pid = spawn(kafka.argv(), kafka.pid_file, kafka.log_file)
        await wait_ready(kafka, pid)

    began = time.monotonic()
    asyncio.run(run())
    return time.monotonic() - began


@pytest.fixture
def own_kafka(tmp_path: Path) -> Iterator[Kafka]:
    """A separate single-node Kafka on free ports, in a temporary home (Kafka only)."""
    cfg = replace(StackConfig(home=tmp_path / "stack"), kafka_port=free_port(), kafka_controller_port=free_port())
    kafka = Kafka(cfg)
    try:
        start_kafka(kafka)
        yield kafka
    finally:
        asyncio.run(stop(kafka.pid_file, kafka.stop_timeout))


def test_broker_restart_under_load(own_kafka: Kafka) -> None:
    bootstrap = own_kafka.address
    env = worker_env(RETENTION_KAFKA_BOOTSTRAP=bootstrap)
    settings = settings_of(env)
    messages = simulate(settings, seed=43)
    first, second = messages[: COUNT // 2], messages[COUNT // 2 :]
    pure = pure_of(settings, messages)
    expected = expected_answers(pure)

    worker = WorkerProcess(env)
    try:
        worker.start(timeout=120)
        publish(bootstrap, first)
        poll(lambda: applied([worker]) > 200, 60, "part of the first half to be applied", interval=0.05)

        down_at = time.monotonic()
        assert asyncio.run(stop(own_kafka.pid_file, own_kafka.stop_timeout)), "the broker was not running"
        broker_up = start_kafka(own_kafka)
        outage = time.monotonic() - down_at
        assert worker.proc is not None
        assert worker.proc.poll() is None, f"the worker exited during the outage: {log_tail(worker)}"

        publish(bootstrap, second)
        try:
            converge(lambda: worker_answers(worker, pure), expected, "exact KPIs after the broker restart", 120)
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n--- worker log tail ---\n{log_tail(worker)}") from exc
        recovered = time.monotonic() - down_at
        print(
            f"\n[broker] outage {outage:.1f}s (restart ready in {broker_up:.1f}s); exact KPIs "
            f"{recovered:.1f}s after the broker went down, {recovered - outage:.1f}s after it was back"
        )
        assert worker.proc.poll() is None
    finally:
        worker.stop()
