"""Shared test data: CloudEvents builders and the worked examples of docs/contract/kpis.md."""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import socket
import subprocess
import sys
import threading
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from ledger import Ledger, data_dir
from prometheus_client.parser import text_string_to_metric_families
from pure_pipeline import encode

from retention_monitor.stack import StackConfig

_ids = itertools.count()
# The tags this session's tests use, so that what they leave is deleted when it ends (see ledger).
LEDGER = Ledger(StackConfig().home / "test-sessions")


def event(
    type_: str, time: datetime | str, data: dict[str, Any], id_: str | None = None, source: str = "test"
) -> dict[str, Any]:
    t = time if isinstance(time, str) else time.astimezone(UTC).isoformat().replace("+00:00", "Z")
    return {
        "specversion": "1.0",
        "id": id_ or f"evt-{next(_ids)}",
        "source": source,
        "type": type_,
        "time": t,
        "data": data,
    }




def seed_example(
    start_customers: int, new: int, lost: int, year: int = 2025, prefix: str = "c"
) -> list[dict[str, Any]]:
    """A worked example of docs/contract/kpis.md: ``start_customers`` active at the start of Q1, then
    ``new`` and ``lost`` in Q1.

    Sign-ups before the year start one day apart in the previous December; Q1 events spread over
    January to March, churns hit the oldest customers first. Event ids are unique per ``prefix``.
    """
    q1 = datetime(year, 1, 1, tzinfo=UTC)
    events = []
    for i in range(start_customers):
        t = q1 - timedelta(days=30) + timedelta(hours=i)
        events.append(event("customer.signed_up", t, {"customer_id": f"{prefix}{i}", "segment": {"plan": "pro"}},
                            id_=f"{prefix}-signup-{i}"))
    for j in range(new):
        i = start_customers + j
        t = q1 + timedelta(days=2 + j, hours=3)
        events.append(event("customer.signed_up", t, {"customer_id": f"{prefix}{i}", "segment": {"plan": "basic"}},
                            id_=f"{prefix}-signup-{i}"))
    for j in range(lost):
        t = q1 + timedelta(days=20 + j, hours=5)
        events.append(event("customer.churned", t, {"customer_id": f"{prefix}{j}", "reason": "price"},
                            id_=f"{prefix}-churn-{j}"))
    return events


# -- integration helpers: a real worker process against the real local stack -----------------------


ROOT = Path(__file__).resolve().parents[1]


class Fatal(AssertionError):
    """Raised by a ``poll`` check when waiting longer cannot help (e.g. the process died)."""


def poll(check: Callable[[], Any], timeout: float, what: str, interval: float = 0.2) -> Any:
    """Call ``check`` until it returns a truthy value; fail with ``what`` after ``timeout`` seconds,
    or at once when the check raises :class:`Fatal`."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = check()
        except Fatal:
            raise
        except Exception as exc:  # keep polling through start-up errors, report the last one
            last = exc
        else:
            if last:
                return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}; last: {last!r}")


@contextmanager
def json_server(answer: Callable[[str], tuple[int, Any]],
                post: Callable[[str, Any], tuple[int, Any]] | None = None) -> Iterator[str]:
    """A local HTTP server whose every GET is answered by ``answer(path)`` -> ``(status, JSON body)`` and
    every POST by ``post(path, JSON body)`` (405 without one): an in-process stand-in for a worker's web
    port or a Grafana. Yields its base URL."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.reply(*answer(self.path))

        def do_POST(self) -> None:
            sent = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)) or b"null")
            self.reply(*(post(self.path, sent) if post else (405, {"message": "no POST here"})))

        def reply(self, status: int, body: Any) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def isolated_env(**extra: str) -> dict[str, str]:
    """RETENTION_* settings giving a test its own app id, topics and data dir."""
    tag = uuid.uuid4().hex[:8]
    LEDGER.record(tag)
    env = {
        "RETENTION_APP_ID": f"test-{tag}",
        "RETENTION_TOPIC_LIFECYCLE": f"t-{tag}.lifecycle",
        "RETENTION_TOPIC_SUPPORT": f"t-{tag}.support",
        "RETENTION_TOPIC_FEEDBACK": f"t-{tag}.feedback",
        "RETENTION_TOPIC_TEAM": f"t-{tag}.team",
        "RETENTION_TOPIC_DLQ": f"t-{tag}.dlq",
        "RETENTION_TOPIC_AT_RISK": f"t-{tag}.at_risk",
        "RETENTION_WEB_PORT": str(free_port()),
        "RETENTION_DATA_DIR": str(data_dir(tag)),
        "RETENTION_GAUGE_INTERVAL": "1s",  # tests poll the gauges: no need to wait for Prometheus's cadence
    }
    env.update(extra)
    return env


