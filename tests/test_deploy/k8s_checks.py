"""Structural checks of deploy/k8s/: the manifests agree with each other, with the settings and with the code.

No cluster runs in the tests, and no schema checker can: kubeconform needs the Kubernetes JSON schemas, which
it downloads. So each check reads the parsed manifests and returns a list of problems (empty when they are
consistent): the kinds and API versions are known ones, selectors match the pod labels, ports and probes hit
the worker's web port and its real pages, volume mounts name defined volumes, the state directory is on a
PersistentVolumeClaim, the PodDisruptionBudget and NetworkPolicy fit the pods and the settings
(k8s_policy_checks.py). The tests run every check on the real files and on broken copies.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from deploy_checks import MONITOR_JOB, REPO, advertised_url_problems, effective_settings, load_yaml, setting_problems
from k8s_policy_checks import kind_problems, network_policy_problems, pdb_problems, selects

from core.config import CONFIG_ENV
from core.errors import ConfigError
from core.settings import Settings

K8S_DIR = REPO / "deploy" / "k8s"
WORKLOAD = "StatefulSet"
WEB_PAGES = REPO / "streams" / "web" / "pages.py"


def load_k8s(directory: Path = K8S_DIR) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The kustomization and every document of the resources it lists."""
    kustomization = load_yaml(directory / "kustomization.yaml")
    docs = []
    for resource in kustomization.get("resources") or []:
        path = directory / resource
        if path.is_file():
            docs += [d for d in yaml.safe_load_all(path.read_text()) if d]
    return kustomization, docs


def kustomization_problems(kustomization: Mapping[str, Any], directory: Path = K8S_DIR) -> list[str]:
    listed = list(kustomization.get("resources") or [])
    problems = [f"kustomization lists {r}, which does not exist" for r in listed if not (directory / r).is_file()]
    on_disk = {p.name for p in directory.glob("*.yaml")} | {p.name for p in directory.glob("*.yml")}
    problems += [f"{n} is not listed in kustomization.yaml" for n in sorted(on_disk - {"kustomization.yaml"})
                 if n not in listed]
    return problems


def _one(docs: Iterable[Mapping[str, Any]], kind: str) -> Mapping[str, Any] | None:
    found = [d for d in docs if d.get("kind") == kind]
    return found[0] if len(found) == 1 else None


def _by_name(docs: Iterable[Mapping[str, Any]], kind: str, name: str) -> Mapping[str, Any] | None:
    for d in docs:
        if d.get("kind") == kind and d.get("metadata", {}).get("name") == name:
            return d
    return None


def container_env(container: Mapping[str, Any], docs: list[dict[str, Any]]) -> tuple[dict[str, str], list[str]]:
    """Environment of a container (literal values, Secret and ConfigMap references resolved)."""
    env: dict[str, str] = {}
    problems = []

    def data(kind: str, name: str) -> dict[str, str] | None:
        doc = _by_name(docs, kind, name)
        if doc is None:
            problems.append(f"container {container.get('name')}: refers to missing {kind} {name}")
            return None
        return {**(doc.get("data") or {}), **(doc.get("stringData") or {})}

    for source in container.get("envFrom") or []:
        for key, kind in (("secretRef", "Secret"), ("configMapRef", "ConfigMap")):
            if key in source:
                env.update(data(kind, source[key]["name"]) or {})
    for var in container.get("env") or []:
        if "value" in var:
            env[var["name"]] = str(var["value"])
            continue
        ref = var.get("valueFrom") or {}
        for key, kind in (("secretKeyRef", "Secret"), ("configMapKeyRef", "ConfigMap")):
            if key in ref:
                values = data(kind, ref[key]["name"])
                if values is not None and ref[key]["key"] not in values:
                    problems.append(f"{var['name']}: {kind} {ref[key]['name']} has no key {ref[key]['key']}")
                elif values is not None:
                    env[var["name"]] = values[ref[key]["key"]]
    return env, problems


def _config_text(container: Mapping[str, Any], pod: Mapping[str, Any], docs: list[dict[str, Any]],
                 env: Mapping[str, str]) -> tuple[str | None, list[str]]:
    """The TOML that RETENTION_CONFIG points at, found through the volume mounts of the pod."""
    path = env.get(CONFIG_ENV)
    if not path:
        return None, []
    volumes = {v["name"]: v for v in pod.get("volumes") or []}
    for mount in container.get("volumeMounts") or []:
        prefix = mount["mountPath"].rstrip("/") + "/"
        volume = volumes.get(mount["name"], {})
        if path.startswith(prefix) and "configMap" in volume:
            key = path[len(prefix):]
            cm = _by_name(docs, "ConfigMap", volume["configMap"]["name"])
            if cm is None:
                return None, [f"ConfigMap {volume['configMap']['name']} is missing"]
            if key not in (cm.get("data") or {}):
                return None, [f"{CONFIG_ENV}={path}: ConfigMap {cm['metadata']['name']} has no key {key}"]
            return cm["data"][key], []
    return None, [f"{CONFIG_ENV}={path} is not inside a mounted ConfigMap"]


