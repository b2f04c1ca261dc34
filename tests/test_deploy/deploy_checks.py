"""Structural checks of the deployment files (docker-compose.yml, Dockerfile, deploy/k8s/, docs/operations.md).

Docker and Kubernetes cannot run in the tests, so each check reads the parsed files and returns a list of
problems (empty when the files are consistent). The tests run every check on the real files and on mutated
copies, so that a check that cannot fail is noticed.
"""

from __future__ import annotations

import re
import tempfile
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import fields
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import yaml
from markdown import markdown_anchors

from core.config import CONFIG_ENV, ENV_PREFIX, env_name, load_settings
from core.errors import ConfigError
from core.settings import Settings

REPO = Path(__file__).resolve().parents[2]
COMPOSE_FILE = REPO / "docker-compose.yml"
DOCKERFILE = REPO / "Dockerfile"
PYPROJECT = REPO / "pyproject.toml"
COMPOSE_PROMETHEUS = REPO / "deploy" / "compose" / "prometheus.yml"
K8S_DIR = REPO / "deploy" / "k8s"
OPERATIONS_DOC = REPO / "docs" / "operations.md"
# the files with alerting rules (retention-recording.yml only records the dashboards' series)
RULE_FILES = [REPO / "alerts" / "rules.yml", *sorted(p for p in (REPO / "deploy" / "prometheus" / "rules").glob("*.yml")
                                                     if p.name != "retention-recording.yml")]

MONITOR_JOB = "retention-monitor"
# Mounts the stack needs (service -> container path -> host path relative to the compose file).
REQUIRED_MOUNTS: dict[str, dict[str, str]] = {
    "prometheus": {
        "/etc/prometheus/prometheus.yml": "deploy/compose/prometheus.yml",
        "/etc/prometheus/rules": "deploy/prometheus/rules",
    },
    "alertmanager": {"/etc/alertmanager/alertmanager.yml": "deploy/alertmanager.yml"},
    "grafana": {
        "/etc/grafana/provisioning": "deploy/grafana/provisioning",
        "/var/lib/grafana/dashboards": "deploy/grafana/dashboards",
    },
}
ALLOWED_ENV = {env_name(f.name) for f in fields(Settings)}


# --------------------------------------------------------------------------------------------- settings


def setting_problems(env: Mapping[str, Any], where: str, config_text: str | None = None) -> list[str]:
    """Unknown ``RETENTION_*`` names, and values that ``load_settings`` rejects (alone, then together).

    ``config_text`` is a TOML config the variables are layered on (``RETENTION_CONFIG`` itself is left out:
    its path only exists inside the container).
    """
    problems = []
    values: dict[str, str] = {}
    for name, value in env.items():
        if not name.startswith(ENV_PREFIX) or name == CONFIG_ENV:
            continue
        if name not in ALLOWED_ENV:
            problems.append(f"{where}: {name} is not a setting of core.settings.Settings")
        elif isinstance(value, bool) or value is None or not isinstance(value, str | int | float):
            problems.append(f"{where}: {name}={value!r} must be a string (quote it)")
        else:
            values[name] = str(value)
    for name, value in values.items():
        problem = _load_problem(config_text, {name: value})
        if problem:
            problems.append(f"{where}: {problem}")
    if not problems:
        problem = _load_problem(config_text, values)
        if problem:
            problems.append(f"{where}: {problem}")
    return problems


def effective_settings(env: Mapping[str, Any], config_text: str | None = None) -> Settings:
    """The settings a container with ``env`` (and the TOML ``config_text``) runs with; raises ConfigError."""
    values = {k: str(v) for k, v in env.items() if k.startswith(ENV_PREFIX) and k != CONFIG_ENV}
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "retention-monitor.toml"
        path.write_text(config_text or "")
        return load_settings(path, env=values).settings


def _load_problem(config_text: str | None, env: Mapping[str, str]) -> str | None:
    try:
        effective_settings(env, config_text)
    except ConfigError as exc:
        return str(exc)
    return None


# ---------------------------------------------------------------------------------------------- compose


def load_yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text())


