"""The soak's live side: simulated traffic at an exact rate stamped with the wall clock, and samples.

Event ``n`` is due ``n / rate`` seconds after the start and carries that instant as its event time,
so the offered rate is exact whatever the simulator's Poisson spacing, and event time is wall time
(the worker runs with ``clock = wall``, as in production).
"""

from __future__ import annotations

import asyncio
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaProducer

from bench.cli import BenchError
from bench.monitor import http_get
from bench.soak_stats import Sample, Scrape, busy_seconds, parse_scrape
from bench.status import cpu_seconds, rss_bytes
from core.settings import Settings
from streams.kafka.clients import client_options
from streams.producers.publish import start_producer
from streams.producers.simulate import Simulator

TICK_S = 0.01  # the producer wakes this often; each wake-up sends what has come due since the last
_YIELD_EVERY = 200  # a long catch-up burst still lets the sampler and the delivery callbacks run


class LiveProducer:
    """Sends ``simulator``'s events at ``rate`` per second until ``seconds`` have passed or ``stop`` is set."""

    def __init__(self, settings: Settings, simulator: Simulator, rate: float) -> None:
        self.settings, self.simulator, self.rate = settings, simulator, rate
        self.producer: Any = None
        self.t0 = 0.0  # loop time of event 0
        self.total = self.queued = self.sent = self.errors = 0
        self.first_error: BaseException | None = None
        self.max_slip_s = 0.0  # the furthest the sends fell behind their schedule
        self.finished_at: float | None = None

    async def start(self) -> None:
        # acks=1 and a short linger, as the monitor's own publisher: live traffic, not a bulk load.
        producer = AIOKafkaProducer(linger_ms=5, acks=1, max_batch_size=256 * 1024, request_timeout_ms=15_000,
                                    **client_options(self.settings.kafka))  # fmt: skip
        self.producer = await start_producer(self.settings.kafka, producer)
        self.t0 = asyncio.get_running_loop().time()

    def elapsed(self) -> float:
        end = self.finished_at if self.finished_at is not None else asyncio.get_running_loop().time()
        return max(0.0, end - self.t0)

    def due(self, at: float | None = None) -> int:
        """Events whose scheduled time has come by loop time ``at`` (now by default)."""
        now = asyncio.get_running_loop().time() if at is None else at
        return max(0, int((now - self.t0) * self.rate) + 1)

    @property
    def achieved_rate(self) -> float | None:
        seconds = self.elapsed()
        return self.sent / seconds if seconds > 0 and self.sent else None

    async def run(self, seconds: float, stop: asyncio.Event) -> None:
        loop = asyncio.get_running_loop()
        wall0_us = time.time_ns() // 1000 - round((loop.time() - self.t0) * 1e6)  # wall time of event 0
        step_us = 1e6 / self.rate
        self.total = total = max(1, round(seconds * self.rate))
        try:
            while not stop.is_set() and self.queued < total:
                due = min(total, self.due())
                self.max_slip_s = max(self.max_slip_s, (due - self.queued - 1) / self.rate)
                while self.queued < due:
                    topic, key, value = self.simulator.emit(wall0_us + round(self.queued * step_us))
                    future = await self.producer.send(topic, value, key=key)
                    future.add_done_callback(self._delivered)
                    self.queued += 1
                    if self.queued % _YIELD_EVERY == 0:
                        await asyncio.sleep(0)
                await asyncio.sleep(TICK_S)
            await self.producer.flush()
        finally:
            self.finished_at = loop.time()

    def _delivered(self, future: asyncio.Future[Any]) -> None:
        if future.cancelled():
            return
        error = future.exception()
        if error is None:
            self.sent += 1
        else:
            self.errors += 1
            self.first_error = self.first_error or error

    async def close(self) -> None:
        if self.producer is not None:
            await self.producer.stop()


@dataclass(frozen=True)
class Worker:
    """Where to look at the worker: its pid for /proc, its URL for /metrics."""

    pid: int
    url: str


def _machine_busy() -> float | None:
    try:
        return busy_seconds(Path("/proc/stat").read_text(), float(os.sysconf("SC_CLK_TCK")))
    except OSError:
        return None


async def take_sample(worker: Worker, producer: LiveProducer, t: float) -> Sample:
    """One sample: /proc first (cheap, exact instant), then a timed scrape in a thread."""
    rss, cpu = rss_bytes(worker.pid), cpu_seconds(worker.pid)
    busy, bench_cpu = _machine_busy(), time.process_time()
    # Due but not acknowledged yet: a few ms of traffic normally; more when the producer or broker lags.
    behind = max(0, min(producer.due(), producer.total) - producer.sent)
    began = time.perf_counter()
    status, body = await asyncio.to_thread(http_get, f"{worker.url}/metrics", 10.0)
    scrape_s = time.perf_counter() - began if status == 200 else None
    scrape = parse_scrape(body) if status == 200 else Scrape()
    age = None if scrape.gauges_at is None else max(0.0, time.time() - scrape.gauges_at)
    return Sample(t=t, rss_bytes=rss, worker_cpu_s=cpu, bench_cpu_s=bench_cpu, machine_busy_s=busy, sent=producer.sent,
                  behind=behind, load1=os.getloadavg()[0], scrape_s=scrape_s, scrape=scrape,
                  gauges_age_s=age)  # fmt: skip


def check_delivery(producer: LiveProducer) -> None:
    """Stop the run with one line when the broker refuses messages: the rate would be a lie."""
    if producer.errors and producer.first_error is not None:
        raise BenchError(f"{producer.errors:,} messages were not delivered; first: {producer.first_error!r}")
