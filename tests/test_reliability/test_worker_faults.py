"""Worker faults under load: SIGKILL and restart (persistent store), scaling 1 -> 3 -> 2, a Kafka broker restart.

Each test publishes the same seeded simulated history (about 60 days from 2025-01-01) and requires the
worker's KPI query to end up *exactly* equal to :class:`fixtures.PurePipeline` fed with the same events
(the worker's logic without Kafka): redeliveries after a crash, rebalances and broker outages must not
change any KPI. Times to recover are printed (run with ``-s``).
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from alert_fixtures import Receiver, alertmanager
from fixtures import WorkerProcess, converge, free_port, isolated_env, poll, produce, samples, topic_size
from pure_pipeline import PurePipeline

from core.config import load_settings
from core.settings import Settings
from metrics.gauges import owner
from retention_monitor.stack import StackConfig
from retention_monitor.stack.kafka import Kafka
from retention_monitor.stack.process import spawn, stop, wait_ready
from streams.producers.simulate import Message, Simulator

pytestmark = pytest.mark.integration

PARTITIONS = 4
START_US = 1_735_689_600_000_000  # 2025-01-01T00:00:00Z
COUNT = 3000  # ~60 days of event time
SCALE_COUNT = 30_000
PERIODS = ["2025-01", "2025-02", "2025-Q1"]
GAUGES = ("retention_customer_retention_ratio", "retention_customers_active")


# -- helpers -----------------------------------------------------------------------------------------


def worker_env(**extra: str) -> dict[str, str]:
    # clock = event: windows end at the newest event (history replay); allowed lateness above the span of
    # the history, so that how Kafka interleaves the input topics cannot reject anything (README).
    return isolated_env(RETENTION_CLOCK="event", RETENTION_ALLOWED_LATENESS="120d", **extra)


def settings_of(env: dict[str, str]) -> Settings:
    return load_settings(env=env).settings


def simulate(settings: Settings, seed: int, count: int = COUNT) -> list[Message]:
    sim = Simulator(settings.facts, settings.topics, seed=seed, scenario="churn-spike", customers=max(300, count // 10))
    return list(sim.events(START_US, count=count, rate=count / (60 * 86_400)))


def pure_of(settings: Settings, messages: list[Message]) -> PurePipeline:
    return PurePipeline(settings).send(*(json.loads(value) for _, _, value in messages))


def segments_of(pure: PurePipeline) -> list[str]:
    keys: list[str] = list(pure.processor.ctx.segmenter.all_keys())
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


def owned(worker: WorkerProcess) -> list[int]:
    partitions: list[int] = worker.kpis("2025")["worker"]["partitions"]
    return partitions


def checkpoint_positions(meta: Path) -> int:
    """Changelog entries a KPI store checkpoint covers (0 when there is none yet)."""
    try:
        return sum(json.loads(meta.read_text())["positions"].values())
    except (OSError, ValueError):
        return 0


def log_tail(worker: WorkerProcess, chars: int = 3000) -> str:
    try:
        return worker.log.read_text(errors="replace")[-chars:]
    except OSError:
        return "(no log)"


@contextmanager
def pager(tmp: Path) -> Iterator[tuple[dict[str, str], Callable[[], None]]]:
    """A real Alertmanager paging a local receiver, and a churn rule the churn-spike history breaches and
    keeps breaching (``keep_firing_for`` outlasts the test): whichever workers own segment ``all`` across
    a fault, it must page exactly once. Yields the workers' settings and the check."""
    receiver = Receiver()
    name = f"FaultChurn{uuid.uuid4().hex[:8]}"
    rules = tmp / "rules.yml"
    rules.write_text(f"""
rules:
  - name: {name}
    kpi: churn_rate
    window: 30d
    segments: [all]
    op: ">"
    threshold: 0.001
    min_samples: 10
    for: 0s
    keep_firing_for: 1h
    severity: critical
    summary: "Churn {{value:.0%}} over 30 days"
""")
    with alertmanager(tmp, receiver.port) as url:
        env = {"RETENTION_ALERTMANAGER_URL": url, "RETENTION_ALERT_RULES": str(rules),
               "RETENTION_ALERT_INTERVAL": "1s"}  # fmt: skip

        def paged_once() -> None:
            firing = poll(lambda: receiver.alerts(name, "firing"), 60, "the churn page")
            pages = {alert["startsAt"] for alert in firing}
            assert len(pages) == 1, f"paged more than once: {pages}"
            assert receiver.alerts(name, "resolved") == []

        yield env, paged_once


