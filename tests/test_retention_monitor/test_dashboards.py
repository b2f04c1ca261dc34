"""Grafana dashboards as code: generated JSON up to date and well formed, every panel query answered
by a real Prometheus scraping a real worker, and ``dashboards push`` against fake Grafana servers."""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import threading
import time
import urllib.error
import urllib.parse
from collections.abc import Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import yaml
from fixtures import ROOT, event, free_port, get_json, isolated_env, poll, produce, running_worker
from rich.console import Console

from core.config import load_settings
from retention_monitor import dashboards
from retention_monitor.commands import processed_count
from streams.producers.simulate import Simulator

PROVISIONING = ROOT / "deploy" / "grafana" / "provisioning"
DAY_US = 86_400_000_000
# What Grafana substitutes at query time, with values for which the test traffic has data.
SUBSTITUTIONS = {"$window": "30d", "$segment": "all", "$__rate_interval": "1m", "$__interval": "15s"}


def provisioned_uid() -> str:
    config = yaml.safe_load((PROVISIONING / "datasources" / "prometheus.yaml").read_text())
    (source,) = config["datasources"]
    assert source["type"] == "prometheus"
    uid: str = source["uid"]
    return uid


def queries() -> list[tuple[str, str, str, str]]:
    """(dashboard uid, panel title, refId, expr) of every target of every panel."""
    return [(d["uid"], p["title"], t["refId"], t["expr"])
            for d in dashboards.build_all().values() for p in d["panels"] for t in p.get("targets", [])]


def substitute(expr: str) -> str:
    # longest names first, so $__rate_interval is not read as $__rate…
    for name in sorted(SUBSTITUTIONS, key=len, reverse=True):
        expr = expr.replace(name, SUBSTITUTIONS[name])
    assert "$" not in expr, f"unknown template variable in {expr}"
    return expr


# -- generated files ------------------------------------------------------------------------------


def test_checked_in_dashboards_are_up_to_date() -> None:
    assert dashboards.stale(dashboards.DEFAULT_DIR) == [], "run `retention-monitor dashboards generate`"
    files = sorted(p.name for p in dashboards.DEFAULT_DIR.glob("*.json"))
    assert files == sorted(dashboards.build_all())
    for name, built in dashboards.build_all().items():
        assert json.loads((dashboards.DEFAULT_DIR / name).read_text()) == built


def test_build_is_deterministic() -> None:
    first = {name: dashboards.render(d) for name, d in dashboards.build_all().items()}
    assert first == {name: dashboards.render(d) for name, d in dashboards.build_all().items()}


def test_generate_and_check(tmp_path: Path) -> None:
    loaded = load_settings(env={})
    console = Console(file=open(tmp_path / "out.txt", "w"))  # noqa: SIM115 - closed with the console below
    try:
        check = argparse.Namespace(check=True, dir=str(tmp_path / "d"))
        assert dashboards.dashboards_generate(check, loaded, console) == 1
        assert dashboards.dashboards_generate(argparse.Namespace(check=False, dir=check.dir), loaded, console) == 0
        assert dashboards.dashboards_generate(check, loaded, console) == 0
        (tmp_path / "d" / "retention-support.json").write_text("{}")
        assert dashboards.dashboards_generate(check, loaded, console) == 1
    finally:
        console.file.close()
    assert dashboards.stale(tmp_path / "d") == ["retention-support.json"]


def test_dashboard_structure() -> None:
    uid = provisioned_uid()
    built = dashboards.build_all()
    assert {d["uid"] for d in built.values()} == {
        "retention-overview", "retention-support", "retention-segments", "retention-pipeline"}
    assert len({d["title"] for d in built.values()}) == len(built)
    for name, d in built.items():
        assert name == f"{d['uid']}.json"
        assert d["schemaVersion"] == 39
        ids = [p["id"] for p in d["panels"]]
        assert len(ids) == len(set(ids)), d["uid"]
        for p in d["panels"]:
            where = f"{d['uid']} / {p['title']}"
            assert p["datasource"] == {"type": "prometheus", "uid": uid}, where
            assert {"h", "w", "x", "y"} <= p["gridPos"].keys()
            assert p["gridPos"]["x"] + p["gridPos"]["w"] <= 24
            if p["type"] == "row":
                continue
            assert p["targets"], where
            ref_ids = [t["refId"] for t in p["targets"]]
            assert all(ref_ids), where
            assert len(set(ref_ids)) == len(ref_ids), where
            for t in p["targets"]:
                assert t["datasource"] == {"type": "prometheus", "uid": uid}, where
                assert t["expr"].strip(), where
        for v in d["templating"]["list"]:
            if v["type"] == "query":
                assert v["datasource"]["uid"] == uid
    # every KPI gauge is read across workers (the pipeline's own series are per worker)
    for _, title, _, expr in queries():
        for metric in re.findall(r"\bretention_(?!events|event_|alert|faust|kpi_last|stage_|gc_)\w+", expr):
            assert f"max without (instance) ({metric}" in expr, f"{title}: {expr}"


