"""What a background thread's nice value does to the event loop's thread of the same process, when the
cores are busy: the thread holds the GIL while it runs Python, and a low-priority thread that the kernel
takes off the CPU while holding it stops every other thread of the process until it runs again.

    .venv/bin/python -m bench.priority [--nice 0,2,5,19] [--hogs 2] [--seconds 15]

Per nice value: a thread at that nice value builds dicts (pure Python, GIL held) while ``--hogs``
processes spin at nice 0 and the main thread takes small steps (a little work, a 2 ms sleep); the table
shows how long a step took (median, p99, longest) and how many took 100 ms or more.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from dataclasses import dataclass

from rich.console import Console
from rich.table import Table

from bench.cli import OneLineParser, int_list, int_range

STEP_SLEEP_S = 0.002


@dataclass(frozen=True)
class Steps:
    """How long the main thread's steps took, in seconds, sorted."""

    took: list[float]

    def at(self, q: float) -> float:
        return self.took[min(int(len(self.took) * q), len(self.took) - 1)]

    @property
    def stalls(self) -> int:
        return sum(t >= 0.1 for t in self.took)


def _busy(nice: int, stop: threading.Event) -> None:
    os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), nice)
    while not stop.is_set():
        table = {i: str(i) for i in range(100_000)}  # Python work: the GIL is held throughout
        del table


def probe(nice: int, hogs: int, seconds: float) -> Steps:
    """The main thread's steps while a thread at ``nice`` and ``hogs`` spinning processes compete."""
    spinning = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(hogs)]
    stop = threading.Event()
    thread = threading.Thread(target=_busy, args=(nice, stop), daemon=True)
    thread.start()
    took: list[float] = []
    try:
        end = time.perf_counter() + seconds
        while time.perf_counter() < end:
            began = time.perf_counter()
            sum(range(2000))
            time.sleep(STEP_SLEEP_S)
            took.append(time.perf_counter() - began)
    finally:
        stop.set()
        thread.join()
        for proc in spinning:
            proc.kill()
            proc.wait()
    return Steps(sorted(took))


def main(argv: list[str] | None = None) -> None:
    parser = OneLineParser(prog="bench.priority", description=__doc__.split("\n\n")[0])
    parser.add_argument("--nice", type=int_list(0, 19), default=[0, 2, 5, 19], help="nice values, e.g. 0,2,19")
    parser.add_argument("--hogs", type=int_range(0, 64), default=os.cpu_count() or 2,
                        help="spinning processes (default: the cores)")
    parser.add_argument("--seconds", type=int_range(1, 3600), default=15, help="per nice value")
    args = parser.parse_args(argv)
    table = Table(title=f"event-loop steps beside a GIL-holding thread, {args.hogs} spinning processes")
    for column in ("thread nice", "steps", "p50 ms", "p99 ms", "longest ms", "steps >= 100 ms"):
        table.add_column(column, justify="right")
    for nice in args.nice:
        steps = probe(nice, args.hogs, args.seconds)
        table.add_row(str(nice), f"{len(steps.took):,}", *(f"{steps.at(q) * 1000:.1f}" for q in (0.5, 0.99, 1.0)),
                      str(steps.stalls))
    Console().print(table)


if __name__ == "__main__":
    main()