def compose_env(service: Mapping[str, Any]) -> dict[str, Any]:
    env = service.get("environment") or {}
    if isinstance(env, list):  # ["NAME=value", ...]
        return dict(item.split("=", 1) if "=" in item else (item, "") for item in env)
    return dict(env)


def _volume(entry: Any) -> tuple[str, str]:
    """(source, target) of a short (``src:dst[:mode]``) or long volume entry."""
    if isinstance(entry, dict):
        return str(entry.get("source", "")), str(entry.get("target", ""))
    parts = str(entry).split(":")
    if len(parts) == 1:
        return "", parts[0]
    return parts[0], parts[1]


def _is_host_path(source: str) -> bool:
    return source.startswith((".", "/", "~"))


def compose_mount_problems(compose: Mapping[str, Any], base: Path = REPO) -> list[str]:
    """Bind-mounted host paths exist (relative to the compose file), named volumes are declared, and the
    config mounts of REQUIRED_MOUNTS are there."""
    problems = []
    declared = set((compose.get("volumes") or {}).keys())
    services = compose.get("services") or {}
    for name, service in services.items():
        mounts: dict[str, str] = {}
        for entry in service.get("volumes") or []:
            source, target = _volume(entry)
            mounts[target] = source
            if _is_host_path(source):
                if not (base / source).exists():
                    problems.append(f"{name}: mounted host path {source} does not exist")
            elif source and source not in declared:
                problems.append(f"{name}: named volume {source} is not declared under volumes:")
        for target, source in REQUIRED_MOUNTS.get(name, {}).items():
            if target not in mounts:
                problems.append(f"{name}: nothing mounted at {target} (expected ./{source})")
            elif Path(mounts[target]) != Path(source):
                problems.append(f"{name}: {target} mounts {mounts[target]}, expected ./{source}")
    for name in REQUIRED_MOUNTS:
        if name not in services:
            problems.append(f"service {name} is missing")
    return problems


def monitor_services(compose: Mapping[str, Any]) -> dict[str, Any]:
    """Services that run the retention-monitor image."""
    return {
        name: s for name, s in (compose.get("services") or {}).items()
        if "build" in s or str(s.get("image", "")).startswith("retention-monitor")
    }


def worker_services(compose: Mapping[str, Any]) -> dict[str, Any]:
    """Monitor services that run ``worker`` (the image's default command)."""
    return {
        name: s for name, s in monitor_services(compose).items()
        if not s.get("command") or next(iter(s["command"])) == "worker"
    }


def _container_port(mapping: Any) -> int:
    if isinstance(mapping, dict):
        return int(mapping["target"])
    text = str(mapping).split("/")[0]
    return int(text.rsplit(":", 1)[-1])


def _host_port(mapping: Any) -> str | None:
    if isinstance(mapping, dict):
        return str(mapping.get("published")) if mapping.get("published") else None
    parts = str(mapping).split("/")[0].split(":")
    return parts[-2] if len(parts) >= 2 else None


def compose_env_problems(compose: Mapping[str, Any]) -> list[str]:
    """Every RETENTION_* variable of every service is a setting with a valid value."""
    problems = []
    for name, service in (compose.get("services") or {}).items():
        problems += setting_problems(compose_env(service), name)
    return problems


def compose_worker_problems(compose: Mapping[str, Any]) -> list[str]:
    """Workers: published container port, healthcheck URL and data dir agree with their settings."""
    problems = []
    workers = worker_services(compose)
    if len(workers) < 2:
        problems.append(f"expected at least two worker services, found {sorted(workers)}")
    data_sources: dict[str, str] = {}
    for name, service in workers.items():
        try:
            settings = effective_settings(compose_env(service))
        except ConfigError as exc:
            problems.append(f"{name}: {exc}")
            continue
        problems += _worker_port_problems(name, service, settings)
        mounts = dict(_volume(v)[::-1] for v in service.get("volumes") or [])
        source = mounts.get(settings.data_dir)
        if not source:
            problems.append(f"{name}: no volume at its data dir {settings.data_dir}")
        elif source in data_sources:
            problems.append(f"{name}: shares its data volume {source} with {data_sources[source]}")
        else:
            data_sources[source] = name
    return problems + _host_port_problems(compose)


