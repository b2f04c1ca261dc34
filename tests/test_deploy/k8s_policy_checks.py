"""Structural checks of deploy/k8s/ beyond the worker itself: known kinds and valid names, the
PodDisruptionBudget, and a NetworkPolicy that opens exactly what the settings need (used by k8s_checks.py)."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import urlsplit

from core.settings import Settings

# apiVersion -> kinds of the manifests (the Prometheus Operator's CRDs included).
KNOWN_KINDS = {
    "v1": {"ConfigMap", "Secret", "Service"},
    "apps/v1": {"StatefulSet"},
    "policy/v1": {"PodDisruptionBudget"},
    "networking.k8s.io/v1": {"NetworkPolicy"},
    "monitoring.coreos.com/v1": {"PodMonitor", "PrometheusRule"},
}
_DNS_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?")
_DNS_LABEL = re.compile(r"[a-z]([-a-z0-9]{0,61}[a-z0-9])?")  # Service names (RFC 1035)
_LABEL_VALUE = re.compile(r"([A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)?")
# `kubectl apply` (client side) keeps the whole object in an annotation, which may not exceed 256 KiB.
MAX_APPLIED_BYTES = 262_144


def selects(selector: Mapping[str, Any], labels: Mapping[str, str]) -> bool:
    """A Service selector or a LabelSelector (matchLabels only) that selects pods labelled ``labels``."""
    if "matchExpressions" in selector:
        return False  # not used here; a check that cannot read it must not pass it
    wanted = selector.get("matchLabels", selector)
    return bool(wanted) and set(wanted.items()) <= set(labels.items())


def kind_problems(docs: Iterable[Mapping[str, Any]]) -> list[str]:
    problems = []
    for doc in docs:
        api, kind, meta = doc.get("apiVersion"), doc.get("kind"), doc.get("metadata") or {}
        name = str(meta.get("name", ""))
        if kind not in KNOWN_KINDS.get(str(api), set()):
            problems.append(f"{api} {kind} {name}: not a known apiVersion and kind")
        pattern = _DNS_LABEL if kind == "Service" else _DNS_SUBDOMAIN
        if not pattern.fullmatch(name):
            problems.append(f"{kind} {name!r}: not a valid name")
        for key, value in (meta.get("labels") or {}).items():
            if not isinstance(value, str) or not _LABEL_VALUE.fullmatch(value):
                problems.append(f"{kind} {name}: label {key}={value!r} is not a string label value")
        if len(json.dumps(doc)) > MAX_APPLIED_BYTES:
            problems.append(f"{kind} {name}: over {MAX_APPLIED_BYTES} bytes, too big for kubectl apply")
    return problems


def pdb_problems(docs: Iterable[Mapping[str, Any]], pod_labels: Mapping[str, str]) -> list[str]:
    budgets = [d for d in docs if d.get("kind") == "PodDisruptionBudget"]
    if not any(selects((d.get("spec") or {}).get("selector") or {}, pod_labels) for d in budgets):
        return ["no PodDisruptionBudget selects the worker pods"]
    problems = []
    for budget in budgets:
        spec = budget.get("spec") or {}
        if spec.get("maxUnavailable") != 1 or "minAvailable" in spec:
            problems.append(f"PodDisruptionBudget {budget['metadata'].get('name')}: maxUnavailable must be 1 "
                            f"(one rebalance at a time), found {spec}")
    return problems


def _port(value: Any, container: Mapping[str, Any]) -> int | None:
    if isinstance(value, int):
        return value
    return next((int(p["containerPort"]) for p in container.get("ports") or [] if p.get("name") == value), None)


def needed_egress(settings: Settings) -> dict[tuple[int, str], str]:
    """(port, protocol) -> what the worker reaches there, from the settings it runs with."""
    needed = {(53, "UDP"): "DNS"}
    for server in settings.kafka_bootstrap.split(","):
        needed.setdefault((int(server.strip().rpartition(":")[2]), "TCP"), f"Kafka {server.strip()}")
    for what, url, default in (("Redis", settings.redis_url, 6379), ("Alertmanager", settings.alertmanager_url, 80)):
        if url:
            needed.setdefault((urlsplit(url).port or default, "TCP"), f"{what} {url}")
    return needed


def network_policy_problems(docs: Iterable[Mapping[str, Any]], pod_labels: Mapping[str, str],
                            container: Mapping[str, Any], settings: Settings) -> list[str]:
    policies = [d for d in docs if d.get("kind") == "NetworkPolicy"
                and selects((d.get("spec") or {}).get("podSelector") or {}, pod_labels)]
    if not policies:
        return ["no NetworkPolicy selects the worker pods"]
    problems = []
    for policy in policies:
        name, spec = policy["metadata"].get("name"), policy.get("spec") or {}
        if set(spec.get("policyTypes") or []) != {"Ingress", "Egress"}:
            problems.append(f"NetworkPolicy {name}: policyTypes must be Ingress and Egress")
        problems += [f"NetworkPolicy {name}: {p}" for p in _ingress_problems(spec.get("ingress") or [], pod_labels,
                                                                                 container, settings.web_port)]
    egress = [rule for policy in policies for rule in (policy.get("spec") or {}).get("egress") or []]
    for (port, protocol), what in needed_egress(settings).items():
        if not any(_allows(rule, port, protocol, container) for rule in egress):
            problems.append(f"NetworkPolicy: no egress to {protocol} port {port} ({what})")
    if not any(_allows(r, settings.web_port, "TCP", container) and _from_workers(r.get("to"), pod_labels)
               for r in egress):
        problems.append("NetworkPolicy: no egress to the other workers' web port (they merge KPI answers)")
    return problems


def _ingress_problems(rules: list[Mapping[str, Any]], pod_labels: Mapping[str, str], container: Mapping[str, Any],
                      web_port: int) -> list[str]:
    problems = []
    for i, rule in enumerate(rules):
        if not rule.get("from"):
            problems.append(f"ingress rule {i} admits every source")
        ports = [_port(p.get("port"), container) for p in rule.get("ports") or []]
        if not ports or any(p != web_port for p in ports):
            problems.append(f"ingress rule {i} opens {ports or 'every port'}, only the web port {web_port} may be")
    if not any(_from_workers(r.get("from"), pod_labels) for r in rules):
        problems.append("no ingress from the other workers (they ask for each other's KPI shares)")
    if not any("namespaceSelector" in peer for r in rules for peer in r.get("from") or []):
        problems.append("no ingress from the monitoring namespace (Prometheus)")
    return problems


def _allows(rule: Mapping[str, Any], port: int, protocol: str, container: Mapping[str, Any]) -> bool:
    ports = rule.get("ports")
    if not ports:
        return True
    return any(_port(p.get("port"), container) == port and p.get("protocol", "TCP") == protocol for p in ports)


def _from_workers(peers: list[Mapping[str, Any]] | None, pod_labels: Mapping[str, str]) -> bool:
    """A peer list that includes the worker pods of the same namespace."""
    return any("namespaceSelector" not in p and selects(p.get("podSelector") or {}, pod_labels) for p in peers or [])
