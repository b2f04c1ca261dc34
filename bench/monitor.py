"""The monitor under test: a real ``retention-monitor worker`` process, measured from outside.

Throughput is timed from ``/ready`` until ``/metrics`` counts every backlog message (applied plus
dead-lettered); CPU and memory come from ``/proc``; latency from the worker's own histogram
``retention_event_visible_seconds`` (Kafka timestamp → KPI facts visible), read before and after
a paced slice; recovery is a SIGTERM and a restart with the same app id, timed until ``/ready``.
"""

from __future__ import annotations

import os
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from rich.console import Console

from bench.cli import BenchError
from bench.procs import Child, child_env, free_port, python_module
from bench.stats import (
    Bucket,
    Result,
    bucket_delta,
    bytes_per_customer,
    histogram_quantile,
    parse_histogram,
    parse_histograms_by,
    processed_messages,
)
from bench.status import cpu_seconds, rss_bytes, thread_cpu
from bench.waiting import Paced, settle, wait_progress

VISIBLE = "retention_event_visible_seconds"
STALLS = "retention_event_loop_stall_seconds"
STAGES = "retention_stage_seconds"


@dataclass(frozen=True)
class Limits:
    """How long to wait, how often to scrape, and whether to measure the restart."""

    startup: float  # until /ready
    timeout: float  # for the backlog, and again for the paced slice
    scrape: float = 1.0  # each scrape makes the worker compute its gauges: keep it rare
    recovery: bool = True


@dataclass
class MonitorSetup:
    """How to start the worker of one run: its own app id, topics, data dir, port; shared inputs."""

    app_id: str
    bootstrap: str
    topics: list[str]  # lifecycle, support, feedback, team
    dlq: str
    partitions: int
    data_dir: Path
    alertmanager_url: str
    extra_env: dict[str, str] = field(default_factory=dict)
    code_root: Path | None = None  # another checkout's monitor (e.g. `git archive HEAD`), first on PYTHONPATH
    web_port: int = field(default_factory=free_port)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.web_port}"

    def env(self) -> dict[str, str]:
        settings = {
            "KAFKA_BOOTSTRAP": self.bootstrap, "APP_ID": self.app_id, "TOPIC_LIFECYCLE": self.topics[0],
            "TOPIC_SUPPORT": self.topics[1], "TOPIC_FEEDBACK": self.topics[2], "TOPIC_TEAM": self.topics[3],
            "TOPIC_DLQ": self.dlq, "TOPIC_AT_RISK": f"{self.dlq.removesuffix('.dlq')}.at_risk",
            "PARTITIONS": str(self.partitions), "WEB_HOST": "127.0.0.1",
            "WEB_PORT": str(self.web_port), "DATA_DIR": str(self.data_dir), "ALERTMANAGER_URL": self.alertmanager_url,
            # Replaying half a year of history: windows end at the newest event, nothing is too late.
            "CLOCK": "event", "ALLOWED_LATENESS": "3650d", "HISTORY": "3650d",
        }  # fmt: skip
        env = child_env({**{f"RETENTION_{k}": v for k, v in settings.items()}, **self.extra_env})
        if self.code_root is not None:
            # PYTHONPATH wins over the editable install's finder, so the worker's code comes from there.
            env["PYTHONPATH"] = os.pathsep.join([str(self.code_root), env["PYTHONPATH"]])
        return env

    def start(self, label: str) -> Child:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        log = self.data_dir.parent / f"{self.app_id}.{label}.log"
        return Child(f"monitor {label}", python_module("retention_monitor.cli", "worker"), log, env=self.env(),
                     cwd=self.data_dir)  # fmt: skip