def _worker_port_problems(name: str, service: Mapping[str, Any], settings: Settings) -> list[str]:
    problems = []
    port = settings.web_port
    if settings.web_host not in ("0.0.0.0", "::"):
        problems.append(f"{name}: RETENTION_WEB_HOST={settings.web_host} is not reachable from other containers")
    ports = service.get("ports") or []
    if not ports:
        problems.append(f"{name}: publishes no port (RETENTION_WEB_PORT={port})")
    for mapping in ports:
        if _container_port(mapping) != port:
            problems.append(f"{name}: publishes container port {_container_port(mapping)}, "
                            f"but listens on RETENTION_WEB_PORT={port}")
    problems += advertised_url_problems(name, settings, expected_host=name)
    test = " ".join(str(t) for t in (service.get("healthcheck") or {}).get("test") or [])
    urls = re.findall(r"https?://[^'\" ]+", test)
    if not urls:
        problems.append(f"{name}: no healthcheck on /ready, /metrics or /kpis")
    for url in urls:
        parsed = urlparse(url)
        if parsed.port != port or parsed.path not in ("/ready", "/metrics", "/kpis"):
            problems.append(f"{name}: healthcheck {url} is not /ready, /metrics or /kpis on port {port}")
    return problems


def advertised_url_problems(name: str, settings: Settings, expected_host: str | None = None) -> list[str]:
    """Other workers ask this one for its share of a KPI at its advertised URL: it must reach its port."""
    url = settings.web_advertised_url
    if not url:
        return [f"{name}: no RETENTION_WEB_ADVERTISED_URL (others would ask http://{settings.web_host}:{settings.web_port})"]
    parsed = urlparse(url)
    if parsed.port != settings.web_port:
        return [f"{name}: RETENTION_WEB_ADVERTISED_URL={url} is not on RETENTION_WEB_PORT={settings.web_port}"]
    if expected_host is not None and parsed.hostname != expected_host:
        return [f"{name}: RETENTION_WEB_ADVERTISED_URL={url} does not name the service {expected_host}"]
    return []


def _host_port_problems(compose: Mapping[str, Any]) -> list[str]:
    problems = []
    published: dict[str, str] = {}
    for name, service in (compose.get("services") or {}).items():
        for mapping in service.get("ports") or []:
            host = _host_port(mapping)
            if host and host in published:
                problems.append(f"{name}: host port {host} is already published by {published[host]}")
            elif host:
                published[host] = name
    return problems


def prometheus_target_problems(compose: Mapping[str, Any], prometheus: Mapping[str, Any]) -> list[str]:
    """The retention-monitor scrape job targets exactly the worker services on their RETENTION_WEB_PORT."""
    expected = set()
    for name, service in worker_services(compose).items():
        try:
            expected.add(f"{name}:{effective_settings(compose_env(service)).web_port}")
        except ConfigError as exc:
            return [f"{name}: {exc}"]
    jobs = [j for j in prometheus.get("scrape_configs") or [] if j.get("job_name") == MONITOR_JOB]
    if len(jobs) != 1:
        return [f"expected one scrape job {MONITOR_JOB!r}, found {len(jobs)}"]
    targets = {t for sc in jobs[0].get("static_configs") or [] for t in sc.get("targets") or []}
    problems = [f"Prometheus scrapes {t}, which is no worker service:port" for t in sorted(targets - expected)]
    problems += [f"Prometheus does not scrape worker {t}" for t in sorted(expected - targets)]
    alertmanagers = {
        t for am in (prometheus.get("alerting") or {}).get("alertmanagers") or []
        for sc in am.get("static_configs") or [] for t in sc.get("targets") or []
    }
    services = compose.get("services") or {}
    for target in alertmanagers:
        if target.split(":")[0] not in services:
            problems.append(f"Prometheus sends alerts to {target}, which is no compose service")
    return problems


# ------------------------------------------------------------------------------------------- Dockerfile