def test_template_variables() -> None:
    overview = dashboards.build_all()["retention-overview.json"]
    variables = {v["name"]: v for v in overview["templating"]["list"]}
    window, segment = variables["window"], variables["segment"]
    assert window["type"] == "custom"
    assert window["current"]["value"] == "30d"
    assert [o["value"] for o in window["options"]] == ["1d", "7d", "30d", "90d", "day", "week", "month",
                                                       "quarter", "year"]
    assert segment["type"] == "query"
    assert segment["current"]["value"] == "all"
    assert segment["query"] == "label_values(retention_customers_active, segment)"


def test_provisioning_points_at_the_dashboards() -> None:
    config = yaml.safe_load((PROVISIONING / "dashboards" / "retention.yaml").read_text())
    (provider,) = config["providers"]
    assert provider["type"] == "file"
    assert provider["options"]["path"] == "/var/lib/grafana/dashboards"
    source = yaml.safe_load((PROVISIONING / "datasources" / "prometheus.yaml").read_text())["datasources"][0]
    assert source["url"] == "http://prometheus:9090"


# -- push -----------------------------------------------------------------------------------------


class FakeServer(BaseHTTPRequestHandler):
    """Answers every POST with the server's ``status`` and records it (a fake Grafana or Alertmanager)."""

    status = 200
    received: list[dict[str, Any]]

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        self.server.received.append({"path": self.path, "auth": self.headers.get("Authorization"),  # type: ignore[attr-defined]
                                     "body": body})
        status = self.server.status  # type: ignore[attr-defined]
        answer = {"status": "success"} if status == 200 else {"message": "invalid API key"}
        data = json.dumps(answer).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def fake_server(request: pytest.FixtureRequest) -> Iterator[Any]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), FakeServer)
    server.status = getattr(request, "param", 200)  # type: ignore[attr-defined]
    server.received = []  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def test_push_creates_or_updates_every_dashboard(fake_server: Any) -> None:
    url = f"http://127.0.0.1:{fake_server.server_address[1]}"
    pushed = dashboards.push(url, "secret-token")
    assert sorted(pushed) == sorted(d["uid"] for d in dashboards.build_all().values())
    assert {r["path"] for r in fake_server.received} == {"/api/dashboards/db"}
    assert all(r["auth"] == "Bearer secret-token" for r in fake_server.received)
    assert all(r["body"]["overwrite"] is True for r in fake_server.received)
    assert [r["body"]["dashboard"] for r in fake_server.received] == list(dashboards.build_all().values())


@pytest.mark.parametrize("fake_server", [401, 403], indirect=True)
def test_push_with_a_bad_token_fails_in_one_line(fake_server: Any) -> None:
    url = f"http://127.0.0.1:{fake_server.server_address[1]}"
    with pytest.raises(dashboards.GrafanaError) as info:
        dashboards.push(url, "wrong")
    message = str(info.value)
    assert url in message
    assert "\n" not in message
    assert f"HTTP {fake_server.status}" in message


def test_push_to_an_unreachable_grafana_fails_in_one_line() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    with pytest.raises(dashboards.GrafanaError, match="unreachable") as info:
        dashboards.push(url, "token", timeout=2)
    assert url in str(info.value)
    assert "\n" not in str(info.value)


