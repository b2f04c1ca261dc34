"""The local stack: config mapping (unit) and real Kafka/Redis/Prometheus/Alertmanager processes (integration).

The integration tests use their own home directory and non-default ports, so they do not touch a stack
that a developer runs on the default ports. The Kafka jars come from the shared cache
(``~/.cache/retention-monitor``): only the first run on a machine downloads them.
"""

from __future__ import annotations

import asyncio
import json
import resource
import shutil
import subprocess
import time
import urllib.request
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest
import redis
import yaml
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

import retention_monitor.stack as stack_pkg
from core.config import load_settings
from core.settings import Settings
from retention_monitor.exceptions import StackError
from retention_monitor.stack import ServiceStatus, StackConfig, down, status, up
from retention_monitor.stack import config as stack_config
from retention_monitor.stack.config import repo_root
from retention_monitor.stack.kafka import Kafka
from retention_monitor.stack.process import open_files, poll_until
from retention_monitor.stack.prometheus import Prometheus, render

# Non-default ports, so that a stack running on the default ones is left alone.
TEST_PORTS = StackConfig(
    kafka_port=19092,
    kafka_controller_port=19095,
    redis_port=16379,
    prometheus_port=19090,
    alertmanager_port=19093,
    worker_targets=("127.0.0.1:16066", "127.0.0.1:16067"),
)
NAMES = ["kafka", "redis", "prometheus", "alertmanager"]
DEPLOY = repo_root() / "deploy"


def eventually(check: Callable[[], Awaitable[bool]], seconds: float) -> bool:
    """Poll ``check`` against a deadline (no fixed sleeps)."""
    return asyncio.run(poll_until(check, seconds))


def get_json(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=5) as response:
        return json.loads(response.read())


# --- unit ---------------------------------------------------------------------------------------


def test_from_settings_maps_ports() -> None:
    settings = load_settings(
        env={},
        overrides={
            "kafka_bootstrap": "127.0.0.1:29092,127.0.0.1:29093",
            "redis_url": "redis://127.0.0.1:26379/2",
            "alertmanager_url": "http://127.0.0.1:29093",
            "web_host": "0.0.0.0",
            "web_port": 7000,
        },
    ).settings
    cfg = StackConfig.from_settings(settings, home=Path("/tmp/x"))
    assert (cfg.kafka_port, cfg.redis_port, cfg.alertmanager_port) == (29092, 26379, 29093)
    assert cfg.worker_targets == ("127.0.0.1:7000", "127.0.0.1:7001")
    assert cfg.home == Path("/tmp/x")
    assert (cfg.prometheus_port, cfg.kafka_controller_port) == (9090, 9095)


def test_from_settings_defaults_match_stack_defaults() -> None:
    cfg = StackConfig.from_settings(load_settings(env={}).settings)
    default = StackConfig()
    assert cfg == default


def test_home_defaults_to_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("RETENTION_STACK_HOME", str(tmp_path))
    assert StackConfig().home == tmp_path
    monkeypatch.delenv("RETENTION_STACK_HOME")
    assert StackConfig().home == Path.home() / ".local/share/retention-monitor/stack"


def test_render_rejects_template_without_markers() -> None:
    with pytest.raises(StackError, match="workers"):
        render("global: {}\n", {"workers": ["127.0.0.1:1"]})


