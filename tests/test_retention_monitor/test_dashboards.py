"""Grafana dashboards as code: generated JSON up to date and well formed, every panel query answered
by a real Prometheus scraping a real worker, and ``dashboards push`` against fake Grafana servers."""

from __future__ import annotations

import argparse
import io
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
from fixtures import ROOT, event, free_port, get_json, isolated_env, json_server, poll, produce, running_worker
from rich.console import Console

from core.config import load_settings
from retention_monitor import dashboards
from retention_monitor.commands import processed_count
from retention_monitor.exceptions import GrafanaError
from retention_monitor.grafana_api import push
from streams.producers.simulate import Simulator

PROVISIONING = ROOT / "deploy" / "grafana" / "provisioning"
RECORDING_RULES = ROOT / "deploy" / dashboards.RECORDING
DAY_US = 86_400_000_000
DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}
# What Grafana substitutes at query time, with values for which the test traffic has data.
SUBSTITUTIONS = {"$window": "30d", "$segment": "all", "$__rate_interval": "1m", "$__interval": "15s"}


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


def panels(dashboard: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {p["title"]: p for p in dashboard["panels"] if p["type"] != "row"}


# -- generated files ------------------------------------------------------------------------------


def test_checked_in_files_are_up_to_date() -> None:
    assert dashboards.stale() == [], "run `retention-monitor dashboards generate`"
    for directory in (dashboards.PROVISIONED, dashboards.IMPORTABLE):
        files = sorted(p.name for p in (dashboards.DEPLOY_DIR / directory).glob("*.json"))
        assert files == sorted(dashboards.build_all()), directory
    for name, built in dashboards.build_all().items():
        assert json.loads((dashboards.DEPLOY_DIR / dashboards.PROVISIONED / name).read_text()) == built
    assert RECORDING_RULES.is_file()


def test_build_is_deterministic() -> None:
    assert dashboards.generated() == dashboards.generated()


def test_generate_and_check(tmp_path: Path) -> None:
    loaded = load_settings(env={})
    console = Console(file=open(tmp_path / "out.txt", "w"))  # noqa: SIM115 - closed with the console below
    try:
        check = argparse.Namespace(check=True, dir=str(tmp_path / "d"))
        assert dashboards.dashboards_generate(check, loaded, console) == 1
        assert dashboards.dashboards_generate(argparse.Namespace(check=False, dir=check.dir), loaded, console) == 0
        assert dashboards.dashboards_generate(check, loaded, console) == 0
        (tmp_path / "d" / "grafana" / "dashboards" / "retention-support.json").write_text("{}")
        (tmp_path / "d" / dashboards.RECORDING).write_text("groups: []\n")
        assert dashboards.dashboards_generate(check, loaded, console) == 1
        # generated for another reporting currency, the files differ: --check follows the settings
        usd = load_settings(env={"RETENTION_CURRENCY": "USD"})
        assert dashboards.dashboards_generate(argparse.Namespace(check=False, dir=check.dir), usd, console) == 0
        assert dashboards.dashboards_generate(check, usd, console) == 0
        assert dashboards.dashboards_generate(check, loaded, console) == 1
    finally:
        console.file.close()
    assert "retention-overview.json" in (tmp_path / "out.txt").read_text()
    assert sorted(dashboards.stale(tmp_path / "d")) == sorted(
        f"{d}/{n}" for d in (dashboards.PROVISIONED, dashboards.IMPORTABLE)
        for n in ("retention-overview.json", "retention-segments.json"))


def test_dashboard_structure() -> None:
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
            assert p["datasource"] == DATASOURCE, where
            assert {"h", "w", "x", "y"} <= p["gridPos"].keys()
            assert p["gridPos"]["x"] + p["gridPos"]["w"] <= 24
            if p["type"] == "row":
                continue
            assert p["targets"], where
            ref_ids = [t["refId"] for t in p["targets"]]
            assert all(ref_ids), where
            assert len(set(ref_ids)) == len(ref_ids), where
            for t in p["targets"]:
                assert t["datasource"] == DATASOURCE, where
                assert t["expr"].strip(), where
        for v in d["templating"]["list"]:
            if v["type"] == "query":
                assert v["datasource"] == DATASOURCE
    # every KPI gauge is read across workers (the pipeline's own series are per worker): the ratios
    # through their recording rule, the others as max without (instance)
    for _, title, _, expr in queries():
        for metric in re.findall(r"\bretention_(?!events|event_|alert|faust|kpi_last|stage_|gc_)\w+", expr):
            assert f"max without (instance) ({metric}" in expr, f"{title}: {expr}"
            assert not metric.endswith("_ratio"), f"{title}: {expr} should read the recorded series"


def test_cohort_tables_spread_the_relative_labels_into_a_matrix() -> None:
    overview = dashboards.build_all()["retention-overview.json"]
    tables = [p for p in overview["panels"] if p["type"] == "table"]
    assert [p["title"] for p in tables] == ["Customer retention by cohort ($segment)",
                                            "Revenue retention by cohort (all customers)"]
    for p in tables:
        assert [(t["instant"], t["range"], t["format"]) for t in p["targets"]] == [(True, False, "table")]
        assert [t["id"] for t in p["transformations"]] == ["convertFieldType", "sortBy", "groupingToMatrix"]
        assert p["transformations"][2]["options"] == {"rowField": "cohort_offset", "columnField": "cohort_age",
                                                      "valueField": "Value"}
        assert p["options"]["sortBy"] == [{"displayName": "cohort_offset\\cohort_age", "desc": False}]
        assert p["fieldConfig"]["defaults"]["custom"]["cellOptions"]["type"] == "color-background"


def test_every_dashboard_has_the_datasource_variable_and_no_fixed_uid() -> None:
    for path in (ROOT / "deploy" / "grafana").rglob("*.json"):
        text = path.read_text()
        assert "retention-prometheus" not in text, path
        (first, *_) = json.loads(text)["templating"]["list"]
        assert (first["name"], first["type"], first["query"]) == ("datasource", "datasource", "prometheus"), path
    provisioned = dashboards.build_all()["retention-pipeline.json"]["templating"]["list"][0]
    assert provisioned["current"]["value"] == "default"


def test_import_copy_asks_for_the_prometheus() -> None:
    """Grafana's Import lists `__inputs` and replaces `${DS_PROMETHEUS}` by the datasource picked."""
    for name, built in dashboards.build_all().items():
        imported = json.loads((dashboards.DEPLOY_DIR / dashboards.IMPORTABLE / name).read_text())
        (given,) = imported.pop("__inputs")
        assert given == {"name": "DS_PROMETHEUS", "label": "Prometheus", "type": "datasource",
                         "pluginId": "prometheus", "pluginName": "Prometheus",
                         "description": "the Prometheus that scrapes the retention-monitor workers"}
        requires = {(r["type"], r["id"]) for r in imported.pop("__requires")}
        assert {("grafana", "grafana"), ("datasource", "prometheus"), ("panel", "timeseries")} <= requires
        variable = imported["templating"]["list"][0]
        assert variable["current"]["value"] == "${DS_PROMETHEUS}"
        # the datasource variable's value is the only difference
        variable["current"] = built["templating"]["list"][0]["current"]
        assert imported == built, name


MONEY_PANELS = {("retention-overview.json", "Net revenue ($window)"), ("retention-overview.json",
                "Customer lifetime value"), ("retention-segments.json", "Net revenue by plan"),
                ("retention-segments.json", "Net revenue by region"), ("retention-segments.json", "Net revenue")}


@pytest.mark.parametrize(("currency", "unit"), [("EUR", "currencyEUR"), ("USD", "currencyUSD"),
                                                ("CAD", "suffix: CAD")])
def test_money_panels_carry_the_reporting_currency(currency: str, unit: str) -> None:
    money = set()
    for name, d in dashboards.build_all(currency).items():
        for title, p in panels(d).items():
            if any(re.search(r"\bretention_(net_revenue|clv_\w+_mean)\b", t["expr"]) for t in p["targets"]):
                money.add((name, title))
                assert p["fieldConfig"]["defaults"]["unit"] == unit, title
            else:
                assert not p["fieldConfig"]["defaults"]["unit"].startswith(("currency", "suffix")), title
    assert money == MONEY_PANELS


def test_recording_rules_record_what_the_dashboards_read() -> None:
    rules = yaml.safe_load(RECORDING_RULES.read_text())["groups"][0]["rules"]
    recorded = {r["record"]: r["expr"] for r in rules}
    read = {m for *_, expr in queries() for m in re.findall(r"\bretention:\w+:max\b", expr)}
    assert read == set(recorded)
    assert "retention:customer_churn_ratio:max" in recorded
    for name, expr in recorded.items():
        metric = "retention_" + name.split(":")[1]
        assert metric.endswith("_ratio")
        assert expr == f"max without (instance) ({metric})"


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
    (source,) = yaml.safe_load((PROVISIONING / "datasources" / "prometheus.yaml").read_text())["datasources"]
    assert source["url"] == "http://prometheus:9090"
    # the provisioned dashboards' datasource variable is "default": this one
    assert source["type"] == "prometheus"
    assert source["isDefault"] is True


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
    pushed = push(url, "secret-token", dashboards.build_all())
    assert sorted(pushed) == sorted(d["uid"] for d in dashboards.build_all().values())
    assert {r["path"] for r in fake_server.received} == {"/api/dashboards/db"}
    assert all(r["auth"] == "Bearer secret-token" for r in fake_server.received)
    assert all(r["body"]["overwrite"] is True for r in fake_server.received)
    assert [r["body"]["dashboard"] for r in fake_server.received] == list(dashboards.build_all().values())
    assert not any("folderUid" in r["body"] for r in fake_server.received)


class FakeGrafana:
    """The folder and dashboard API of a Grafana holding ``folders``; records what it was sent."""

    def __init__(self, folders: list[dict[str, Any]]) -> None:
        self.folders = folders
        self.requests: list[tuple[str, str, Any]] = []

    def get(self, path: str) -> tuple[int, Any]:
        self.requests.append(("GET", path, None))
        return (200, self.folders) if path.startswith("/api/folders") else (404, {"message": "not found"})

    def post(self, path: str, body: Any) -> tuple[int, Any]:
        self.requests.append(("POST", path, body))
        if path == "/api/folders":
            created = {"uid": "f-new", "title": body["title"]}
            self.folders.append(created)
            return 200, created
        return 200, {"status": "success", "uid": body["dashboard"]["uid"]}

    def pushed(self) -> list[Any]:
        return [body for method, path, body in self.requests if (method, path) == ("POST", "/api/dashboards/db")]


def test_push_creates_the_folder_and_pushes_into_it(tmp_path: Path) -> None:
    grafana = FakeGrafana([{"uid": "other", "title": "Operations"}])
    with json_server(grafana.get, grafana.post) as url, (tmp_path / "out.txt").open("w") as out:
        args = argparse.Namespace(url=url, token="t", folder="Customer retention")
        assert dashboards.dashboards_push(args, load_settings(env={}), Console(file=out, width=200)) == 0
        # pushed again: the folder exists now and is reused
        assert dashboards.dashboards_push(args, load_settings(env={}), Console(file=out, width=200)) == 0
    creates = [r for r in grafana.requests if r[:2] == ("POST", "/api/folders")]
    assert [body for *_, body in creates] == [{"title": "Customer retention"}]
    assert grafana.folders == [{"uid": "other", "title": "Operations"}, {"uid": "f-new", "title": "Customer retention"}]
    bodies = grafana.pushed()
    assert len(bodies) == 2 * len(dashboards.build_all())
    assert {b["folderUid"] for b in bodies} == {"f-new"}
    assert [b["dashboard"] for b in bodies] == 2 * list(dashboards.build_all().values())
    # the folder exists before the first dashboard is written into it
    first_dashboard = grafana.requests.index(next(r for r in grafana.requests if r[1] == "/api/dashboards/db"))
    assert grafana.requests.index(creates[0]) < first_dashboard
    assert "(folder Customer retention)" in (tmp_path / "out.txt").read_text()


def test_push_into_an_existing_folder_creates_none() -> None:
    grafana = FakeGrafana([{"uid": "ops", "title": "Operations"}, {"uid": "ret", "title": "Retention"}])
    with json_server(grafana.get, grafana.post) as url:
        assert push(url, None, dashboards.build_all(), folder="Retention")
    assert not [r for r in grafana.requests if r[:2] == ("POST", "/api/folders")]
    assert {b["folderUid"] for b in grafana.pushed()} == {"ret"}


def test_push_money_panels_in_the_configured_currency() -> None:
    grafana = FakeGrafana([])
    with json_server(grafana.get, grafana.post) as url:
        args = argparse.Namespace(url=url, token=None, folder=None)
        assert dashboards.dashboards_push(args, load_settings(env={"RETENTION_CURRENCY": "USD"}),
                                          Console(file=io.StringIO())) == 0
    assert [b["dashboard"] for b in grafana.pushed()] == list(dashboards.build_all("USD").values())


def test_push_defaults_to_the_grafana_url_setting() -> None:
    grafana = FakeGrafana([])
    with json_server(grafana.get, grafana.post) as url:
        loaded = load_settings(env={"RETENTION_GRAFANA_URL": url + "/"})
        out = io.StringIO()
        assert dashboards.dashboards_push(argparse.Namespace(), loaded, Console(file=out, width=200)) == 0
    assert len(grafana.pushed()) == len(dashboards.build_all())
    assert f"{url}/d/retention-overview" in out.getvalue()


@pytest.mark.parametrize("fake_server", [401, 403], indirect=True)
def test_push_with_a_bad_token_fails_in_one_line(fake_server: Any) -> None:
    url = f"http://127.0.0.1:{fake_server.server_address[1]}"
    with pytest.raises(GrafanaError) as info:
        push(url, "wrong", dashboards.build_all())
    message = str(info.value)
    assert url in message
    assert "\n" not in message
    assert f"HTTP {fake_server.status}" in message


def test_push_to_an_unreachable_grafana_fails_in_one_line() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    with pytest.raises(GrafanaError, match="unreachable") as info:
        push(url, "token", dashboards.build_all(), folder="Retention", timeout=2)
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
    dashboard_url: /d/retention-pipeline
"""


class Prometheus:
    """A private Prometheus scraping one worker every second, with the dashboards' recording rules."""

    def __init__(self, tmp: Path, target: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        config = tmp / "prometheus.yml"
        config.write_text(yaml.safe_dump({
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
            "rule_files": [str(RECORDING_RULES)],
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
                       RETENTION_ALERTMANAGER_URL=f"http://127.0.0.1:{fake_server.server_address[1]}",
                       RETENTION_GRAFANA_URL="https://grafana.example.invalid/monitoring")
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
            sent = [a for r in fake_server.received if r["path"] == "/api/v2/alerts" for a in r["body"]]
            assert sent
            # the rule's dashboard path, under the worker's grafana_url
            assert {a["annotations"]["dashboard_url"] for a in sent} == {
                "https://grafana.example.invalid/monitoring/d/retention-pipeline"}
        finally:
            prom.stop()