def _resolve_port(port: Any, container: Mapping[str, Any]) -> int | None:
    if isinstance(port, int):
        return port
    for p in container.get("ports") or []:
        if p.get("name") == port:
            return int(p["containerPort"])
    return None


def worker_pages(path: Path = WEB_PAGES) -> set[str]:
    """The paths the worker's web server answers (``@app.page("/ready")`` in streams/web/pages.py)."""
    return set(re.findall(r'@app\.page\("([^"]+)"\)', path.read_text()))


@dataclass(frozen=True)
class Workload:
    """The parts of the worker StatefulSet that the checks compare with the other manifests."""

    spec: Mapping[str, Any]
    pod: Mapping[str, Any]
    labels: Mapping[str, str]
    annotations: Mapping[str, Any]
    container: Mapping[str, Any]


def workload(docs: list[dict[str, Any]]) -> Workload | str:
    """The worker StatefulSet, or why there is none to check."""
    found = [d for d in docs if d.get("kind") == WORKLOAD]
    if len(found) != 1:
        return f"expected exactly one {WORKLOAD}, found {len(found)}"
    spec = found[0].get("spec") or {}
    template = spec.get("template") or {}
    pod = template.get("spec") or {}
    containers = pod.get("containers") or []
    if len(containers) != 1:
        return f"expected one container in the {WORKLOAD}, found {len(containers)}"
    metadata = template.get("metadata") or {}
    return Workload(spec, pod, metadata.get("labels") or {}, metadata.get("annotations") or {}, containers[0])


def worker_settings(docs: list[dict[str, Any]], w: Workload) -> tuple[Settings | None, list[str]]:
    """The settings the worker container runs with (its env, the Secret, the ConfigMap's TOML)."""
    env, problems = container_env(w.container, docs)
    config_text, config_problems = _config_text(w.container, w.pod, docs, env)
    problems += config_problems + setting_problems(env, f"{WORKLOAD} env", config_text)
    try:
        return effective_settings(env, config_text), problems
    except ConfigError as exc:
        return None, [*problems, f"{WORKLOAD} settings: {exc}"]


def k8s_problems(docs: list[dict[str, Any]]) -> list[str]:
    """Every manifest agrees with the others and with the settings the worker runs with."""
    problems = kind_problems(docs)
    w = workload(docs)
    if isinstance(w, str):
        return [*problems, w]
    if not selects(w.spec.get("selector") or {}, w.labels):
        problems.append(f"{WORKLOAD} selector does not match its pod labels")
    settings, setting_errors = worker_settings(docs, w)
    problems += setting_errors
    if settings is None:
        return problems
    problems += _replica_problems(w, settings)
    problems += _web_port_problems(w.container, w.annotations, settings.web_port)
    problems += advertised_url_problems(WORKLOAD, settings)
    problems += _security_problems(w.pod, w.container)
    problems += volume_problems(w, settings)
    problems += _service_problems(docs, w, settings.web_port)
    problems += pdb_problems(docs, w.labels)
    problems += network_policy_problems(docs, w.labels, w.container, settings)
    problems += _podmonitor_problems(docs, w.container, w.labels)
    if any(d.get("metadata", {}).get("namespace") for d in docs):
        problems.append("manifests must be namespace-less (set the namespace with kustomize or -n)")
    return problems


def _replica_problems(w: Workload, settings: Settings) -> list[str]:
    problems = []
    replicas = w.spec.get("replicas", 1)
    if replicas < 2:
        problems.append(f"{WORKLOAD} replicas={replicas}: run at least 2 workers")
    if replicas > settings.partitions:
        problems.append(f"{WORKLOAD} replicas={replicas} > partitions={settings.partitions}: extra workers stay idle")
    if settings.web_host not in ("0.0.0.0", "::"):
        problems.append(f"web_host={settings.web_host}: probes and Prometheus cannot reach the pod")
    return problems


def volume_problems(w: Workload, settings: Settings) -> list[str]:
    """Mounts name defined volumes, every volume is mounted, and data_dir is on a per-pod claim."""
    volumes = {v.get("name") for v in w.pod.get("volumes") or []}
    claims = {c.get("metadata", {}).get("name") for c in w.spec.get("volumeClaimTemplates") or []}
    both = sorted(volumes & claims)
    problems = [f"volumes {both} are both pod volumes and claim templates"] if both else []
    mounts = w.container.get("volumeMounts") or []
    mounted = {m.get("name") for m in mounts}
    problems += [f"volumeMount {n} names no volume or volumeClaimTemplate" for n in sorted(mounted - volumes - claims)]
    problems += [f"volume {n} is never mounted" for n in sorted((volumes | claims) - mounted)]
    data_dir = str(settings.data_dir).rstrip("/") + "/"
    state = [m for m in mounts if data_dir.startswith(m.get("mountPath", "").rstrip("/") + "/")]
    if not state:
        problems.append(f"data_dir {settings.data_dir} is on no mounted volume")
    elif max(state, key=lambda m: len(m["mountPath"]))["name"] not in claims:
        problems.append(f"data_dir {settings.data_dir} is not on a volumeClaimTemplate: "
                        "every restart would read the whole changelog again")
    if w.spec.get("serviceName") is None:
        problems.append(f"{WORKLOAD} has no serviceName (its headless Service)")
    return problems


