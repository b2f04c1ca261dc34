"""deploy/k8s/: the manifests agree with each other and with the settings, and every check reports a broken copy."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
from k8s_checks import K8S_DIR, container_env, k8s_problems, kustomization_problems, load_k8s

from core.config import load_settings


@pytest.fixture
def docs() -> list[dict[str, Any]]:
    return copy.deepcopy(load_k8s()[1])


def _kind(docs: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    return next(d for d in docs if d["kind"] == kind)


def _container(docs: list[dict[str, Any]]) -> dict[str, Any]:
    container: dict[str, Any] = _kind(docs, "StatefulSet")["spec"]["template"]["spec"]["containers"][0]
    return container


def test_real_manifests_have_no_problems(docs: list[dict[str, Any]]) -> None:
    kustomization, _ = load_k8s()
    assert kustomization_problems(kustomization) == []
    assert k8s_problems(docs) == []
    assert {d["kind"] for d in docs} == {"ConfigMap", "Secret", "StatefulSet", "Service", "PodDisruptionBudget",
                                         "NetworkPolicy", "PodMonitor", "PrometheusRule"}


def test_configmap_toml_loads(docs: list[dict[str, Any]], tmp_path: Path) -> None:
    path = tmp_path / "retention-monitor.toml"
    path.write_text(_kind(docs, "ConfigMap")["data"]["retention-monitor.toml"])
    settings = load_settings(path, env={}).settings
    assert settings.web_port == 6066
    assert settings.web_host == "0.0.0.0"
    assert settings.partitions >= _kind(docs, "StatefulSet")["spec"]["replicas"] >= 2


def test_secret_is_a_placeholder_feeding_settings(docs: list[dict[str, Any]]) -> None:
    secret = _kind(docs, "Secret")["stringData"]
    for name in ("RETENTION_REDIS_PASSWORD", "RETENTION_KAFKA_SASL_PASSWORD"):
        assert secret[name] == "CHANGE-ME", name  # placeholders, never a real secret
    assert "CHANGE-ME" not in secret["RETENTION_REDIS_URL"]  # the password has its own key
    env, problems = container_env(_container(docs), docs)
    assert problems == []
    assert env["RETENTION_REDIS_PASSWORD"] == secret["RETENTION_REDIS_PASSWORD"]


def test_kustomization_must_list_existing_files(tmp_path: Path) -> None:
    kustomization, _ = load_k8s()
    broken = {**kustomization, "resources": [*kustomization["resources"], "hpa.yaml"]}
    assert kustomization_problems(broken) == ["kustomization lists hpa.yaml, which does not exist"]
    partial = {**kustomization, "resources": [r for r in kustomization["resources"] if r != "service.yaml"]}
    assert kustomization_problems(partial) == ["service.yaml is not listed in kustomization.yaml"]
    assert kustomization_problems(kustomization, K8S_DIR) == []


def test_single_replica_is_reported(docs: list[dict[str, Any]]) -> None:
    _kind(docs, "StatefulSet")["spec"]["replicas"] = 1
    assert k8s_problems(docs) == ["StatefulSet replicas=1: run at least 2 workers"]


def test_more_replicas_than_partitions_is_reported(docs: list[dict[str, Any]]) -> None:
    _kind(docs, "StatefulSet")["spec"]["replicas"] = 5
    assert k8s_problems(docs) == ["StatefulSet replicas=5 > partitions=4: extra workers stay idle"]


def test_container_port_mismatch_is_reported(docs: list[dict[str, Any]]) -> None:
    _container(docs)["ports"][0]["containerPort"] = 8080
    problems = k8s_problems(docs)
    assert "container ports [8080] != [RETENTION_WEB_PORT=6066]" in problems


def test_env_web_port_must_follow_everything_else(docs: list[dict[str, Any]]) -> None:
    env = _container(docs)["env"]
    next(v for v in env if v["name"] == "RETENTION_WEB_PORT")["value"] = "7000"
    problems = k8s_problems(docs)
    assert "container ports [6066] != [RETENTION_WEB_PORT=7000]" in problems
    assert "readinessProbe: port web != RETENTION_WEB_PORT=7000" in problems
    assert "Service retention-monitor: targetPort web != RETENTION_WEB_PORT=7000" in problems
    assert "Service retention-monitor-headless: targetPort web != RETENTION_WEB_PORT=7000" in problems
    assert "pod annotation prometheus.io/port=6066 != 7000" in problems
    url = "http://$(POD_IP):6066"
    assert f"StatefulSet: RETENTION_WEB_ADVERTISED_URL={url} is not on RETENTION_WEB_PORT=7000" in problems


def test_pods_must_advertise_a_url(docs: list[dict[str, Any]]) -> None:
    env = _container(docs)["env"]
    env[:] = [v for v in env if v["name"] != "RETENTION_WEB_ADVERTISED_URL"]
    assert k8s_problems(docs) == [
        "StatefulSet: no RETENTION_WEB_ADVERTISED_URL (others would ask http://0.0.0.0:6066)"
    ]


def test_probe_service_and_annotation_mismatches_are_reported(docs: list[dict[str, Any]]) -> None:
    _container(docs)["livenessProbe"]["httpGet"]["port"] = 6067
    _kind(docs, "Service")["spec"]["ports"][0]["targetPort"] = "http"
    _kind(docs, "StatefulSet")["spec"]["template"]["metadata"]["annotations"]["prometheus.io/port"] = "9100"
    assert k8s_problems(docs) == [
        "livenessProbe: port 6067 != RETENTION_WEB_PORT=6066",
        "pod annotation prometheus.io/port=9100 != 6066",
        "Service retention-monitor: targetPort http != RETENTION_WEB_PORT=6066",
    ]


def test_numeric_and_named_ports_resolve(docs: list[dict[str, Any]]) -> None:
    _container(docs)["readinessProbe"]["httpGet"]["port"] = 6066
    _kind(docs, "Service")["spec"]["ports"][0]["targetPort"] = 6066
    assert k8s_problems(docs) == []


def test_unknown_or_invalid_settings_are_reported(docs: list[dict[str, Any]]) -> None:
    _container(docs)["env"].append({"name": "RETENTION_KAFKA_SASL_PASSWD", "value": "x"})
    _kind(docs, "Secret")["stringData"]["RETENTION_REDIS_URL"] = "redis.example:6379"
    problems = k8s_problems(docs)
    assert problems[0] == "StatefulSet env: RETENTION_KAFKA_SASL_PASSWD is not a setting of core.settings.Settings"
    assert problems[1].startswith("StatefulSet env: RETENTION_REDIS_URL='redis.example:6379'")


def test_bad_configmap_toml_is_reported(docs: list[dict[str, Any]]) -> None:
    cm = _kind(docs, "ConfigMap")
    cm["data"]["retention-monitor.toml"] = cm["data"]["retention-monitor.toml"].replace('clock = "wall"', 'clock = "x"')
    assert any("clock='x'" in p for p in k8s_problems(docs))
    cm["data"] = {"other.toml": ""}
    assert any("has no key retention-monitor.toml" in p for p in k8s_problems(docs))


def test_missing_secret_is_reported(docs: list[dict[str, Any]]) -> None:
    docs[:] = [d for d in docs if d["kind"] != "Secret"]
    assert "container worker: refers to missing Secret retention-monitor-secrets" in k8s_problems(docs)


def test_root_user_and_missing_resources_are_reported(docs: list[dict[str, Any]]) -> None:
    pod = _kind(docs, "StatefulSet")["spec"]["template"]["spec"]
    pod["securityContext"] = {"runAsUser": 0}
    del pod["containers"][0]["resources"]
    assert k8s_problems(docs) == [
        "container resources need requests and a memory limit",
        "runAsNonRoot is not set",
        "runAsUser must be a non-zero uid",
    ]


def test_selectors_namespace_and_podmonitor_are_checked(docs: list[dict[str, Any]]) -> None:
    _kind(docs, "Service")["spec"]["selector"] = {"app": "other"}  # the first: retention-monitor
    _kind(docs, "PodMonitor")["spec"]["podMetricsEndpoints"][0]["port"] = "metrics"
    _kind(docs, "ConfigMap")["metadata"]["namespace"] = "prod"
    assert k8s_problems(docs) == [
        "Service retention-monitor: selector does not match the pod labels",
        "PodMonitor scrapes port 'metrics', not a named container port",
        "manifests must be namespace-less (set the namespace with kustomize or -n)",
    ]