def get_json(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=5) as resp:
        return json.loads(resp.read())


def get_text(url: str) -> str:
    with urllib.request.urlopen(url, timeout=5) as resp:
        text: str = resp.read().decode()
        return text


def metric_value(text: str, name: str, labels: dict[str, str]) -> float | None:
    """The value of one sample in a Prometheus text exposition, or None if absent."""
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and sample.labels == labels:
                return float(sample.value)
    return None


class WorkerProcess:
    """A ``retention-monitor worker`` subprocess with its own settings."""

    def __init__(self, env: dict[str, str]) -> None:
        self.env = env
        self.url = f"http://127.0.0.1:{env['RETENTION_WEB_PORT']}"
        self.log = Path(env["RETENTION_DATA_DIR"] + ".log")
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 90) -> WorkerProcess:
        Path(self.env["RETENTION_DATA_DIR"]).mkdir(parents=True, exist_ok=True)
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "retention_monitor.cli", "worker"],
                env={**os.environ, **self.env}, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
            )
        poll(self._ready, timeout, f"worker at {self.url} to own partitions (log {self.log})")
        return self

    def _ready(self) -> bool:
        assert self.proc is not None
        if self.proc.poll() is not None:
            raise Fatal(f"worker exited with {self.proc.returncode}; log: {self.log.read_text()[-3000:]}")
        return bool(get_json(f"{self.url}/ready")["ready"])

    def kpis(self, period: str, segment: str = "all") -> Any:
        return get_json(f"{self.url}/kpis?period={period}&segment={segment}")

    def metrics(self) -> str:
        return get_text(f"{self.url}/metrics")

    def fresh_metrics(self, timeout: float = 30) -> str:
        """``/metrics`` once its KPI gauges were computed after this call (they are snapshots)."""
        asked = time.time()

        def fresh() -> str | None:
            text = self.metrics()
            computed = metric_value(text, "retention_kpi_gauges_timestamp_seconds", {})
            return text if computed is not None and computed >= asked else None

        text: str = poll(fresh, timeout, f"KPI gauges computed after {asked:.1f} at {self.url}", 0.1)
        return text

    def metric_sum(self, name: str) -> float:
        """The sum of every sample called ``name`` (0 if the worker does not answer)."""
        try:
            text = self.metrics()
        except OSError:
            return 0.0
        return sum(v for (n, _), v in samples(text).items() if n == name)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def another_worker(env: dict[str, str], suffix: str = "-b") -> dict[str, str]:
    """The settings of another worker of the same app id as ``env``: its own web port and data dir."""
    return {**env, "RETENTION_WEB_PORT": str(free_port()), "RETENTION_DATA_DIR": env["RETENTION_DATA_DIR"] + suffix}


@contextmanager
def running_worker(env: dict[str, str]) -> Iterator[WorkerProcess]:
    worker = WorkerProcess(env)
    try:
        yield worker.start()
    finally:
        worker.stop()


def lifecycle_messages(env: dict[str, str], events: list[dict[str, Any]]) -> list[tuple[str, bytes | None, bytes]]:
    """Customer events for :func:`produce`: on the lifecycle topic of ``env``, keyed by customer."""
    return [(env["RETENTION_TOPIC_LIFECYCLE"], e["data"]["customer_id"].encode(), encode(e)) for e in events]