def _web_port_problems(container: Mapping[str, Any], annotations: Mapping[str, Any], port: int) -> list[str]:
    problems = []
    container_ports = [int(p["containerPort"]) for p in container.get("ports") or []]
    if container_ports != [port]:
        problems.append(f"container ports {container_ports} != [RETENTION_WEB_PORT={port}]")
    pages = worker_pages()
    for probe, wanted in (("readinessProbe", "/ready"), ("livenessProbe", None)):
        get = (container.get(probe) or {}).get("httpGet")
        if not get:
            problems.append(f"{probe}: missing (an httpGet on the web port)")
            continue
        if _resolve_port(get.get("port"), container) != port:
            problems.append(f"{probe}: port {get.get('port')} != RETENTION_WEB_PORT={port}")
        if get.get("path") not in pages:
            problems.append(f"{probe}: the worker has no page {get.get('path')} (it has {', '.join(sorted(pages))})")
        elif wanted and get["path"] != wanted:
            problems.append(f"{probe}: {get['path']} is not {wanted}")
    if annotations.get("prometheus.io/scrape") != "true":
        problems.append("pod annotation prometheus.io/scrape is not \"true\"")
    if str(annotations.get("prometheus.io/port")) != str(port):
        problems.append(f"pod annotation prometheus.io/port={annotations.get('prometheus.io/port')} != {port}")
    return problems


def _security_problems(pod: Mapping[str, Any], container: Mapping[str, Any]) -> list[str]:
    problems = []
    resources = container.get("resources") or {}
    if not (resources.get("requests") and resources.get("limits", {}).get("memory")):
        problems.append("container resources need requests and a memory limit")
    pod_sc, sc = pod.get("securityContext") or {}, container.get("securityContext") or {}
    if not (sc.get("runAsNonRoot") or pod_sc.get("runAsNonRoot")):
        problems.append("runAsNonRoot is not set")
    if sc.get("runAsUser", pod_sc.get("runAsUser")) in (None, 0):
        problems.append("runAsUser must be a non-zero uid")
    if sc.get("allowPrivilegeEscalation") is not False:
        problems.append("allowPrivilegeEscalation must be false")
    return problems


def _service_problems(docs: list[dict[str, Any]], w: Workload, port: int) -> list[str]:
    """Every Service selects the workers and targets the web port; the serviceName is a headless one."""
    services = [d for d in docs if d.get("kind") == "Service"]
    if not services:
        return ["no Service"]
    problems = []
    for service in services:
        name = service.get("metadata", {}).get("name")
        spec = service.get("spec") or {}
        if not selects(spec.get("selector") or {}, w.labels):
            problems.append(f"Service {name}: selector does not match the pod labels")
        if not spec.get("ports"):
            problems.append(f"Service {name}: no port")
        for p in spec.get("ports") or []:
            if _resolve_port(p.get("targetPort", p.get("port")), w.container) != port:
                problems.append(f"Service {name}: targetPort {p.get('targetPort')} != RETENTION_WEB_PORT={port}")
    governing = _by_name(docs, "Service", str(w.spec.get("serviceName")))
    if governing is None:
        problems.append(f"{WORKLOAD} serviceName {w.spec.get('serviceName')} names no Service")
    elif (governing.get("spec") or {}).get("clusterIP") != "None":
        problems.append(f"Service {w.spec.get('serviceName')}: the {WORKLOAD}'s serviceName must be headless "
                        "(clusterIP: None)")
    return problems


def _podmonitor_problems(docs: list[dict[str, Any]], container: Mapping[str, Any],
                         pod_labels: Mapping[str, str]) -> list[str]:
    monitor = _one(docs, "PodMonitor")
    if monitor is None:
        return []
    problems = []
    spec = monitor.get("spec") or {}
    if not selects(spec.get("selector") or {}, pod_labels):
        problems.append("PodMonitor selector does not match the pod labels")
    names = {p.get("name") for p in container.get("ports") or []}
    for endpoint in spec.get("podMetricsEndpoints") or []:
        if endpoint.get("port") not in names:
            problems.append(f"PodMonitor scrapes port {endpoint.get('port')!r}, not a named container port")
    job = pod_labels.get(spec.get("jobLabel", ""))
    if job != MONITOR_JOB:
        problems.append(f"PodMonitor job would be {job!r}, the meta-alerts expect job={MONITOR_JOB!r}")
    return problems