def test_missing_tools_give_one_line_errors(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(shutil, "which", lambda _name: None)
    cfg = replace(TEST_PORTS, home=tmp_path)
    with pytest.raises(StackError, match=r"^java not found: install a Java 17 runtime"):
        Kafka(cfg).argv()
    with pytest.raises(StackError, match=r"^mvn not found: install Maven"):
        Kafka(cfg)._download()
    with pytest.raises(StackError, match=r"install the packages prometheus prometheus-alertmanager redis-server$"):
        stack_pkg._install_missing(stack_pkg.services(cfg), lambda _message: None)


def test_deploy_dir_missing_is_a_clear_error(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(stack_config, "repo_root", lambda: tmp_path)
    with pytest.raises(StackError, match="source checkout"):
        stack_config.deploy_dir()


@pytest.mark.parametrize(("alert_path", "rule_files"), [
    ("stream", ["meta.yml", "retention-recording.yml"]),
    ("prometheus", ["meta.yml", "retention-recording.yml", "retention-alerts.yml"]),
    ("both", ["meta.yml", "retention-recording.yml", "retention-alerts.yml"]),
])
def test_generated_prometheus_config_is_valid(tmp_path: Path, alert_path: str, rule_files: list[str]) -> None:
    """The generated KPI alerts are loaded only when alert_path asks Prometheus to page for them."""
    cfg = replace(TEST_PORTS, home=tmp_path, worker_targets=("127.0.0.1:7000",), alert_path=alert_path)
    prom = Prometheus(cfg)
    asyncio.run(prom.prepare(lambda _message: None))
    text = prom.config_file.read_text()
    assert '["127.0.0.1:7000"]' in text
    assert '["127.0.0.1:19093"]' in text
    loaded = yaml.safe_load(text)["rule_files"]
    assert loaded == [str(DEPLOY / "prometheus" / "rules" / name) for name in rule_files]
    done = subprocess.run(
        ["promtool", "check", "config", str(prom.config_file)], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"SUCCESS: {len(rule_files)} rule files found" in done.stdout
    assert ("retention-alerts.yml" in done.stdout) == (alert_path != "stream")


def test_stack_config_takes_the_alert_path_of_the_settings() -> None:
    assert StackConfig.from_settings(Settings()).alert_path == "stream"
    assert StackConfig.from_settings(Settings(alert_path="both")).alert_path == "both"


def test_alertmanager_config_is_valid() -> None:
    done = subprocess.run(
        ["amtool", "check-config", str(DEPLOY / "alertmanager.yml")], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stdout + done.stderr
    routes = subprocess.run(
        ["amtool", "config", "routes", "test", f"--config.file={DEPLOY / 'alertmanager.yml'}", "severity=critical"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert routes.stdout.strip() == "pager"


# --- integration ----------------------------------------------------------------------------------


@dataclass
class Started:
    cfg: StackConfig
    statuses: list[ServiceStatus]
    seconds: float


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Started]:
    cfg = replace(TEST_PORTS, home=tmp_path_factory.mktemp("stack"))
    began = time.monotonic()
    try:
        statuses = up(cfg)
        yield Started(cfg, statuses, time.monotonic() - began)
    finally:
        down(cfg)


@pytest.mark.integration
def test_up_starts_every_service(stack: Started) -> None:
    assert [s.name for s in stack.statuses] == NAMES
    for st in stack.statuses:
        assert st.running, st
        assert st.pid is not None
        assert st.detail.startswith("started, ready in "), st
    assert [s.address for s in stack.statuses] == [
        "127.0.0.1:19092",
        "127.0.0.1:16379",
        "127.0.0.1:19090",
        "127.0.0.1:19093",
    ]
    assert (stack.cfg.home / "kafka" / "cluster.id").is_file()
    assert (stack.cfg.home / "kafka" / "data" / "meta.properties").is_file()


@pytest.mark.integration
def test_kafka_gets_the_open_file_limit_a_broker_needs(stack: Started) -> None:
    kafka = next(s for s in stack.statuses if s.name == "kafka")
    assert kafka.pid is not None
    usage = open_files(kafka.pid)
    assert usage is not None
    wanted = Kafka(stack.cfg).open_files or 0
    assert wanted >= 100_000
    assert usage[1] >= min(wanted, resource.getrlimit(resource.RLIMIT_NOFILE)[1])


@pytest.mark.integration
def test_kafka_produce_and_consume(stack: Started) -> None:
    async def roundtrip() -> bytes:
        producer = AIOKafkaProducer(bootstrap_servers="127.0.0.1:19092")
        await producer.start()
        try:
            await producer.send_and_wait("stack.test", b"hello", key=b"k")
        finally:
            await producer.stop()
        consumer = AIOKafkaConsumer(
            "stack.test", bootstrap_servers="127.0.0.1:19092", auto_offset_reset="earliest", group_id="stack-test"
        )
        await consumer.start()
        try:
            message = await asyncio.wait_for(consumer.getone(), 30)
        finally:
            await consumer.stop()
        return bytes(message.value)

    assert asyncio.run(roundtrip()) == b"hello"


@pytest.mark.integration
def test_redis_set_get(stack: Started) -> None:
    client = redis.Redis(host="127.0.0.1", port=16379)
    try:
        client.set("stack-test", "v1")
        assert client.get("stack-test") == b"v1"
    finally:
        client.close()


@pytest.mark.integration
def test_prometheus_scrapes_and_loads_rules(stack: Started) -> None:
    found: list[dict[str, Any]] = []

    async def scraped() -> bool:
        found[:] = get_json("http://127.0.0.1:19090/api/v1/query?query=up")["data"]["result"]
        up = {(r["metric"]["job"], r["metric"]["instance"]): r["value"][1] for r in found}
        return len(up) == 3

    # Prometheus scrapes itself (up) and the two configured worker targets (down: no worker runs here).
    assert eventually(scraped, 30), found
    up = {(r["metric"]["job"], r["metric"]["instance"]): r["value"][1] for r in found}
    assert set(up) == {
        ("prometheus", "127.0.0.1:19090"),
        ("retention-monitor", "127.0.0.1:16066"),
        ("retention-monitor", "127.0.0.1:16067"),
    }
    assert up["prometheus", "127.0.0.1:19090"] == "1"
    rules = get_json("http://127.0.0.1:19090/api/v1/rules")["data"]["groups"]
    names = {rule["name"] for group in rules for rule in group["rules"]}
    assert {"RetentionMonitorDown", "RetentionDeadLetterRate"} <= names
    targets = get_json("http://127.0.0.1:19090/api/v1/alertmanagers")["data"]["activeAlertmanagers"]
    assert [t["url"] for t in targets] == ["http://127.0.0.1:19093/api/v2/alerts"]


@pytest.mark.integration
def test_alertmanager_status(stack: Started) -> None:
    body = get_json("http://127.0.0.1:19093/api/v2/status")
    assert body["cluster"]["status"] == "disabled"
    assert "pager" in body["config"]["original"]


@pytest.mark.integration
def test_second_up_is_a_quick_noop(stack: Started) -> None:
    began = time.monotonic()
    again = up(stack.cfg)
    assert time.monotonic() - began < 3
    assert [s.detail for s in again] == ["already running"] * 4
    assert [s.pid for s in again] == [s.pid for s in stack.statuses]


@pytest.mark.integration
def test_status_reports_ready(stack: Started) -> None:
    assert [(s.running, s.detail) for s in status(stack.cfg)] == [(True, "ready")] * 4


@pytest.mark.integration
def test_down_stops_everything(stack: Started) -> None:
    stopped = down(stack.cfg)
    assert [s.detail for s in stopped] == ["stopped"] * 4
    after = status(stack.cfg)
    assert [(s.running, s.detail, s.pid) for s in after] == [(False, "stopped", None)] * 4
    assert [s.detail for s in down(stack.cfg)] == ["was not running"] * 4
