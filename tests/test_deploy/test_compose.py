"""docker-compose.yml, deploy/compose/prometheus.yml and the Dockerfile: consistent on disk, and every check
reports a broken copy."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from deploy_checks import (
    COMPOSE_FILE,
    COMPOSE_PROMETHEUS,
    DOCKERFILE,
    REPO,
    compose_env,
    compose_env_problems,
    compose_mount_problems,
    compose_worker_problems,
    dockerfile_problems,
    load_pyproject,
    load_yaml,
    prometheus_target_problems,
    worker_services,
)


@pytest.fixture
def compose() -> dict[str, Any]:
    return copy.deepcopy(load_yaml(COMPOSE_FILE))


@pytest.fixture
def prometheus() -> dict[str, Any]:
    return copy.deepcopy(load_yaml(COMPOSE_PROMETHEUS))


def test_real_files_have_no_problems(compose: dict[str, Any], prometheus: dict[str, Any]) -> None:
    assert compose_mount_problems(compose) == []
    assert compose_env_problems(compose) == []
    assert compose_worker_problems(compose) == []
    assert prometheus_target_problems(compose, prometheus) == []
    assert dockerfile_problems(DOCKERFILE.read_text(), load_pyproject()) == []


def test_stack_services_are_there(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert {"kafka", "redis", "prometheus", "alertmanager", "grafana", "simulator"} <= set(services)
    assert sorted(worker_services(compose)) == ["worker-1", "worker-2"]
    assert services["kafka"]["image"].startswith("apache/kafka:3.9")
    assert "controller" in services["kafka"]["environment"]["KAFKA_PROCESS_ROLES"]  # KRaft, no ZooKeeper
    assert services["simulator"]["command"][0] == "simulate"
    for name in ("worker-1", "worker-2", "simulator"):
        env = compose_env(services[name])
        assert env["RETENTION_KAFKA_BOOTSTRAP"] == "kafka:9092"
        assert env["RETENTION_REDIS_URL"].startswith("redis://redis:")
        assert env["RETENTION_ALERTMANAGER_URL"] == "http://alertmanager:9093"


def test_grafana_provisioning_is_mounted_and_exists(compose: dict[str, Any]) -> None:
    # deploy/grafana/ is maintained with `retention-monitor dashboards generate`; the mounts need it.
    assert (REPO / "deploy/grafana/provisioning/datasources").is_dir()
    assert (REPO / "deploy/grafana/provisioning/dashboards").is_dir()
    assert any((REPO / "deploy/grafana/dashboards").glob("*.json"))
    del compose["services"]["grafana"]["volumes"][0]
    assert any("/etc/grafana/provisioning" in p for p in compose_mount_problems(compose))


def test_missing_mount_path_is_reported(compose: dict[str, Any]) -> None:
    compose["services"]["prometheus"]["volumes"].append("./deploy/nope/rules.yml:/etc/prometheus/extra.yml:ro")
    assert compose_mount_problems(compose) == ["prometheus: mounted host path ./deploy/nope/rules.yml does not exist"]


def test_wrong_config_mount_and_undeclared_volume_are_reported(compose: dict[str, Any]) -> None:
    wrong = "./deploy/compose/prometheus.yml:/etc/alertmanager/alertmanager.yml"
    compose["services"]["alertmanager"]["volumes"] = [wrong]
    del compose["volumes"]["worker-2-state"]
    problems = compose_mount_problems(compose)
    assert any(p.startswith("alertmanager: /etc/alertmanager/alertmanager.yml mounts") for p in problems)
    assert "worker-2: named volume worker-2-state is not declared under volumes:" in problems


@pytest.mark.parametrize(
    ("name", "value", "expected"),
    [
        ("RETENTION_WEB_PROT", "6066", "RETENTION_WEB_PROT is not a setting"),
        ("RETENTION_PARTITIONS", "0", "RETENTION_PARTITIONS=0: must be 1-1024"),
        ("RETENTION_REDIS_URL", "http://redis:6379", "RETENTION_REDIS_URL"),
        ("RETENTION_SEGMENTS", "plan=pro", "RETENTION_SEGMENTS"),
        ("RETENTION_CLOCK", True, "must be a string"),
    ],
)
def test_bad_environment_is_reported(compose: dict[str, Any], name: str, value: Any, expected: str) -> None:
    compose["services"]["worker-2"]["environment"][name] = value
    problems = compose_env_problems(compose)
    assert problems
    assert all(p.startswith("worker-2: ") for p in problems)
    assert expected in problems[0]


def test_published_port_must_be_the_web_port(compose: dict[str, Any]) -> None:
    compose["services"]["worker-2"]["ports"] = ["6067:6066"]
    assert compose_worker_problems(compose) == [
        "worker-2: publishes container port 6066, but listens on RETENTION_WEB_PORT=6067"
    ]


def test_healthcheck_must_probe_the_web_port(compose: dict[str, Any]) -> None:
    worker = compose["services"]["worker-1"]
    worker["healthcheck"]["test"] = [t.replace(":6066/", ":6067/") for t in worker["healthcheck"]["test"]]
    assert len(compose_worker_problems(compose)) == 1
    del worker["healthcheck"]
    assert compose_worker_problems(compose) == ["worker-1: no healthcheck on /ready, /metrics or /kpis"]


def test_workers_need_their_own_data_volume(compose: dict[str, Any]) -> None:
    compose["services"]["worker-2"]["volumes"] = ["worker-1-state:/home/monitor/state"]
    assert compose_worker_problems(compose) == ["worker-2: shares its data volume worker-1-state with worker-1"]
    compose["services"]["worker-2"]["volumes"] = []
    assert compose_worker_problems(compose) == ["worker-2: no volume at its data dir /home/monitor/state"]


def test_workers_must_advertise_their_own_service_and_port(compose: dict[str, Any]) -> None:
    env = compose["services"]["worker-2"]["environment"]
    env["RETENTION_WEB_ADVERTISED_URL"] = "http://worker-1:6067"
    assert compose_worker_problems(compose) == [
        "worker-2: RETENTION_WEB_ADVERTISED_URL=http://worker-1:6067 does not name the service worker-2"
    ]
    env["RETENTION_WEB_ADVERTISED_URL"] = "http://worker-2:6066"
    assert compose_worker_problems(compose) == [
        "worker-2: RETENTION_WEB_ADVERTISED_URL=http://worker-2:6066 is not on RETENTION_WEB_PORT=6067"
    ]
    del env["RETENTION_WEB_ADVERTISED_URL"]
    assert compose_worker_problems(compose) == [
        "worker-2: no RETENTION_WEB_ADVERTISED_URL (others would ask http://0.0.0.0:6067)"
    ]


def test_loopback_web_host_and_duplicate_host_ports_are_reported(compose: dict[str, Any]) -> None:
    compose["services"]["worker-1"]["environment"]["RETENTION_WEB_HOST"] = "127.0.0.1"
    compose["services"]["grafana"]["ports"] = ["6066:3000"]
    problems = compose_worker_problems(compose)
    assert any("worker-1: RETENTION_WEB_HOST=127.0.0.1" in p for p in problems)
    assert any("host port 6066 is already published" in p for p in problems)


def test_prometheus_targets_must_match_worker_services(compose: dict[str, Any], prometheus: dict[str, Any]) -> None:
    job = next(j for j in prometheus["scrape_configs"] if j["job_name"] == "retention-monitor")
    job["static_configs"][0]["targets"] = ["worker-1:6066", "worker-2:6066"]
    assert prometheus_target_problems(compose, prometheus) == [
        "Prometheus scrapes worker-2:6066, which is no worker service:port",
        "Prometheus does not scrape worker worker-2:6067",
    ]


def test_a_new_worker_must_be_scraped(compose: dict[str, Any], prometheus: dict[str, Any]) -> None:
    compose["services"]["worker-3"] = copy.deepcopy(compose["services"]["worker-2"])
    assert prometheus_target_problems(compose, prometheus) == ["Prometheus does not scrape worker worker-3:6067"]
    prometheus["alerting"]["alertmanagers"][0]["static_configs"][0]["targets"] = ["am:9093"]
    assert "Prometheus sends alerts to am:9093, which is no compose service" in prometheus_target_problems(
        compose, prometheus
    )


def test_dockerfile_checks_fail_on_broken_files() -> None:
    text = DOCKERFILE.read_text()
    pyproject = load_pyproject()
    root = text.replace("USER 10001:10001", "USER root")
    assert dockerfile_problems(root, pyproject) == ["the final stage runs as USER root"]
    no_user = "\n".join(line for line in text.splitlines() if not line.startswith("USER"))
    assert dockerfile_problems(no_user, pyproject) == ["the final stage has no USER (runs as root)"]
    single = "\n".join(line for line in text.splitlines() if not line.startswith("FROM ${PYTHON_IMAGE} AS"))
    assert "not a multi-stage build (1 FROM)" in dockerfile_problems(single, pyproject)
    no_alerts = text.replace("COPY alerts alerts\n", "")
    assert dockerfile_problems(no_alerts, pyproject) == [
        "the build stage does not COPY the alerts package (alerts/rules.yml)"
    ]
    broken = copy.deepcopy(pyproject)
    del broken["tool"]["setuptools"]["package-data"]["alerts"]
    assert dockerfile_problems(text, broken) == [
        'pyproject.toml [tool.setuptools.package-data] lacks alerts = ["rules.yml"]'
    ]
