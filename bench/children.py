"""Measuring a system that reports about itself (the ceiling, the peers) through a status file."""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console

from bench.monitor import Limits
from bench.procs import Child, child_env
from bench.stats import Result, bytes_per_customer
from bench.status import read_status
from bench.waiting import Paced, wait_progress


@dataclass(frozen=True)
class ChildSpec:
    """A measured child: its command (without the counting arguments), log, status file and state dir."""

    system: str
    argv: list[str]
    log: Path
    status: Path
    state_dir: Path | None = None  # where it keeps state on disk (reported, not counted as memory)
    per_customer: bool = False  # whether it keeps per-customer state, so bytes per customer mean something


def measure_child(spec: ChildSpec, backlog: int, paced: Paced | None, *, customers: int, limits: Limits,
                  console: Console) -> Result:  # fmt: skip
    extra = paced.count if paced else 0
    argv = [*spec.argv, "--expect", str(backlog), "--extra", str(extra), "--status", str(spec.status)]
    spec.status.unlink(missing_ok=True)
    result = Result(spec.system, events=backlog)
    child = Child(spec.system, argv, spec.log, env=child_env())

    def probe() -> int:
        return int(read_status(spec.status).get("processed", 0))

    try:
        # Start-up (imports, joining the group, creating internal topics) is not timed, only bounded.
        end = wait_progress(console, spec.system, backlog, probe, alive=child.alive,
                            timeout=limits.startup + limits.timeout, last_words=child.tail)
        _throughput(result, read_status(spec.status))
        if not end.reached:
            result.status = "timeout"
            result.notes.append(f"{spec.system}: processed {end.count:,} of {backlog:,}")
            return result
        if paced is not None:
            result.offered_rate = paced.rate
            sent = paced.send()
            end = wait_progress(console, f"{spec.system}: paced slice", backlog + extra, probe, alive=child.alive,
                                timeout=limits.timeout, start=backlog, last_words=child.tail)  # fmt: skip
            result.latency_drain_s = max(0.0, end.at - sent)
            if not end.reached:
                result.notes.append(f"{spec.system}: {backlog + extra - end.count:,} paced events unprocessed")
        try:
            child.proc.wait(timeout=60)  # it stops by itself at its target and writes its last numbers
        except subprocess.TimeoutExpired:
            result.notes.append(f"{spec.system}: did not exit by itself; stopped")
        status = read_status(spec.status)
        result.latency_samples = status.get("latency_samples")
        result.latency_p50_s, result.latency_p99_s = status.get("latency_p50_s"), status.get("latency_p99_s")
        result.paced_cpu_cores = status.get("paced_cpu_cores")
        result.peak_rss_bytes = status.get("peak_rss_bytes")
        if spec.per_customer:
            result.customers = customers
            result.bytes_per_customer = bytes_per_customer(result.rss_after_bytes, result.rss_idle_bytes, customers)
        if spec.state_dir is not None and spec.state_dir.exists():
            result.state_disk_bytes = sum(p.stat().st_size for p in spec.state_dir.rglob("*") if p.is_file())
        return result
    finally:
        child.stop()


def _throughput(result: Result, status: dict[str, object]) -> None:
    seconds, cpu, processed = status.get("seconds"), status.get("cpu_seconds"), status.get("processed")
    if isinstance(seconds, float) and seconds > 0 and isinstance(processed, int):
        done = min(processed, result.events or processed)
        result.seconds, result.events_per_s = seconds, done / seconds
        if isinstance(cpu, float):
            result.cpu_us_per_event = 1e6 * cpu / max(1, done)
    for name in ("rss_idle_bytes", "rss_after_bytes", "peak_rss_bytes"):
        value = status.get(name)
        if isinstance(value, int):
            setattr(result, name, value)