def produce(bootstrap: str, messages: list[tuple[str, bytes | None, bytes]]) -> None:
    """Send ``(topic, key, value)`` messages in order and wait until all are acknowledged."""
    async def run() -> None:
        producer = AIOKafkaProducer(bootstrap_servers=bootstrap, max_request_size=4 * 1024 * 1024)
        await producer.start()
        try:
            futures = [await producer.send(topic, value, key=key) for topic, key, value in messages]
            await asyncio.gather(*futures)
        finally:
            await producer.stop()

    asyncio.run(run())


def create_topics(bootstrap: str, names: list[str]) -> None:
    """Create one-partition topics (before a worker or a consumer needs them)."""
    async def run() -> None:
        admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
        await admin.start()
        try:
            await admin.create_topics([NewTopic(n, num_partitions=1, replication_factor=1) for n in names])
        finally:
            await admin.close()

    asyncio.run(run())


def topic_size(bootstrap: str, topic: str, partitions: int) -> int:
    """The sum of the end offsets of ``topic``'s ``partitions`` now: how many records it has had."""
    async def run() -> int:
        consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False)
        await consumer.start()
        try:
            ends = await consumer.end_offsets([TopicPartition(topic, p) for p in range(partitions)])
            return sum(ends.values())
        finally:
            await consumer.stop()

    return asyncio.run(run())


def consume_all(bootstrap: str, topic: str, want: int, timeout: float = 30) -> list[Any]:
    """Read ``topic`` from the start until ``want`` messages arrived (or fail after ``timeout``)."""
    async def run() -> list[Any]:
        consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest",
                                    group_id=None, enable_auto_commit=False)
        await consumer.start()
        out: list[Any] = []
        try:
            deadline = time.monotonic() + timeout
            while len(out) < want and time.monotonic() < deadline:
                batch = await consumer.getmany(timeout_ms=500)
                for records in batch.values():
                    out.extend(records)
        finally:
            await consumer.stop()
        return out

    return asyncio.run(run())


# -- Prometheus samples and convergence ---------------------------------------------------------

Series = tuple[str, tuple[tuple[str, str], ...]]


def series(name: str, **labels: str) -> Series:
    return name, tuple(sorted(labels.items()))


def samples(text: str) -> dict[Series, float]:
    """Every sample of a Prometheus text exposition, by name and labels."""
    return {
        (s.name, tuple(sorted(s.labels.items()))): float(s.value)
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def converge(fetch: Callable[[], Any], expected: Callable[[], Any] | Any, what: str, timeout: float = 60) -> Any:
    """Poll ``fetch`` with a deadline until it equals ``expected`` (a value, or computed per attempt),
    then assert the equality, so a failure shows a readable diff of the last attempt."""
    deadline = time.monotonic() + timeout
    actual: Any = None
    want: Any = None
    while time.monotonic() < deadline:
        try:
            want = expected() if callable(expected) else expected
            actual = fetch()
        except Exception as exc:  # a worker may be rebalancing or not serving yet: keep polling, report it
            actual = exc
        if actual == want:
            return actual
        time.sleep(0.2)
    assert actual == want, f"{what}: {first_difference(actual, want)}"
    return actual


def first_difference(actual: Any, want: Any, path: str = "") -> str:
    """Where two nested values first differ, for a failure message that names it."""
    if isinstance(actual, dict) and isinstance(want, dict):
        for key in sorted(set(actual) | set(want), key=str):
            if actual.get(key, "<missing>") != want.get(key, "<missing>"):
                return first_difference(actual.get(key, "<missing>"), want.get(key, "<missing>"), f"{path}.{key}")
    if isinstance(actual, list) and isinstance(want, list) and len(actual) == len(want):
        for i, (a, w) in enumerate(zip(actual, want, strict=True)):
            if a != w:
                return first_difference(a, w, f"{path}[{i}]")
    return f"at {path or 'top'}: got {str(actual)[:300]}, want {str(want)[:300]}"


def usage_error(parse: Callable[[list[str]], Any], argv: list[str], capsys: Any) -> str:
    """What ``parse(argv)`` printed as it exited 2 on bad arguments; fails unless that was one line."""
    with pytest.raises(SystemExit) as exit_info:
        parse(argv)
    assert exit_info.value.code == 2
    err: str = capsys.readouterr().err
    assert err.count("\n") == 1
    return err