def http_get(url: str, timeout: float = 5.0) -> tuple[int, str]:
    """(status, body), the body of an error answer too; status 0 when nothing answers yet."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as exc:  # /ready and /kpis say why in the body of a 503
        try:
            return exc.code, exc.read().decode(errors="replace")
        except OSError:
            return exc.code, ""
        finally:
            exc.close()
    except (urllib.error.URLError, OSError):
        return 0, ""


def wait_ready(setup: MonitorSetup, child: Child, timeout: float) -> float:
    """Seconds from now until ``/ready`` answers 200; stops with the log's tail if the worker dies."""
    started = time.perf_counter()
    while http_get(f"{setup.url}/ready", timeout=2)[0] != 200:
        if not child.alive():
            raise BenchError(f"the monitor worker exited ({child.proc.returncode}): {child.tail(3)}")
        if time.perf_counter() - started > timeout:
            raise BenchError(f"the monitor worker was not ready after {timeout:.0f} s (log: {child.log})")
        time.sleep(0.05)
    return time.perf_counter() - started


def scrape(setup: MonitorSetup) -> str:
    status, body = http_get(f"{setup.url}/metrics", timeout=10)
    if status != 200:
        raise BenchError(f"{setup.url}/metrics answered {status or 'nothing'}")
    return body


def processed_probe(setup: MonitorSetup, start: int = 0) -> Callable[[], int]:
    """A probe of the worker's processed count that rides over a slow or failed scrape (busy worker)."""
    last = start

    def probe() -> int:
        nonlocal last
        status, body = http_get(f"{setup.url}/metrics", timeout=10)
        if status == 200:
            last = processed_messages(body)
        return last

    return probe


def visible_count(setup: MonitorSetup) -> float | None:
    """Observations in the worker's publish → visible histogram (None: no answer or no histogram): it stops
    moving once the KPI store has read every changelog entry written so far."""
    status, body = http_get(f"{setup.url}/metrics", timeout=10)
    buckets = parse_histogram(body, VISIBLE) if status == 200 else None
    return None if buckets is None else _total(buckets)


def idle_rss(setup: MonitorSetup, startup_timeout: float, console: Console) -> tuple[int | None, float]:
    """(RSS of a ready worker that has no events, its start-up seconds): the baseline per customer."""
    child = setup.start("idle")
    try:
        with console.status("idle monitor worker (memory baseline)"):
            startup = wait_ready(setup, child, startup_timeout)
            rss = settle(lambda: rss_bytes(child.pid), quiet_s=3.0, limit_s=20.0)
        return rss, startup
    finally:
        child.stop()


def measure(setup: MonitorSetup, backlog: int, paced: Paced | None, *, customers: int, idle: int | None,
            limits: Limits, console: Console) -> Result:  # fmt: skip
    """One monitor run: throughput, memory, latency (when the histogram exists), restart recovery."""
    result = Result("monitor", events=backlog, customers=customers, rss_idle_bytes=idle)
    child = setup.start("run")
    try:
        wait_ready(setup, child, limits.startup)
        cpu0, threads, started = cpu_seconds(child.pid) or 0.0, thread_cpu(child.pid), time.perf_counter()
        end = wait_progress(console, "monitor", backlog, processed_probe(setup), alive=child.alive,
                            timeout=limits.timeout, interval=limits.scrape, last_words=child.tail)  # fmt: skip
        seconds, cpu = end.at - started, (cpu_seconds(child.pid) or 0.0) - cpu0
        result.notes.append(thread_note(threads, thread_cpu(child.pid), seconds))
        result.seconds, result.events_per_s = seconds, min(end.count, backlog) / seconds
        result.cpu_us_per_event = 1e6 * cpu / max(1, end.count)
        if not end.reached:
            result.status = "timeout"
            result.notes.append(f"monitor: processed {end.count:,} of {backlog:,} in {limits.timeout:.0f} s")
            return result
        # The KPI store follows the changelog behind the counters: let memory settle before reading it.
        result.rss_after_bytes = settle(lambda: rss_bytes(child.pid), quiet_s=3.0, limit_s=60.0)
        result.bytes_per_customer = bytes_per_customer(result.rss_after_bytes, idle, customers)
        if paced is not None:
            _latency(setup, child, backlog, paced, result, limits=limits, console=console)
        result.peak_rss_bytes = rss_bytes(child.pid, "VmHWM")
        if limits.recovery:
            child.stop(grace=120)
            child = setup.start("restart")
            with console.status("monitor restart: waiting for /ready"):
                result.recovery_s = wait_ready(setup, child, limits.startup)
        return result
    finally:
        child.stop(grace=120)


