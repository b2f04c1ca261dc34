"""How ``stack up`` decides a service is ready, slow but busy, or stuck (unit: scripted services, no stack)."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from pathlib import Path

import pytest

from retention_monitor.exceptions import StackError
from retention_monitor.stack import StackConfig
from retention_monitor.stack.kafka import LOADED_MARKER, READY_MARKER, Kafka, LogTail
from retention_monitor.stack.process import Report, Service, spawn, stop, wait_ready


class Scripted(Service):
    """A live ``sleep`` that turns ready after ``ready_after`` probes; ``moving`` says whether progress moves."""

    name = "scripted"
    ready_timeout = 0.5
    ready_cap = 30.0

    def __init__(self, cfg: StackConfig, *, ready_after: int, moving: bool) -> None:
        super().__init__(cfg)
        self.ready_after, self.moving, self.probes = ready_after, moving, 0

    @property
    def ports(self) -> tuple[int, ...]:
        return (1,)

    async def prepare(self, report: Report) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)

    def argv(self) -> list[str]:
        return ["sleep", "60"]

    async def probe(self) -> bool:
        self.probes += 1
        return self.probes > self.ready_after

    def progress(self) -> str | None:
        return f"step {self.probes if self.moving else min(self.probes, 1)}"


def run(service: Service) -> list[str]:
    """Start ``service``, wait until ready; the progress messages it reported on the way."""
    reported: list[str] = []

    async def go() -> None:
        await service.prepare(reported.append)
        pid = spawn(service.argv(), service.pid_file, service.log_file)
        try:
            await wait_ready(service, pid, reported.append)
        finally:
            await stop(service.pid_file, 2.0)

    asyncio.run(go())
    return reported


@pytest.fixture
def cfg(tmp_path: Path) -> StackConfig:
    return replace(StackConfig(), home=tmp_path, kafka_port=1)


def test_a_start_that_keeps_moving_may_outlast_the_timeout(cfg: StackConfig) -> None:
    service = Scripted(cfg, ready_after=12, moving=True)  # polls back off to 0.5 s: about 3 s in all
    reported = run(service)
    assert service.probes == 13
    assert reported[-1] == "step 12"


def test_a_start_that_stops_moving_fails_naming_where_it_stopped(cfg: StackConfig) -> None:
    with pytest.raises(StackError, match=r"^scripted not ready after \d+s at step 1: "):
        run(Scripted(cfg, ready_after=1_000, moving=False))


def test_progress_never_extends_a_start_beyond_the_cap(cfg: StackConfig) -> None:
    service = Scripted(cfg, ready_after=1_000, moving=True)
    service.ready_cap = 1.0
    with pytest.raises(StackError, match=r"^scripted not ready after 1s at step \d+: "):
        run(service)


def test_a_log_tail_hands_out_complete_lines_once_and_follows_a_roll_over(tmp_path: Path) -> None:
    log = tmp_path / "server.log"
    log.write_bytes(b"old line\n")
    tail = LogTail(log, log.stat().st_size)
    with log.open("ab") as out:
        out.write(b"one\ntw")
    assert tail.read() == b"one\n"
    with log.open("ab") as out:
        out.write(b"o\n")
    assert tail.read() == b"two\n"
    assert tail.read() == b""
    log.write_bytes(b"new\n")  # rolled over: shorter than what was read
    assert tail.read() == b"new\n"


def test_kafka_counts_the_partition_logs_it_loaded_since_its_start(cfg: StackConfig) -> None:
    kafka = Kafka(cfg)
    for name in ("orders-0", "orders-1", "__cluster_metadata-0", "orders-1.abc-delete"):
        (kafka.data / name).mkdir(parents=True)
    kafka.server_log.parent.mkdir(parents=True)
    kafka.server_log.write_bytes(LOADED_MARKER + b"old)\n" + READY_MARKER + b"\n")  # an earlier start
    kafka.watch_log()
    assert kafka.progress() is None
    with kafka.server_log.open("ab") as out:
        out.write(b"INFO " + LOADED_MARKER + b"dir=orders-0)\n")
        out.write(b"INFO " + LOADED_MARKER + b"dir=orders-1)\n")
    assert not asyncio.run(kafka.probe())  # the earlier start's ready line does not count
    assert kafka.progress() == "loading logs: 2 of 3 partitions"