# -- 1. SIGKILL mid-stream -----------------------------------------------------------------------------


@pytest.mark.parametrize("store", ["rocksdb://", "memory://"])
def test_kill_9_mid_stream_then_restart(stack: str, store: str) -> None:
    env = worker_env(RETENTION_STORE=store, RETENTION_CHECKPOINT_INTERVAL="1s")
    settings = settings_of(env)
    messages = simulate(settings, seed=41, count=SCALE_COUNT)
    first, second = messages[: SCALE_COUNT // 2], messages[SCALE_COUNT // 2 :]
    pure = pure_of(settings, messages)
    expected = expected_answers(pure)

    worker = WorkerProcess(env)
    again = WorkerProcess(env)  # same app id, topics, port and data dir
    try:
        worker.start()
        checkpoint = Path(env["RETENTION_DATA_DIR"]) / env["RETENTION_APP_ID"] / "kpi-checkpoint" / "meta.json"
        with background_publisher(stack, first):
            poll(lambda: applied([worker]) >= 3000, 60, "part of the first half applied", 0.02)
            poll(lambda: checkpoint_positions(checkpoint) >= 1000, 60, "a KPI store checkpoint of 1000+ entries", 0.05)
            at_kill = applied([worker])
            assert worker.proc is not None
            worker.proc.kill()  # SIGKILL: no commit, no flush, no leave-group
            worker.proc.wait(timeout=10)
        print(f"\n[kill -9 {store}] killed after {at_kill:.0f} events applied (of {len(first)} being published)")
        checkpointed = checkpoint_positions(checkpoint)  # the killed worker's last
        # The changelog as the kill left it: the new process restores from it, then writes more while its
        # follower is still catching up, so what the follower read by then says nothing exact about it.
        at_restart = topic_size(stack, settings.topics.changelog, settings.topics.partitions)

        began = time.monotonic()
        again.start(timeout=120)
        ready = time.monotonic() - began
        restored = again.metric_sum("retention_state_restored_total")
        info = again.kpis("2025")["worker"]
        publish(stack, second)
        converge(lambda: worker_answers(again, pure), expected, "exact KPIs after kill -9 and restart", 120)
        exact = time.monotonic() - began
        print(
            f"[kill -9 {store}] restart -> ready {ready:.1f}s, -> exact KPIs {exact:.1f}s; changelog entries "
            f"read to restore the states: {restored:.0f}; the KPI store resumed from its checkpoint at "
            f"{checkpointed} entries and read {info['changelog_read_to_catch_up']} to catch up; "
            f"events applied by the new process: {applied([again]):.0f}"
        )
        assert info["changelog_started_at"] == checkpointed > 0  # from the checkpoint, not from the start
        # the follower read the changelog from the checkpoint to (at least) where the kill left it
        assert info["changelog_started_at"] + info["changelog_read_to_catch_up"] >= at_restart
        if store == "rocksdb://":  # the local store survived: only what it had not written yet is read again
            assert restored < at_restart, (restored, at_restart)
        else:  # memory: every entry of every (owned) partition is read again
            assert restored == at_restart, (restored, at_restart)
    finally:
        worker.stop()
        again.stop()


def test_graceful_restart_reads_only_what_changed(stack: str) -> None:
    """A clean stop checkpoints the KPI store and (rocksdb) keeps the states: the restart re-reads nothing."""
    env = worker_env(RETENTION_STORE="rocksdb://")
    settings = settings_of(env)
    messages = simulate(settings, seed=44)
    pure = pure_of(settings, messages)
    expected = expected_answers(pure)
    worker = WorkerProcess(env)
    try:
        worker.start()
        publish(stack, messages)
        converge(lambda: worker_answers(worker, pure), expected, "exact KPIs before the restart", 60)
        read_first = worker.kpis("2025")["worker"]["changelog_read_to_catch_up"] or worker.kpis("2025")["worker"][
            "changelog_records"]
        worker.stop()
        began = time.monotonic()
        worker.start()
        ready = time.monotonic() - began
        assert worker_answers(worker, pure) == expected  # exact at once: nothing was re-read
        info = worker.kpis("2025")["worker"]
        restored = worker.metric_sum("retention_state_restored_total")
        print(f"\n[restart] ready {ready:.1f}s; changelog entries read: states {restored:.0f}, KPI store "
              f"{info['changelog_read_to_catch_up']} (it started at entry {info['changelog_started_at']}; "
              f"the first start read {read_first})")
        assert restored == 0
        assert info["changelog_read_to_catch_up"] == 0
        assert info["changelog_started_at"] > 0
    finally:
        worker.stop()


# -- 2. scale 1 -> 3 -> 2 under load -------------------------------------------------------------------


def export_problems(workers: dict[str, WorkerProcess], pure: PurePipeline) -> dict[str, Any]:
    """Everything wrong with the gauges of ``GAUGES`` over the live workers ({} when all is well)."""
    parts = {name: owned(w) for name, w in workers.items()}
    scraped = {name: samples(w.fresh_metrics()) for name, w in workers.items()}
    if parts != {name: owned(w) for name, w in workers.items()}:
        return {"rebalancing while scraping": parts}
    problems: dict[str, Any] = {}
    flat = sorted(p for ps in parts.values() for p in ps)
    if flat != list(range(PARTITIONS)):
        problems["partitions"] = parts
    exporters: dict[Any, list[str]] = {}
    for name, text in scraped.items():
        for s, value in text.items():
            if s[0] not in GAUGES:
                continue
            exporters.setdefault(s, []).append(name)
            segment = dict(s[1]).get("segment", "all")
            if owner(segment, PARTITIONS) not in parts[name]:
                problems.setdefault("exported by a non-owner", []).append((name, s, parts[name]))
            if s[0] == "retention_customers_active":
                want = pure.kpis("2025", segment)["customers_active_at_end"]
                if value != want:
                    problems.setdefault("wrong customers_active", []).append((name, s, value, want))
    twice = {s: names for s, names in exporters.items() if len(names) != 1}
    if twice:
        problems["exported more than once"] = twice
    missing = [seg for seg in segments_of(pure) if ("retention_customers_active", (("segment", seg),)) not in exporters]
    if missing:
        problems["customers_active not exported for"] = missing
    return problems


def test_scale_1_3_2_under_load(stack: str, tmp_path: Path) -> None:
    """Events keep arriving while two workers join and while one of the three leaves; the churn alert
    pages once."""
    with pager(tmp_path) as (paging, paged_once):
        env_a = worker_env(**paging)
        settings = settings_of(env_a)
        messages = simulate(settings, seed=42, count=SCALE_COUNT)
        pure = pure_of(settings, messages)
        a, b, c = (WorkerProcess(env_a), WorkerProcess(other_worker(env_a, "-b")),
                   WorkerProcess(other_worker(env_a, "-c")))  # fmt: skip
        try:
            live = scale_1_3_2(stack, (a, b, c), messages, pure)
            converge(lambda: export_problems(live, pure), {}, "each gauge series exported once, by its owner", 90)
            paged_once()
        finally:
            for w in (a, b, c):
                w.stop()


def other_worker(env: dict[str, str], suffix: str) -> dict[str, str]:
    """The settings of another worker of the same app id: its own web port and data dir."""
    return {**env, "RETENTION_WEB_PORT": str(free_port()), "RETENTION_DATA_DIR": env["RETENTION_DATA_DIR"] + suffix}


def scale_1_3_2(stack: str, workers: tuple[WorkerProcess, WorkerProcess, WorkerProcess], messages: list[Message],
                pure: PurePipeline) -> dict[str, WorkerProcess]:  # fmt: skip
    """a alone, b and c join while a third of the events arrives, a stops during the last third; the two
    left must answer exactly. Returns them."""
    a, b, c = workers
    third = len(messages) // 3
    first, during_joins, during_stop = messages[:third], messages[third : 2 * third], messages[2 * third :]
    a.start()
    publish(stack, first)
    began = time.monotonic()
    with background_publisher(stack, during_joins) as published:
        joiners = [threading.Thread(target=w.start, kwargs={"timeout": 120}, daemon=True) for w in (b, c)]
        for t in joiners:
            t.start()
        for t in joiners:
            t.join(150)
    assert published(), "publishing during the joins did not finish"
    for w in (b, c):
        poll(lambda w=w: bool(owned(w)), 60, f"{w.url} to own partitions")  # type: ignore[misc]
    print(f"\n[scale] 3 workers own partitions {[owned(w) for w in (a, b, c)]} "
          f"{time.monotonic() - began:.1f}s after the joins began")  # fmt: skip
    with background_publisher(stack, during_stop) as published:
        a.stop()  # 3 -> 2 (graceful), while events keep coming
        stopped = time.monotonic()
    assert published(), "publishing during the stop did not finish"
    live = {"b": b, "c": c}
    expected = expected_answers(pure)
    converge(lambda: [worker_answers(w, pure) for w in live.values()], [expected] * 2,
             "exact KPIs on the 2 remaining workers", 90)  # fmt: skip
    print(f"[scale] 2 workers exact {time.monotonic() - stopped:.1f}s after the stop; "
          f"partitions {[owned(w) for w in live.values()]}")  # fmt: skip
    return live


@contextmanager
def background_publisher(bootstrap: str, messages: list[Message]) -> Iterator[Callable[[], bool]]:
    """Publish ``messages`` in slices from a thread while the block runs; yields "did it all go out"."""
    errors: list[BaseException] = []

    def run() -> None:
        try:
            for i in range(0, len(messages), 200):
                publish(bootstrap, messages[i : i + 200])
        except BaseException as exc:  # reported by the main thread
            errors.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    try:
        yield lambda: not thread.is_alive() and not errors
    finally:
        thread.join(120)
        assert not errors, errors


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


def test_broker_restart_under_load(own_kafka: Kafka, tmp_path: Path) -> None:
    """Two workers lose their only broker mid-stream; both answer exactly afterwards, the alert pages once."""
    bootstrap = own_kafka.address
    with pager(tmp_path) as (paging, paged_once):
        env = worker_env(RETENTION_KAFKA_BOOTSTRAP=bootstrap, **paging)
        settings = settings_of(env)
        messages = simulate(settings, seed=43)
        first, second = messages[: COUNT // 2], messages[COUNT // 2 :]
        pure = pure_of(settings, messages)
        expected = expected_answers(pure)
        workers = [WorkerProcess(env), WorkerProcess(other_worker(env, "-b"))]
        try:
            for w in workers:
                w.start(timeout=120)
            publish(bootstrap, first)
            poll(lambda: applied(workers) > 200, 60, "part of the first half to be applied", interval=0.05)

            down_at = time.monotonic()
            assert asyncio.run(stop(own_kafka.pid_file, own_kafka.stop_timeout)), "the broker was not running"
            broker_up = start_kafka(own_kafka)
            outage = time.monotonic() - down_at
            for w in workers:
                assert w.proc is not None
                assert w.proc.poll() is None, f"a worker exited during the outage: {log_tail(w)}"

            publish(bootstrap, second)
            try:
                converge(lambda: [worker_answers(w, pure) for w in workers], [expected] * 2,
                         "exact KPIs on both workers after the broker restart", 120)  # fmt: skip
            except AssertionError as exc:
                tails = "\n".join(log_tail(w) for w in workers)
                raise AssertionError(f"{exc}\n--- worker log tails ---\n{tails}") from exc
            recovered = time.monotonic() - down_at
            print(f"\n[broker] outage {outage:.1f}s (restart ready in {broker_up:.1f}s); exact KPIs on both "
                  f"workers {recovered:.1f}s after the broker went down, {recovered - outage:.1f}s after it was back")
            paged_once()
        finally:
            for w in workers:
                w.stop()
