"""The route stage in its own process (``route = process``, the default) against the real Kafka: a worker
killed with -9 leaves no route process behind, a killed route process is replaced, and neither loses or
double-counts an event; its dead letters and lag reach the worker's /metrics."""

from __future__ import annotations

import os
import signal
from pathlib import Path
from typing import Any

import pytest
from fixtures import WorkerProcess, encode, event, isolated_env, metric_value, poll, produce, running_worker

pytestmark = pytest.mark.integration


def children(pid: int) -> list[int]:
    """The worker's route processes (multiprocessing's resource tracker is a child too: not counted)."""
    path = Path(f"/proc/{pid}/task/{pid}/children")
    found = [int(p) for p in path.read_text().split()] if path.exists() else []
    return [p for p in found if b"spawn_main" in _cmdline(p)]


def _cmdline(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0]
    except OSError:
        return False
    return state != "Z"  # a zombie has exited; only its parent's wait() is missing


def route_child(worker: WorkerProcess) -> int:
    assert worker.proc is not None
    found: list[int] = poll(lambda: children(worker.proc.pid), 30, "the worker's route process")  # type: ignore[union-attr]
    assert len(found) == 1, found
    return found[0]


def signups(env: dict[str, str], first: int, n: int) -> list[tuple[str, bytes | None, bytes]]:
    events = [event("customer.signed_up", "2025-01-05T10:00:00Z", {"customer_id": f"c{i}"}, id_=f"s{i}")
              for i in range(first, first + n)]
    return [(env["RETENTION_TOPIC_LIFECYCLE"], e["data"]["customer_id"].encode(), encode(e)) for e in events]


def new_customers(worker: WorkerProcess) -> Any:
    return worker.kpis("2025-01")["inputs"]["N"]


def test_a_worker_killed_with_9_leaves_no_route_process_and_loses_nothing(stack: str) -> None:
    env = isolated_env(RETENTION_CLOCK="event", RETENTION_ROUTE="process")
    produce(stack, signups(env, 0, 40))
    worker = WorkerProcess(env).start()
    try:
        poll(lambda: new_customers(worker) == 40, 60, "the first 40 sign-ups")
        child = route_child(worker)
        assert worker.proc is not None
        worker.proc.kill()
        worker.proc.wait()
        poll(lambda: not alive(child), 15, f"the route process {child} to exit with its parent")
    finally:
        worker.stop()
    produce(stack, signups(env, 30, 30))  # 10 of them again: duplicates
    with running_worker(env) as again:
        poll(lambda: new_customers(again) == 60, 60, "60 customers after the restart, none twice")


def test_a_killed_route_process_is_replaced_and_reports_to_the_worker(stack: str) -> None:
    env = isolated_env(RETENTION_CLOCK="event", RETENTION_ROUTE="process")
    with running_worker(env) as worker:
        produce(stack, signups(env, 0, 20))
        poll(lambda: new_customers(worker) == 20, 60, "the first 20 sign-ups")
        first = route_child(worker)
        os.kill(first, signal.SIGKILL)
        poll(lambda: [c for c in children(worker.proc.pid) if c != first and alive(c)], 60,  # type: ignore[union-attr]
             "a new route process")
        bad = (env["RETENTION_TOPIC_LIFECYCLE"], b"x", b"{not json")
        produce(stack, [*signups(env, 10, 30), bad])
        poll(lambda: new_customers(worker) == 40, 60, "40 customers, the 10 repeated ones once")

        def rejected() -> float | None:
            return metric_value(worker.metrics(), "retention_events_rejected_total", {"reason": "not_json"})

        poll(lambda: rejected() == 1, 30, "the route process's dead letter counted in the worker's /metrics")

        def route_lags() -> list[str]:  # reported every half second, once the new member owns partitions
            return [line for line in worker.metrics().splitlines()
                    if line.startswith("retention_consumer_lag_records{") and 'stage="route"' in line]

        poll(route_lags, 30, "the route process's lag in the worker's /metrics")
