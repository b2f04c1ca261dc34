"""Structural checks of the deployment files: the settings they set, docker-compose.yml, the Dockerfile's stages,
the runbooks of docs/operations.md (the image in image_checks.py, deploy/k8s/ in k8s_checks.py).

Docker and Kubernetes cannot run in the tests, so each check reads the parsed files and returns a list of
problems (empty when the files are consistent). The tests run every check on the real files and on mutated
copies, so that a check that cannot fail is noticed.
"""

from __future__ import annotations

import re
import tempfile
import tomllib
from collections.abc import Mapping
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
    lines = dockerfile_instructions(text)
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


def dockerfile_instructions(text: str) -> list[tuple[str, str]]:
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