def _latency(setup: MonitorSetup, child: Child, backlog: int, paced: Paced, result: Result, *, limits: Limits,
             console: Console) -> None:  # fmt: skip
    # The counters reach the backlog before the follower made all of its facts visible; those late
    # samples (old Kafka timestamps) must not count as paced ones: wait until the histogram is quiet.
    settle(lambda: _total(parse_histogram(scrape(setup), VISIBLE) or []), quiet_s=1.0, limit_s=30.0, tolerance=0.0)
    metrics = scrape(setup)  # one instant for every histogram's starting point
    before = parse_histogram(metrics, VISIBLE)
    if before is None:
        result.notes.append(f"monitor: no {VISIBLE} histogram, latency n/a")
        return
    result.offered_rate = paced.rate
    stalls = parse_histogram(metrics, STALLS) or []
    stages = parse_histograms_by(metrics, STAGES, "stage")
    began, cpu0 = time.perf_counter(), cpu_seconds(child.pid) or 0.0
    sent = paced.send()
    target = backlog + paced.count
    end = wait_progress(console, "monitor: paced slice", target, processed_probe(setup, backlog),
                        alive=child.alive, timeout=limits.timeout, start=backlog, interval=limits.scrape,
                        last_words=child.tail)  # fmt: skip
    result.latency_drain_s = max(0.0, end.at - sent)
    result.paced_cpu_cores = ((cpu_seconds(child.pid) or 0.0) - cpu0) / max(1e-9, time.perf_counter() - began)
    stalls = bucket_delta(stalls, parse_histogram(scrape(setup), STALLS) or [])
    result.loop_stall_max_s = histogram_quantile(1.0, stalls)
    if not end.reached:
        result.notes.append(f"monitor: {target - end.count:,} paced events unprocessed after {limits.timeout:.0f} s")

    def observed() -> float:
        return _total(bucket_delta(before, parse_histogram(scrape(setup), VISIBLE) or []))

    settle(observed, quiet_s=1.0, limit_s=30.0, tolerance=0.0)  # facts become visible after the counters move
    delta = bucket_delta(before, parse_histogram(scrape(setup), VISIBLE) or [])
    result.latency_samples = int(_total(delta))
    result.latency_p50_s = histogram_quantile(0.50, delta)
    result.latency_p99_s = histogram_quantile(0.99, delta)
    result.notes.append(stage_note(stages, parse_histograms_by(scrape(setup), STAGES, "stage")))


def thread_note(before: dict[str, float], after: dict[str, float], seconds: float) -> str:
    """How busy each of the worker's threads was over the backlog, in cores (``main`` is the event loop's):
    a thread well under one core while the machine has cores to spare waits for another."""
    cores = sorted(((after[name] - before.get(name, 0.0)) / max(seconds, 1e-9), name) for name in after)
    return "monitor: backlog cores by thread: " + (", ".join(
        f"{name} {value:.2f}" for value, name in reversed(cores) if value >= 0.01) or "n/a")


def stage_note(before: dict[str, list[Bucket]], after: dict[str, list[Bucket]]) -> str:
    """Where the paced slice's time went: each stage's p99 over the slice (see ``retention_stage_seconds``)."""
    p99 = {stage: histogram_quantile(0.99, bucket_delta(before.get(stage, []), buckets))
           for stage, buckets in after.items()}  # fmt: skip
    return "monitor: paced p99 by stage: " + (", ".join(
        f"{stage} {'n/a' if q is None else f'{q * 1000:,.0f} ms'}" for stage, q in sorted(p99.items())) or "n/a")


def _total(buckets: list[Bucket]) -> float:
    return max((count for _, count in buckets), default=0.0)


class AlertSink:
    """Answers the worker's alert posts with 200, so a bench run never pages the shared Alertmanager.

    The worker still evaluates its shipped rules and delivers alerts, as in production.
    """

    def __init__(self) -> None:
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), _Accept)
        self.thread = threading.Thread(target=self.server.serve_forever, name="alert-sink", daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class _Accept(BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self._ok()

    def do_GET(self) -> None:
        self._ok()

    def _ok(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"{}")

    def log_message(self, format: str, *args: object) -> None:
        pass