def dockerfile_problems(text: str, pyproject: Mapping[str, Any]) -> list[str]:
    """Multi-stage build, non-root USER in the final stage, and alerts/rules.yml shipped as package data."""
    problems = []
    lines = _dockerfile_instructions(text)
    froms = [i for i, (op, _) in enumerate(lines) if op == "FROM"]
    if len(froms) < 2:
        problems.append(f"not a multi-stage build ({len(froms)} FROM)")
    if not any(op == "COPY" and "--from=" in arg for op, arg in lines):
        problems.append("the final stage copies nothing from a build stage (COPY --from=...)")
    final = lines[froms[-1]:] if froms else lines
    users = [arg.split()[0] for op, arg in final if op == "USER"]
    if not users:
        problems.append("the final stage has no USER (runs as root)")
    elif users[-1].split(":")[0] in ("root", "0"):
        problems.append(f"the final stage runs as USER {users[-1]}")
    build = lines[:froms[-1]] if len(froms) > 1 else []
    if not any(op == "COPY" and re.search(r"(^|\s)alerts/?(\s|$)", arg) for op, arg in build):
        problems.append("the build stage does not COPY the alerts package (alerts/rules.yml)")
    if not any(op == "COPY" and re.search(r"(^|\s)native/?(\s|$)", arg) for op, arg in build):
        problems.append("no build stage COPYs native/ (the compiled apply step)")
    package_data = pyproject.get("tool", {}).get("setuptools", {}).get("package-data", {})
    if "rules.yml" not in package_data.get("alerts", []):
        problems.append('pyproject.toml [tool.setuptools.package-data] lacks alerts = ["rules.yml"]')
    return problems


def _dockerfile_instructions(text: str) -> list[tuple[str, str]]:
    joined = re.sub(r"\\\n", " ", text)
    out = []
    for raw in joined.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        op, _, arg = line.partition(" ")
        out.append((op.upper(), arg.strip()))
    return out


def load_pyproject(path: Path = PYPROJECT) -> dict[str, Any]:
    with path.open("rb") as fh:
        return tomllib.load(fh)


# ------------------------------------------------------------------------------------------- Kubernetes


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


def k8s_problems(docs: list[dict[str, Any]]) -> list[str]:
    """Deployment, Service, Secret, ConfigMap and PodMonitor agree with each other and with the settings."""
    deployment = _one(docs, "Deployment")
    if deployment is None:
        return ["expected exactly one Deployment"]
    problems = []
    spec = deployment.get("spec") or {}
    pod = spec.get("template", {}).get("spec") or {}
    pod_labels = spec.get("template", {}).get("metadata", {}).get("labels") or {}
    annotations = spec.get("template", {}).get("metadata", {}).get("annotations") or {}
    containers = pod.get("containers") or []
    if len(containers) != 1:
        return [f"expected one container in the Deployment, found {len(containers)}"]
    container = containers[0]
    if not set((spec.get("selector", {}).get("matchLabels") or {}).items()) <= set(pod_labels.items()):
        problems.append("Deployment selector does not match its pod labels")

    env, env_problems = container_env(container, docs)
    problems += env_problems
    config_text, config_problems = _config_text(container, pod, docs, env)
    problems += config_problems
    problems += setting_problems(env, "Deployment env", config_text)
    try:
        settings = effective_settings(env, config_text)
    except ConfigError as exc:
        return [*problems, f"Deployment settings: {exc}"]
    port = settings.web_port

    replicas = spec.get("replicas", 1)
    if replicas < 2:
        problems.append(f"Deployment replicas={replicas}: run at least 2 workers")
    if replicas > settings.partitions:
        problems.append(f"Deployment replicas={replicas} > partitions={settings.partitions}: extra workers stay idle")
    if settings.web_host not in ("0.0.0.0", "::"):
        problems.append(f"web_host={settings.web_host}: probes and Prometheus cannot reach the pod")

    problems += _web_port_problems(container, annotations, port)
    problems += advertised_url_problems("Deployment", settings)
    problems += _security_problems(pod, container)
    problems += _service_problems(docs, container, pod_labels, port)
    problems += _podmonitor_problems(docs, container, pod_labels)
    if any(d.get("metadata", {}).get("namespace") for d in docs):
        problems.append("manifests must be namespace-less (set the namespace with kustomize or -n)")
    return problems


