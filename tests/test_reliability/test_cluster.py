"""Several workers as one cluster: each holds its partitions' share of the KPI store, and any worker's
answer is the whole cluster's, exact — also during a rebalance (then exact or 503, never partial) and
after one of them is killed (its partitions move and are restored). Times are printed (``-s``)."""

from __future__ import annotations

import json
import threading
import time
import urllib.error
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from fixtures import WorkerProcess, converge, first_difference, free_port, get_json, poll
from test_worker_faults import (
    expected_answers,
    owned,
    publish,
    pure_of,
    settings_of,
    simulate,
    worker_answers,
    worker_env,
)

pytestmark = pytest.mark.integration

SESSION_TIMEOUT_S = 10.0  # streams.worker.faust_app.SESSION_TIMEOUT_S


def second(env: dict[str, str], suffix: str) -> dict[str, str]:
    return {**env, "RETENTION_WEB_PORT": str(free_port()), "RETENTION_DATA_DIR": env["RETENTION_DATA_DIR"] + suffix}


class Watcher:
    """Asks a worker for a KPI answer again and again; keeps every answer that was neither exact nor 503."""

    def __init__(self, worker: WorkerProcess, period: str, want: Any) -> None:
        self.worker, self.period, self.want = worker, period, want
        self.exact = self.unavailable = 0
        self.wrong: list[Any] = []
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.is_set():
            try:
                answer = get_json(f"{self.worker.url}/kpis?period={self.period}&segment=all")
            except urllib.error.HTTPError as exc:
                if exc.code == 503:
                    self.unavailable += 1
                else:
                    self.wrong.append(f"HTTP {exc.code}")
                continue
            except OSError:
                continue
            info = answer.pop("worker")
            if answer == self.want:
                self.exact += 1
            else:
                answer["worker"] = info
                self.wrong.append(answer)


@contextmanager
def watching(worker: WorkerProcess, period: str, want: Any) -> Iterator[Watcher]:
    watcher = Watcher(worker, period, want)
    thread = threading.Thread(target=watcher.run, daemon=True)
    thread.start()
    try:
        yield watcher
    finally:
        watcher.stop.set()
        thread.join(30)


def test_a_query_during_a_rebalance_is_exact_or_503(stack: str) -> None:
    env = worker_env()
    settings = settings_of(env)
    messages = simulate(settings, seed=51)
    pure = pure_of(settings, messages)
    expected = expected_answers(pure)
    want = expected["2025-Q1 all"]
    a, b = WorkerProcess(env), WorkerProcess(second(env, "-b"))
    try:
        a.start()
        publish(stack, messages)
        converge(lambda: worker_answers(a, pure), expected, "exact KPIs on one worker", 90)
        with watching(a, "2025-Q1", want) as watcher:
            b.start(timeout=120)  # joins: the partitions are split, b restores its share
            poll(lambda: bool(owned(b)) and bool(owned(a)), 60, "both workers to own partitions")
            converge(lambda: [worker_answers(w, pure) for w in (a, b)], [expected] * 2, "exact KPIs on both", 90)
            b.stop()  # leaves: a takes every partition back
            converge(lambda: worker_answers(a, pure), expected, "exact KPIs on a again", 90)
        print(f"\n[rebalance] answers while b joined and left: {watcher.exact} exact, {watcher.unavailable} "
              f"503, {len(watcher.wrong)} other")
        assert [(w["worker"], first_difference({k: v for k, v in w.items() if k != "worker"}, want))
                if isinstance(w, dict) else w for w in watcher.wrong] == []
        assert watcher.exact > 0
    finally:
        a.stop()
        b.stop()


def test_kill_9_of_one_of_two_workers_hands_its_partitions_over(stack: str) -> None:
    env = worker_env(RETENTION_CHECKPOINT_INTERVAL="1s")
    settings = settings_of(env)
    messages = simulate(settings, seed=52)
    pure = pure_of(settings, messages)
    expected = expected_answers(pure)
    a, b = WorkerProcess(env), WorkerProcess(second(env, "-b"))
    try:
        a.start()
        b.start(timeout=120)
        publish(stack, messages)
        poll(lambda: bool(owned(a)) and bool(owned(b)), 60, "both workers to own partitions")
        converge(lambda: [worker_answers(w, pure) for w in (a, b)], [expected] * 2, "exact KPIs on both", 90)
        lost = owned(b)
        assert b.proc is not None
        killed = time.monotonic()
        b.proc.kill()
        b.proc.wait(timeout=10)
        poll(lambda: sorted(owned(a)) == [0, 1, 2, 3], 60, "a to own every partition")
        taken = time.monotonic() - killed
        converge(lambda: worker_answers(a, pure), expected, "exact KPIs on a alone", 90)
        exact = time.monotonic() - killed
        print(f"\n[hand-over] b (partitions {lost}) killed; a owned them after {taken:.1f}s, exact KPIs after "
              f"{exact:.1f}s (session timeout {SESSION_TIMEOUT_S:.0f}s)")
        gauges = json.loads(json.dumps(a.kpis("2025-Q1")["worker"]))
        assert sorted(gauges["partitions"]) == [0, 1, 2, 3]
    finally:
        a.stop()
        b.stop()
