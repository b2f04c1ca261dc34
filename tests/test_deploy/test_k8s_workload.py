"""deploy/k8s/: the worker StatefulSet keeps its state on a claim per pod, probes real pages, is governed by a
headless Service, and every manifest is a known kind with a valid name; each check reports a broken copy."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from k8s_checks import k8s_problems, load_k8s, worker_pages


@pytest.fixture
def docs() -> list[dict[str, Any]]:
    return copy.deepcopy(load_k8s()[1])


def _workload(docs: list[dict[str, Any]]) -> dict[str, Any]:
    spec: dict[str, Any] = next(d for d in docs if d["kind"] == "StatefulSet")["spec"]
    return spec


def _named(docs: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    return next(d for d in docs if d["kind"] == kind and d["metadata"]["name"] == name)


def test_the_state_dir_is_on_a_claim_per_pod(docs: list[dict[str, Any]]) -> None:
    spec = _workload(docs)
    [claim] = spec["volumeClaimTemplates"]
    assert claim["metadata"]["name"] == "state"
    assert claim["spec"]["accessModes"] == ["ReadWriteOnce"]
    mounts = {m["name"]: m["mountPath"] for m in spec["template"]["spec"]["containers"][0]["volumeMounts"]}
    assert mounts["state"] == "/var/lib/retention-monitor"


def test_state_on_an_emptydir_is_reported(docs: list[dict[str, Any]]) -> None:
    spec = _workload(docs)
    del spec["volumeClaimTemplates"]
    spec["template"]["spec"]["volumes"].append({"name": "state", "emptyDir": {}})
    assert k8s_problems(docs) == ["data_dir /var/lib/retention-monitor is not on a volumeClaimTemplate: "
                                  "every restart would read the whole changelog again"]


def test_mounts_and_volumes_must_match(docs: list[dict[str, Any]]) -> None:
    pod = _workload(docs)["template"]["spec"]
    next(m for m in pod["containers"][0]["volumeMounts"] if m["name"] == "tmp")["name"] = "scratch"
    assert k8s_problems(docs) == ["volumeMount scratch names no volume or volumeClaimTemplate",
                                  "volume tmp is never mounted"]


def test_an_unmounted_data_dir_is_reported(docs: list[dict[str, Any]]) -> None:
    container = _workload(docs)["template"]["spec"]["containers"][0]
    next(v for v in container["env"] if v["name"] == "RETENTION_DATA_DIR")["value"] = "/data"
    assert k8s_problems(docs) == ["data_dir /data is on no mounted volume"]


def test_probes_must_hit_pages_the_worker_has(docs: list[dict[str, Any]]) -> None:
    assert {"/ready", "/metrics", "/kpis"} <= worker_pages()
    container = _workload(docs)["template"]["spec"]["containers"][0]
    container["livenessProbe"]["httpGet"]["path"] = "/healthz"
    container["readinessProbe"]["httpGet"]["path"] = "/metrics"
    problems = k8s_problems(docs)
    assert problems[0] == "readinessProbe: /metrics is not /ready"
    assert problems[1].startswith("livenessProbe: the worker has no page /healthz (it has ")


def test_the_governing_service_must_be_headless(docs: list[dict[str, Any]]) -> None:
    headless = _named(docs, "Service", "retention-monitor-headless")
    assert _workload(docs)["serviceName"] == "retention-monitor-headless"
    del headless["spec"]["clusterIP"]
    assert k8s_problems(docs) == ["Service retention-monitor-headless: the StatefulSet's serviceName must be "
                                  "headless (clusterIP: None)"]
    _workload(docs)["serviceName"] = "workers"
    assert k8s_problems(docs) == ["StatefulSet serviceName workers names no Service"]


def test_unknown_kinds_and_bad_names_are_reported(docs: list[dict[str, Any]]) -> None:
    next(d for d in docs if d["kind"] == "StatefulSet")["apiVersion"] = "apps/v1beta1"
    _named(docs, "Service", "retention-monitor")["metadata"]["name"] = "Retention_Monitor"
    problems = k8s_problems(docs)
    assert problems[:2] == ["apps/v1beta1 StatefulSet retention-monitor: not a known apiVersion and kind",
                            "Service 'Retention_Monitor': not a valid name"]


def test_a_label_that_is_not_a_string_and_an_oversized_manifest_are_reported(docs: list[dict[str, Any]]) -> None:
    dashboard = next(d for d in docs if d["kind"] == "ConfigMap" and "grafana_dashboard" in d["metadata"]["labels"])
    dashboard["metadata"]["labels"]["grafana_dashboard"] = 1
    name = dashboard["metadata"]["name"]
    assert k8s_problems(docs) == [f"ConfigMap {name}: label grafana_dashboard=1 is not a string label value"]
    dashboard["metadata"]["labels"]["grafana_dashboard"] = "1"
    dashboard["data"]["big.json"] = "x" * 300_000
    assert k8s_problems(docs) == [f"ConfigMap {name}: over 262144 bytes, too big for kubectl apply"]
