"""deploy/k8s/: the PodDisruptionBudget lets one worker go at a time, and the NetworkPolicy admits only
Prometheus and the other workers to the web port and lets the workers reach exactly what their settings name."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from k8s_checks import k8s_problems, load_k8s


@pytest.fixture
def docs() -> list[dict[str, Any]]:
    return copy.deepcopy(load_k8s()[1])


def _spec(docs: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    spec: dict[str, Any] = next(d for d in docs if d["kind"] == kind)["spec"]
    return spec


def test_pdb_lets_one_worker_go_at_a_time(docs: list[dict[str, Any]]) -> None:
    pdb = _spec(docs, "PodDisruptionBudget")
    assert pdb["maxUnavailable"] == 1
    pdb["maxUnavailable"] = 2
    assert k8s_problems(docs) == ["PodDisruptionBudget retention-monitor: maxUnavailable must be 1 (one rebalance "
                                  "at a time), found {'maxUnavailable': 2, 'selector': " + repr(pdb["selector"]) + "}"]
    pdb["maxUnavailable"] = 1
    pdb["selector"] = {"matchLabels": {"app.kubernetes.io/name": "other"}}
    assert k8s_problems(docs) == ["no PodDisruptionBudget selects the worker pods"]


def test_ingress_only_to_the_web_port_from_prometheus_and_the_workers(docs: list[dict[str, Any]]) -> None:
    ingress = _spec(docs, "NetworkPolicy")["ingress"]
    ingress[0]["ports"].append({"port": 22, "protocol": "TCP"})
    del ingress[1]["from"]
    assert k8s_problems(docs) == [
        "NetworkPolicy retention-monitor: ingress rule 0 opens [6066, 22], only the web port 6066 may be",
        "NetworkPolicy retention-monitor: ingress rule 1 admits every source",
        "NetworkPolicy retention-monitor: no ingress from the other workers (they ask for each other's KPI shares)",
    ]
    ingress[:] = ingress[1:]
    missing = "NetworkPolicy retention-monitor: no ingress from the monitoring namespace (Prometheus)"
    assert missing in k8s_problems(docs)


def test_egress_follows_the_settings(docs: list[dict[str, Any]]) -> None:
    config = next(d for d in docs if d["kind"] == "ConfigMap" and d["metadata"]["name"] == "retention-monitor")
    toml = config["data"]["retention-monitor.toml"]
    config["data"]["retention-monitor.toml"] = toml.replace('"kafka-bootstrap:9092"', '"kafka-0:9094,kafka-1:9094"')
    secret = next(d for d in docs if d["kind"] == "Secret")["stringData"]
    secret["RETENTION_REDIS_URL"] = "rediss://redis:6380/0"
    assert k8s_problems(docs) == [
        "NetworkPolicy: no egress to TCP port 9094 (Kafka kafka-0:9094)",
        "NetworkPolicy: no egress to TCP port 6380 (Redis rediss://redis:6380/0)",
    ]


def test_dns_and_the_peers_must_be_reachable(docs: list[dict[str, Any]]) -> None:
    egress = _spec(docs, "NetworkPolicy")["egress"]
    egress[:] = [rule for rule in egress if "to" not in rule]  # keep the Kafka/Redis/Alertmanager ports only
    assert k8s_problems(docs) == [
        "NetworkPolicy: no egress to UDP port 53 (DNS)",
        "NetworkPolicy: no egress to the other workers' web port (they merge KPI answers)",
    ]


def test_a_policy_that_does_not_select_the_workers_or_restrict_egress_is_reported(docs: list[dict[str, Any]]) -> None:
    policy = _spec(docs, "NetworkPolicy")
    policy["policyTypes"] = ["Ingress"]
    assert k8s_problems(docs) == ["NetworkPolicy retention-monitor: policyTypes must be Ingress and Egress"]
    policy["podSelector"] = {"matchLabels": {"app.kubernetes.io/component": "simulator"}}
    assert k8s_problems(docs) == ["no NetworkPolicy selects the worker pods"]
