"""How long the worker's event loop is held: every stage (route, apply, follow, gauges, at-risk, alerts)
shares one loop, so one long piece of work delays them all. A timer that fires late measures that
directly (``retention_event_loop_stall_seconds``), and the garbage collector's own full passes, which
hold the loop too, are timed on their own (``retention_gc_pause_seconds{generation}``): when the
visible latency spikes, these say whether the loop was held and whether it was the collector.
"""

from __future__ import annotations

import asyncio
import gc
import time
from dataclasses import dataclass, field
from typing import Any

from prometheus_client import CollectorRegistry, Histogram

TICK_S = 0.1  # ten observations a second: cheap, and finer than the latencies that matter here
STALL_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0)
GC_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0)
TIMED_GENERATIONS = frozenset({1, 2})  # generation 0 passes are frequent and short: timing them costs more


@dataclass
class LoopWatch:
    """The two histograms and the task and collector hook that feed them."""

    stall: Histogram
    gc_pause: Histogram
    _gc_began: float = field(default=0.0, init=False)

    @classmethod
    def create(cls, registry: CollectorRegistry) -> LoopWatch:
        watch = cls(
            Histogram("retention_event_loop_stall_seconds", "How late a 100 ms timer on the worker's event loop "
                      "fired: how long every task waited behind one piece of work", buckets=STALL_BUCKETS,
                      registry=registry),
            Histogram("retention_gc_pause_seconds", "Duration of the garbage collector's passes over the older "
                      "generations (1, 2), which hold the event loop", ["generation"], buckets=GC_BUCKETS,
                      registry=registry),
        )  # fmt: skip
        for generation in sorted(TIMED_GENERATIONS):  # exported from the start: "no pause yet" reads as 0
            watch.gc_pause.labels(str(generation))
        return watch

    async def run(self) -> None:
        """Observe the loop until cancelled; the collector is timed for as long as this runs."""
        gc.callbacks.append(self._on_gc)
        loop = asyncio.get_running_loop()
        try:
            while True:
                due = loop.time() + TICK_S
                await asyncio.sleep(TICK_S)
                self.stall.observe(max(0.0, loop.time() - due))
        finally:
            gc.callbacks.remove(self._on_gc)

    def _on_gc(self, phase: str, info: dict[str, Any]) -> None:
        if info["generation"] not in TIMED_GENERATIONS:
            return
        if phase == "start":
            self._gc_began = time.perf_counter()
        elif self._gc_began:
            self.gc_pause.labels(str(info["generation"])).observe(time.perf_counter() - self._gc_began)
            self._gc_began = 0.0
