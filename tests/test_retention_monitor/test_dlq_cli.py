"""``retention-monitor dlq``: bad options are one line with exit 2, an unreachable Kafka one line with exit 3."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from fixtures import ROOT, free_port


def dlq(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "retention_monitor.cli", "dlq", *args], capture_output=True,
                          text=True, cwd=ROOT, check=False, env={**os.environ, **(env or {})})


@pytest.mark.parametrize(("args", "line"), [
    (["list", "--since", "yesterday"], "error: --since 'yesterday': expected RFC 3339 with an offset "
     "(2025-03-14T09:00:00Z) or a duration before now like 30m, 2h, 7d"),
    (["redrive", "--until", "2025-03-14"], "error: --until '2025-03-14': expected RFC 3339 with an offset "
     "(2025-03-14T09:00:00Z) or a duration before now like 30m, 2h, 7d"),
    (["show"], "error: dlq show: give a PARTITION:OFFSET or --id ID (one of them)"),
])
def test_a_bad_option_is_one_line_with_exit_2_before_kafka_is_asked(args: list[str], line: str) -> None:
    result = dlq(*args, env={"RETENTION_KAFKA_BOOTSTRAP": f"127.0.0.1:{free_port()}"})  # never reached
    assert (result.returncode, result.stderr.strip()) == (2, line)


@pytest.mark.parametrize("args", [["list", "--reason", "typo"], ["redrive", "--limit", "0"]])
def test_a_value_argparse_refuses_names_it_with_exit_2(args: list[str]) -> None:
    result = dlq(*args)
    assert result.returncode == 2
    assert f"'{args[-1]}'" in result.stderr.splitlines()[-1]


@pytest.mark.parametrize("args", [["list"], ["show", "0:0"], ["redrive", "--dry-run"]])
def test_an_unreachable_kafka_is_one_line_with_exit_3(args: list[str]) -> None:
    port = free_port()
    result = dlq(*args, env={"RETENTION_KAFKA_BOOTSTRAP": f"127.0.0.1:{port}"})
    assert result.returncode == 3
    assert result.stderr.strip() == f"error: cannot reach Kafka at 127.0.0.1:{port}: nothing listens there; is the " \
                                    "broker up?"