def test_push_handler(fake_server: Any, tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{fake_server.server_address[1]}"
    with (tmp_path / "out.txt").open("w") as out:
        args = argparse.Namespace(url=url, token="t")
        assert dashboards.dashboards_push(args, load_settings(env={}), Console(file=out, width=200)) == 0
    assert f"{url}/d/retention-overview" in (tmp_path / "out.txt").read_text()


# -- every panel against a real Prometheus --------------------------------------------------------

ALWAYS_FIRING = """\
rules:
  - name: DashboardCheck
    kpi: churn_rate
    window: 30d
    segments: [all]
    op: ">="
    threshold: 0
    for: 0s
    severity: warning
    summary: "dashboard test alert ({value})"
    description: "fires as soon as churn is defined, so retention_alerts_sent_total has series"
    runbook_url: http://127.0.0.1/runbook
    dashboard_url: http://127.0.0.1:3000/d/retention-pipeline
"""


class Prometheus:
    """A private Prometheus scraping one worker every second."""

    def __init__(self, tmp: Path, target: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        config = tmp / "prometheus.yml"
        config.write_text(yaml.safe_dump({
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
            "scrape_configs": [{"job_name": "retention-monitor", "static_configs": [{"targets": [target]}]}],
        }))
        self.log = tmp / "prometheus.log"
        with self.log.open("wb") as log:
            self.proc = subprocess.Popen(
                ["prometheus", f"--config.file={config}", f"--storage.tsdb.path={tmp / 'tsdb'}",
                 f"--web.listen-address=127.0.0.1:{self.port}", "--web.enable-lifecycle"],
                stdout=log, stderr=subprocess.STDOUT)

    def query(self, expr: str) -> Any:
        try:
            return get_json(f"{self.url}/api/v1/query?{urllib.parse.urlencode({'query': expr})}")
        except urllib.error.HTTPError as exc:  # a bad query: 400 with Prometheus' error as JSON
            return json.loads(exc.read())

    def ready(self) -> bool:
        if self.proc.poll() is not None:
            raise AssertionError(f"prometheus exited: {self.log.read_text()[-2000:]}")
        return bool(get_json(f"{self.url}/api/v1/status/buildinfo")["status"] == "success")

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def failing_panels(prom: Prometheus) -> list[str]:
    """Every target whose query errs or answers an empty (or only NaN) result."""
    failures = []
    for uid, title, ref_id, expr in queries():
        query = substitute(expr)
        try:
            answer = prom.query(query)
        except OSError as exc:
            failures.append(f"{uid} / {title} / {ref_id}: {query}: {exc}")
            continue
        result = answer.get("data", {}).get("result", [])
        if answer.get("status") != "success":
            failures.append(f"{uid} / {title} / {ref_id}: {query}: {answer.get('error')}")
        elif not result or all(r["value"][1] == "NaN" for r in result):
            failures.append(f"{uid} / {title} / {ref_id}: {query}: empty result")
    return failures


@pytest.mark.integration
def test_every_panel_query_has_data_in_prometheus(stack: str, tmp_path: Path, fake_server: Any) -> None:
    rules = tmp_path / "rules.yml"
    rules.write_text(ALWAYS_FIRING)
    # alerts go to a fake Alertmanager, so the test alert does not linger in the shared stack's one
    env = isolated_env(RETENTION_CLOCK="event", RETENTION_ALERT_RULES=str(rules), RETENTION_ALERT_INTERVAL="1s",
                       RETENTION_ALERTMANAGER_URL=f"http://127.0.0.1:{fake_server.server_address[1]}")
    settings = load_settings(env=env).settings
    with running_worker(env) as worker:
        prom = Prometheus(tmp_path, f"127.0.0.1:{env['RETENTION_WEB_PORT']}")
        try:
            poll(prom.ready, 30, "prometheus to start")
            # scraped once before the traffic, so counters and the lag histogram have a rate afterwards
            poll(lambda: prom.query('up{job="retention-monitor"} == 1')["data"]["result"], 30,
                 "prometheus to scrape the worker")
            # ~4000 events over the last 100 days (every window, 90d included, has customers at its start)
            now = time.time_ns() // 1000
            sim = Simulator(settings.facts, settings.topics, seed=1, scenario="steady", customers=300)
            span = 100 * DAY_US
            messages: list[tuple[str, bytes | None, bytes]] = list(
                sim.events(start_us=now - span, end_us=now, rate=4000 / (span / 1e6)))
            assert 3000 < len(messages) < 5000
            # one rejected, one ignored and one duplicate event, so those series exist too
            ghost = event("customer.churned", datetime.fromtimestamp(now / 1e6, UTC),
                          {"customer_id": "ghost", "reason": "price"})  # churn of an unknown customer: ignored
            messages += [
                (settings.topic_lifecycle, b"junk", b"not json"),
                (settings.topic_lifecycle, b"ghost", json.dumps(ghost).encode()),
                messages[-1],
            ]
            produce(stack, messages)
            poll(lambda: processed_count(worker.url) >= len(messages), 60, f"the worker to process {len(messages)}")
            poll(lambda: prom.query('sum(retention_events_total{job="retention-monitor"})')["data"]["result"]
                 and prom.query('retention_customers_active{segment="all"}')["data"]["result"],
                 30, "prometheus to scrape the worker's events and KPIs")
            # every target of every panel, polled with a deadline (alerts and commits arrive a moment later)
            failures: list[str] = []

            def all_panels_answer() -> bool:
                failures[:] = failing_panels(prom)
                return not failures

            try:
                poll(all_panels_answer, 20, "every panel query to return data", interval=0.5)
            except AssertionError:
                pytest.fail("panels without data:\n" + "\n".join(failures))
            assert any(r["path"] == "/api/v2/alerts" for r in fake_server.received)
        finally:
            prom.stop()
