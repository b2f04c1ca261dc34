"""The README's first command ends in `retention-monitor demo`: run it for real, briefly."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from fixtures import ROOT, isolated_env

pytestmark = pytest.mark.integration


def test_demo_runs_worker_and_traffic_and_shows_where_to_look(stack: str) -> None:
    env = {**os.environ, **isolated_env()}
    result = subprocess.run(
        [sys.executable, "-m", "retention_monitor.cli", "demo", "--duration", "3", "--rate", "100",
         "--history", "3000", "--customers", "300"],
        capture_output=True, text=True, cwd=ROOT, env=env, timeout=240, check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    out = result.stdout
    assert "publishing" in out
    assert "retention rate" in out
    assert "repeat purchase rate" in out
    assert f"http://127.0.0.1:{env['RETENTION_WEB_PORT']}/metrics" in out
    assert "active customers at end" in out
    assert "cohorts by month: share of customers active" in out  # the table of the last six sign-up months
    assert "retention-monitor cohorts --from" in out
