"""A worker is measured with its route process: CPU and memory of a process include its live children."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time

from fixtures import poll

from bench.status import _cpu_seconds, cpu_seconds, proc_kib, rss_bytes, thread_cpu, tree
from streams.pacing import name_thread

BURN = "import time\nt = time.process_time()\nwhile time.process_time() - t < 0.3: pass\nprint('burnt', flush=True)\n" \
       "time.sleep(60)"


def test_a_process_is_measured_with_its_children() -> None:
    child = subprocess.Popen([sys.executable, "-c", BURN], stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout is not None
        assert child.stdout.readline() == "burnt\n"
        me = os.getpid()
        assert child.pid in tree(me)
        own = _cpu_seconds(me) or 0.0
        poll(lambda: (cpu_seconds(me) or 0.0) - own >= 0.25, 10, "the child's CPU counted")
        assert (rss_bytes(me) or 0) > 1024 * (proc_kib("VmRSS", me) or 0)
    finally:
        child.kill()
        child.communicate()
    assert child.pid not in tree(os.getpid())


def test_a_process_s_cpu_is_told_by_thread_name() -> None:
    burnt, done = threading.Event(), threading.Event()

    def burn() -> None:
        name_thread("bench-burner")
        began = time.thread_time()
        while time.thread_time() - began < 0.2:
            pass
        burnt.set()
        done.wait(10)

    thread = threading.Thread(target=burn)
    thread.start()
    try:
        assert burnt.wait(10)
        threads = thread_cpu(os.getpid())
        assert threads["bench-burner"] >= 0.15  # the kernel counts in ticks of 10 ms
        assert "main" in threads
    finally:
        done.set()
        thread.join()
    assert "bench-burner" not in thread_cpu(os.getpid())  # a thread that ended is gone