def _web_port_problems(container: Mapping[str, Any], annotations: Mapping[str, Any], port: int) -> list[str]:
    problems = []
    container_ports = [int(p["containerPort"]) for p in container.get("ports") or []]
    if container_ports != [port]:
        problems.append(f"container ports {container_ports} != [RETENTION_WEB_PORT={port}]")
    for probe in ("readinessProbe", "livenessProbe"):
        get = (container.get(probe) or {}).get("httpGet")
        if not get:
            problems.append(f"{probe}: missing (an httpGet on the web port)")
        elif _resolve_port(get.get("port"), container) != port:
            problems.append(f"{probe}: port {get.get('port')} != RETENTION_WEB_PORT={port}")
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


def _service_problems(docs: list[dict[str, Any]], container: Mapping[str, Any], pod_labels: Mapping[str, str],
                      port: int) -> list[str]:
    service = _one(docs, "Service")
    if service is None:
        return ["expected exactly one Service"]
    problems = []
    selector = service.get("spec", {}).get("selector") or {}
    if not selector or not set(selector.items()) <= set(pod_labels.items()):
        problems.append("Service selector does not match the pod labels")
    ports = service.get("spec", {}).get("ports") or []
    if not ports:
        problems.append("Service has no port")
    for p in ports:
        target = _resolve_port(p.get("targetPort", p.get("port")), container)
        if target != port:
            problems.append(f"Service targetPort {p.get('targetPort')} != RETENTION_WEB_PORT={port}")
    return problems


def _podmonitor_problems(docs: list[dict[str, Any]], container: Mapping[str, Any],
                         pod_labels: Mapping[str, str]) -> list[str]:
    monitor = _one(docs, "PodMonitor")
    if monitor is None:
        return []
    problems = []
    spec = monitor.get("spec") or {}
    selector = spec.get("selector", {}).get("matchLabels") or {}
    if not selector or not set(selector.items()) <= set(pod_labels.items()):
        problems.append("PodMonitor selector does not match the pod labels")
    names = {p.get("name") for p in container.get("ports") or []}
    for endpoint in spec.get("podMetricsEndpoints") or []:
        if endpoint.get("port") not in names:
            problems.append(f"PodMonitor scrapes port {endpoint.get('port')!r}, not a named container port")
    job = pod_labels.get(spec.get("jobLabel", ""))
    if job != MONITOR_JOB:
        problems.append(f"PodMonitor job would be {job!r}, the meta-alerts expect job={MONITOR_JOB!r}")
    return problems


# ------------------------------------------------------------------------------------------------- docs


def runbook_urls(rule_file: Path) -> dict[str, str | None]:
    """Alert name -> runbook_url of a stream rule file (``rules:``) or a Prometheus rule file (``groups:``)."""
    data = load_yaml(rule_file) or {}
    urls: dict[str, str | None] = {}
    for rule in data.get("rules") or []:
        urls[rule["name"]] = rule.get("runbook_url")
    for group in data.get("groups") or []:
        for rule in group.get("rules") or []:
            if "alert" in rule:
                urls[rule["alert"]] = (rule.get("annotations") or {}).get("runbook_url")
    return urls


def runbook_problems(urls: Mapping[str, str | None], doc_text: str, doc: str = "docs/operations.md") -> list[str]:
    """Every alert has a runbook_url into ``doc`` whose anchor exists there."""
    anchors = markdown_anchors(doc_text)
    problems = []
    for alert, url in urls.items():
        if not url:
            problems.append(f"{alert}: no runbook_url")
            continue
        parsed = urlparse(url)
        if not parsed.path.endswith("/" + doc) or not parsed.fragment:
            problems.append(f"{alert}: runbook_url {url} does not point into {doc}#<anchor>")
        elif parsed.fragment not in anchors:
            problems.append(f"{alert}: anchor #{parsed.fragment} does not exist in {doc}")
    return problems
