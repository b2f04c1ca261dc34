"""Several ``retention-monitor worker`` processes of one app id, started, watched and stopped together.

Each has its own web port and data dir (as docs/scaling.md requires); the bench reads each one's
``/ready``, ``/metrics`` and ``/kpis`` and its ``/proc`` entries, and sums or compares them.
"""

from __future__ import annotations

import contextlib
import signal
import statistics
import subprocess
import time
from collections.abc import Sequence
from typing import Any
from urllib.parse import urlencode

from bench.cli import BenchError
from bench.monitor import MonitorSetup, http_get
from bench.procs import Child
from bench.status import cpu_seconds, rss_bytes
from bench.workers_stats import Look, covers, distinct_processed, kpi_answer, ready_look


class Cluster:
    """The workers of ``setups`` (same app id, own ports and data dirs), started at once."""

    def __init__(self, setups: Sequence[MonitorSetup], label: str) -> None:
        self.setups = list(setups)
        self.children: list[Child] = [s.start(f"{label}{i + 1}") for i, s in enumerate(self.setups)]
        self._counts = [0] * len(self.setups)  # each worker's last processed count (a scrape may fail)
        # Each one's CPU seconds when first seen owning partitions: it starts applying then, before /ready says 200.
        self.owning_cpu: list[float | None] = [None] * len(self.setups)

    @property
    def size(self) -> int:
        return len(self.setups)

    def alive(self) -> bool:
        return all(c.alive() for c in self.children)

    def tails(self) -> str:
        """The last log lines of the workers that exited, else of all (a one-line failure message)."""
        gone = [i for i, c in enumerate(self.children) if not c.alive()] or range(self.size)
        return " || ".join(f"worker {i + 1}: {self.children[i].tail(2)}" for i in gone)

    def looks(self, members: Sequence[int] | None = None) -> list[Look]:
        """Each worker's ``/ready``: ready or not, and the partitions it owns."""
        chosen = range(self.size) if members is None else members
        return [ready_look(*http_get(f"{self.setups[i].url}/ready", timeout=2)) for i in chosen]

    def wait_ready(self, partitions: int, timeout: float) -> float:
        """Seconds until every worker is ready and each partition has exactly one owner among them."""
        started = time.perf_counter()
        while True:
            looks = self.looks()
            for i, look in enumerate(looks):
                if look.partitions and self.owning_cpu[i] is None:
                    self.owning_cpu[i] = cpu_seconds(self.children[i].pid)
            if all(look.ready for look in looks) and covers((look.partitions for look in looks), partitions):
                return time.perf_counter() - started
            for i, child in enumerate(self.children):
                if not child.alive():
                    raise BenchError(f"worker {i + 1} of {self.size} exited ({child.proc.returncode}): {child.tail(3)}")
            if time.perf_counter() - started > timeout:
                states = "; ".join(f"worker {i + 1} {'ready' if look.ready else f'not ready ({look.status})'}, owns "
                                   f"{list(look.partitions)}" for i, look in enumerate(looks))  # fmt: skip
                raise BenchError(f"the {self.size} workers were not all ready after {timeout:.0f} s: {states} "
                                 f"(logs: {self.children[0].log.parent})")  # fmt: skip
            time.sleep(0.1)

    def processed(self) -> int:
        """Messages the workers are done with (replays not twice), summed; a failed scrape keeps its last count."""
        for i, setup in enumerate(self.setups):
            if self.children[i].alive():
                status, body = http_get(f"{setup.url}/metrics", timeout=10)
                if status == 200:
                    self._counts[i] = distinct_processed(body)
        return sum(self._counts)

    def cpu_since_owning(self) -> float:
        """Every worker's CPU seconds since it first owned partitions (start-up and joining left out), summed."""
        return sum((cpu_seconds(c.pid) or 0.0) - (start or 0.0) for c, start in zip(self.children, self.owning_cpu,
                                                                                    strict=True))  # fmt: skip

    def rss(self) -> list[int | None]:
        return [rss_bytes(c.pid) for c in self.children]

    def answer(self, index: int, query: dict[str, str]) -> tuple[dict[str, Any] | None, str]:
        """Worker ``index``'s ``/kpis`` answer without its ``worker`` block, or None and why not."""
        status, body = http_get(f"{self.setups[index].url}/kpis?{urlencode(query)}", timeout=30)
        answer = kpi_answer(status, body)
        return answer, "" if answer is not None else f"worker {index + 1}: {status or 'no answer'} {body[:400]}"

    def answer_ms(self, query: dict[str, str], asks: int = 5) -> float | None:
        """Median milliseconds of a ``/kpis`` answer, each worker asked ``asks`` times (None: one failed)."""
        times = []
        for _ in range(asks):
            for i in range(self.size):
                began = time.perf_counter()
                if self.answer(i, query)[0] is None:
                    return None
                times.append(1000 * (time.perf_counter() - began))
        return statistics.median(times)

    def agreed(self, query: dict[str, str], quiet_s: float, limit_s: float) -> tuple[dict[str, Any] | None, str]:
        """The ``/kpis`` answer every worker gives, once it stayed the same for ``quiet_s``; or None and why."""
        began = time.perf_counter()
        held: dict[str, Any] | None = None
        since = began
        why = "nothing asked"
        while time.perf_counter() - began < limit_s:
            answers = [self.answer(i, query) for i in range(self.size)]
            first = answers[0][0]
            if first is not None and all(a == first for a, _ in answers):
                if first != held:
                    held, since = first, time.perf_counter()
                elif time.perf_counter() - since >= quiet_s:
                    return held, ""
                why = "the answer kept changing"
            else:
                held, why = None, "; ".join(w for _, w in answers if w) or "the workers answered differently"
            time.sleep(0.5)
        return None, why

    def kill(self, index: int) -> None:
        """SIGKILL: no revocation, no checkpoint — the group notices at the session timeout."""
        proc = self.children[index].proc
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)

    def stop(self, grace: float = 120.0) -> None:
        """SIGTERM to every worker at once (one rebalance, not one per worker), then wait for each."""
        for child in self.children:
            if child.alive():
                child.proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + grace
        for child in self.children:
            with contextlib.suppress(subprocess.TimeoutExpired):
                child.proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            child.stop(grace=10)  # forgets it; SIGKILL if it is still running
