"""Counting inside a measured child: throughput over the backlog, then latency of the paced slice.

The clock starts at ``begin`` (consumer ready, or first message seen), stops when ``expect`` events
are done; every event after those is a paced one whose Kafka timestamp gives an exact latency sample.
"""

from __future__ import annotations

import argparse
import time

from bench.cli import OneLineParser, int_range
from bench.stats import nearest_rank
from bench.status import StatusFile, rss_bytes


def child_parser(prog: str, description: str | None) -> OneLineParser:
    """The arguments every measured child takes: what to read, how many events to expect, where to report."""
    parser = OneLineParser(prog=prog, description=description)
    parser.add_argument("--bootstrap", required=True)
    parser.add_argument("--topics", required=True, help="comma-separated input topics")
    parser.add_argument("--expect", type=int_range(1, 10**9), required=True, help="backlog size")
    parser.add_argument("--extra", type=int_range(0, 10**9), default=0, help="paced events after it")
    parser.add_argument("--status", required=True)
    return parser


def child_meter(args: argparse.Namespace) -> Meter:
    """The meter of a child parsed by ``child_parser``; its status file says it is starting."""
    status = StatusFile(args.status)
    status.update(phase="starting", pid_started=time.time())
    return Meter(status, args.expect, args.extra)


class Meter:
    def __init__(self, status: StatusFile, expect: int, extra: int) -> None:
        self.status, self.expect, self.target = status, expect, expect + extra
        self.seen = 0
        self.samples: list[float] = []
        self.started: float | None = None
        self._cpu0 = 0.0
        self._caught_up_at = (0.0, 0.0)  # (perf_counter, process_time) when the backlog was done

    @property
    def finished(self) -> bool:
        return self.seen >= self.target

    def begin(self) -> None:
        self.started = time.perf_counter()
        self._cpu0 = time.process_time()  # all threads of the process (librdkafka's included)
        self.status.update(phase="backlog", processed=0, events=self.expect, rss_idle_bytes=rss_bytes())

    def add(self, n: int) -> None:
        """``n`` more backlog events done; the caller never crosses ``expect`` with one call."""
        self.seen += n
        if self.seen == self.expect:
            self._caught_up()
        self.status.update(force=False, processed=self.seen)

    def observe(self, timestamp_ms: int) -> bool:
        """One more event done (Kafka timestamp ``timestamp_ms``); True once the target is reached."""
        if self.seen >= self.target:  # stragglers processed while the app stops are not measured
            return True
        if self.seen >= self.expect:
            self.samples.append(time.time() - timestamp_ms / 1000)
        self.seen += 1
        if self.seen == self.expect:
            self._caught_up()
        elif self.seen == self.target:
            self.finish()
        else:
            self.status.update(force=False, processed=self.seen)
        return self.seen >= self.target

    def _caught_up(self) -> None:
        assert self.started is not None, "begin() first"
        self._caught_up_at = (time.perf_counter(), time.process_time())
        seconds = self._caught_up_at[0] - self.started
        cpu = self._caught_up_at[1] - self._cpu0
        self.status.update(phase="caught_up", processed=self.seen, seconds=seconds, cpu_seconds=cpu,
                           rss_after_bytes=rss_bytes(), peak_rss_bytes=rss_bytes(field="VmHWM"))  # fmt: skip
        if self.seen >= self.target:
            self.finish()

    def finish(self) -> None:
        wall, cpu = time.perf_counter() - self._caught_up_at[0], time.process_time() - self._caught_up_at[1]
        self.status.update(
            paced_cpu_cores=cpu / wall if self.target > self.expect and wall > 0 else None, force=False
        )
        self.status.update(
            phase="done", processed=self.seen, latency_samples=len(self.samples),
            latency_p50_s=nearest_rank(self.samples, 0.50), latency_p99_s=nearest_rank(self.samples, 0.99),
            peak_rss_bytes=rss_bytes(field="VmHWM"),
        )  # fmt: skip
