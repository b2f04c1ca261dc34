"""Bearer-token auth on real worker processes: the API refuses requests without the token, the workers
still ask each other (``/partials`` with the token), ``/metrics`` and ``/ready`` stay open unless
configured otherwise, and the commands send the token from the same setting."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.error
import urllib.request
from typing import Any

import pytest
from fixtures import ROOT, WorkerProcess, converge, encode, free_port, isolated_env, produce, seed_example

pytestmark = pytest.mark.integration

TOKEN = "token-for-the-test-0123456789abcdef"
LIFECYCLE = seed_example(20, 5, 4, prefix="auth")  # 2025-Q1: B 20, N 5, L 4


def call(url: str, token: str | None = None, body: bytes | None = None) -> tuple[int, dict[str, str], Any]:
    """Status, headers and JSON (or text) body of one request; ``body`` makes it a POST."""
    headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
    request = urllib.request.Request(url, data=body, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=10) as resp:
            status, got, raw = resp.status, dict(resp.headers), resp.read()
    except urllib.error.HTTPError as exc:
        status, got, raw = exc.code, dict(exc.headers), exc.read()
    try:
        return status, got, json.loads(raw)
    except ValueError:
        return status, got, raw.decode()


def cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "retention_monitor.cli", *args], capture_output=True, text=True,
                          cwd=ROOT, check=False, env={**os.environ, **env}, timeout=60)


def q1_counts(url: str) -> tuple[int, Any]:
    status, _, answer = call(f"{url}/kpis?period=2025-Q1&segment=all", TOKEN)
    if status != 200:
        return status, answer
    inputs = answer["inputs"]
    return status, (inputs["B"], inputs["N"], inputs["L"])


def test_api_token_on_two_workers(stack: str) -> None:
    env_a = isolated_env(RETENTION_API_TOKEN=TOKEN)
    env_b = {**env_a, "RETENTION_WEB_PORT": str(free_port()), "RETENTION_DATA_DIR": env_a["RETENTION_DATA_DIR"] + "-b",
             "RETENTION_API_TOKEN_PROTECTS_METRICS": "true"}
    a, b = WorkerProcess(env_a), WorkerProcess(env_b)
    try:
        a.start()  # polls /ready without a token: open by default
        b.start()
        converge(lambda: sorted(call(f"{a.url}/ready")[2]["partitions"] + call(f"{b.url}/ready")[2]["partitions"]),
                 [0, 1, 2, 3], "the two workers to split the 4 partitions")
        produce(stack, [(env_a["RETENTION_TOPIC_LIFECYCLE"], e["data"]["customer_id"].encode(), encode(e))
                        for e in LIFECYCLE])

        for path in ("/kpis?period=2025-Q1", "/alerts?period=2025-Q1", "/at-risk"):
            status, headers, answer = call(a.url + path)
            assert (status, headers["WWW-Authenticate"]) == (401, 'Bearer realm="retention-monitor"'), path
            assert "Authorization: Bearer" in answer["error"]
            status, headers, _ = call(a.url + path, TOKEN[:-1] + "X")
            assert (status, headers["WWW-Authenticate"]) == (401, 'Bearer realm="retention-monitor", '
                                                                  'error="invalid_token"'), path
        assert call(f"{a.url}/partials", body=b'{"release": "x"}')[0] == 401  # the workers' own route too

        # Right token: 200 and the exact numbers; a owns only some partitions, so b answered a's /partials
        converge(lambda: q1_counts(a.url), (200, (20, 5, 4)), "2025-Q1 from worker a with the token")
        converge(lambda: q1_counts(b.url), (200, (20, 5, 4)), "2025-Q1 from worker b with the token")
        assert call(f"{a.url}/at-risk", TOKEN)[0] == 200

        assert call(f"{a.url}/metrics")[0] == 200  # open by default
        assert call(f"{a.url}/ready")[0] == 200
        assert call(f"{b.url}/metrics")[0] == 401  # api_token_protects_metrics = true
        status, _, text = call(f"{b.url}/metrics", TOKEN)
        assert status == 200
        assert "retention_events_total" in text

        ok = cli("kpis", "--period", "2025-Q1", "--url", a.url, "--json", env=env_a)
        assert ok.returncode == 0, ok.stderr
        assert json.loads(ok.stdout)["inputs"]["L"] == 4
        no_token = {**env_a, "RETENTION_API_TOKEN": ""}
        refused = cli("kpis", "--period", "2025-Q1", "--url", a.url, env=no_token)
        assert refused.returncode == 2
        assert refused.stderr.strip() == (f"error: {a.url}/kpis: the worker refused the request without the right "
                                          "bearer token (401); set api_token or api_token_file (RETENTION_API_TOKEN) "
                                          "to the worker's token")
        assert cli("at-risk", "--url", a.url, "--json", env=env_a).returncode == 0
        cohorts = cli("cohorts", "--from", "2024-10", "--url", a.url, "--json", env=env_a)
        assert cohorts.returncode == 0, cohorts.stderr
        status, _, direct = call(f"{a.url}/cohorts?by=month&from=2024-10&segment=all&kind=customers", TOKEN)
        assert status == 200
        assert json.loads(cohorts.stdout) == direct
        assert direct["cohorts"][0]["cohort"] == "2024-10"
        assert cli("cohorts", "--from", "2025-01", "--url", a.url, env=no_token).returncode == 2
    finally:
        a.stop()
        b.stop()
