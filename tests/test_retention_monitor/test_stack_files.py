"""Open-file limits of the stack's processes: lifted at start, warned about when nearly used up."""

from __future__ import annotations

import resource
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager

from retention_monitor.stack.process import file_limit_steps, file_warning, open_files, raise_file_limit


@contextmanager
def child_with_limit(soft: int) -> Iterator[subprocess.Popen[bytes]]:
    """A sleeping child whose open-file soft limit starts at ``soft``."""
    code = "import resource, sys, time\n" \
           f"resource.setrlimit(resource.RLIMIT_NOFILE, ({soft}, resource.getrlimit(resource.RLIMIT_NOFILE)[1]))\n" \
           "print('ready', flush=True)\ntime.sleep(60)"  # fmt: skip
    with subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE) as proc:
        try:
            assert proc.stdout is not None
            assert proc.stdout.readline() == b"ready\n"
            yield proc
        finally:
            proc.kill()


def test_raise_file_limit_lifts_a_low_soft_limit_as_far_as_allowed() -> None:
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    with child_with_limit(64) as proc:
        assert resource.prlimit(proc.pid, resource.RLIMIT_NOFILE)[0] == 64
        now = raise_file_limit(proc.pid, 100_000)
        # Without CAP_SYS_RESOURCE the hard limit caps it; with it, the wanted value is reached.
        assert now in (100_000, min(100_000, hard))
        assert now > 64
        assert resource.prlimit(proc.pid, resource.RLIMIT_NOFILE)[0] == now


def test_raise_file_limit_never_lowers() -> None:
    with child_with_limit(512) as proc:
        assert raise_file_limit(proc.pid, 100) == 512
        assert resource.prlimit(proc.pid, resource.RLIMIT_NOFILE)[0] == 512


def test_open_files_counts_the_process_files() -> None:
    with child_with_limit(64) as proc:
        usage = open_files(proc.pid)
        assert usage is not None
        count, limit = usage
        assert 3 <= count < 64  # stdin, stdout, stderr at least
        assert limit == 64


def test_file_warning_only_near_the_limit() -> None:
    with child_with_limit(64) as proc:
        assert file_warning(proc.pid) == ""
        count, _ = open_files(proc.pid) or (0, 0)
        warning = file_warning(proc.pid, share=count / 64)
        assert warning == f"; {count:,} of 64 open files: delete unused topics or raise the limit"


def test_open_files_of_a_gone_process_is_none() -> None:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait(timeout=10)
    assert open_files(proc.pid) is None
    assert file_warning(proc.pid) == ""


def test_file_limit_steps_never_lower_a_limit_and_keep_unlimited() -> None:
    unlimited = resource.RLIM_INFINITY
    assert file_limit_steps(1024, 20_000, 100_000) == [(100_000, 100_000), (20_000, 20_000)]
    assert file_limit_steps(1024, 1_048_576, 100_000) == [(100_000, 1_048_576), (100_000, 1_048_576)]
    assert file_limit_steps(1024, unlimited, 100_000) == [(100_000, unlimited)]
    assert file_limit_steps(unlimited, unlimited, 100_000) == []
    assert file_limit_steps(200_000, 200_000, 100_000) == []
