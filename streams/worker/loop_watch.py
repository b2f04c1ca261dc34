"""How long the worker's event loop is held: every stage (route, apply, follow, gauges, at-risk, alerts)
shares one loop, so one long piece of work delays them all. A timer that fires late measures that
directly (``retention_event_loop_stall_seconds``), and the garbage collector's own full passes, which
hold the loop too, are timed on their own (``retention_gc_pause_seconds{generation}``): when the
visible latency spikes, these say whether the loop was held and whether it was the collector. A
watchdog thread says *where*: when the loop has been held for ``HELD_S``, it reads the loop thread's
stack and logs it once the loop is free again, with how long it was held.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import sys
import threading
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry, Histogram

from streams.pacing import name_thread

TICK_S = 0.1  # ten observations a second: cheap, and finer than the latencies that matter here
STALL_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0)
GC_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0)
TIMED_GENERATIONS = frozenset({1, 2})  # generation 0 passes are frequent and short: timing them costs more
HELD_S = 0.1  # a loop held this long is logged with where it was held
FRAMES = 6  # frames shown: the innermost, then this project's own
# This project's packages, wherever installed (a checkout or site-packages).
OURS = tuple(f"{Path(__file__).resolve().parents[2]}/{package}/" for package in
             ("core", "metrics", "alerts", "streams", "retention_monitor"))  # fmt: skip

log = logging.getLogger(__name__)


@dataclass
class LoopWatch:
    """The two histograms and the task and collector hook that feed them."""

    stall: Histogram
    gc_pause: Histogram
    _gc_began: float = field(default=0.0, init=False)
    _beat: float = field(default=0.0, init=False)  # monotonic time of the loop's last tick

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
        self._beat = time.monotonic()
        stop = threading.Event()
        watchdog = threading.Thread(target=self._watch, args=(threading.get_ident(), stop), daemon=True,
                                    name="loop-watchdog")  # fmt: skip
        watchdog.start()
        try:
            while True:
                due = loop.time() + TICK_S
                await asyncio.sleep(TICK_S)
                self._beat = time.monotonic()
                self.stall.observe(max(0.0, loop.time() - due))
        finally:
            stop.set()
            gc.callbacks.remove(self._on_gc)

    def _watch(self, loop_thread: int, stop: threading.Event) -> None:
        """In its own thread: when the loop is held past ``HELD_S``, note its stack; log it when it is free."""
        name_thread("loop-watchdog")
        held_since, where = 0.0, ""
        while not stop.wait(TICK_S / 2):
            beat = self._beat
            late = time.monotonic() - beat - TICK_S
            if late > HELD_S and held_since != beat:
                held_since, where = beat, held_at(sys._current_frames().get(loop_thread))
            elif where and held_since != beat:  # the loop ticked again: the stall is over
                log.warning("event loop held for %.2f s (at %.2f s it was in: %s)", beat - held_since - TICK_S,
                            HELD_S, where)  # fmt: skip
                held_since, where = 0.0, ""

    def _on_gc(self, phase: str, info: dict[str, Any]) -> None:
        if info["generation"] not in TIMED_GENERATIONS:
            return
        if phase == "start":
            self._gc_began = time.perf_counter()
        elif self._gc_began:
            self.gc_pause.labels(str(info["generation"])).observe(time.perf_counter() - self._gc_began)
            self._gc_began = 0.0


def held_at(frame: Any) -> str:
    """Where a stack is, innermost first, as ``file:line function``: its innermost frame (often a library)
    and the innermost of this project's own frames (which piece of our work held the loop)."""
    if frame is None:
        return "?"
    frames = list(reversed(traceback.extract_stack(frame)))
    ours = [f for f in frames[1:] if f.filename.startswith(OURS)]
    shown = [frames[0], *ours[: FRAMES - 1]] if frames else []
    return " <- ".join(f"{'/'.join(f.filename.split('/')[-2:])}:{f.lineno} {f.name}" for f in shown)
