"""Checks of the images: the Dockerfile's healthcheck, labels and pinned dependencies, and the image versions
of docker-compose.yml (aligned with the local stack, current majors); see deploy_checks.py for the rest."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from deploy_checks import dockerfile_instructions, monitor_services

from retention_monitor.stack.config import StackConfig

# Oldest releases of the compose images that the deploy/ files are written for: Prometheus 3 (its changed
# defaults checked in docs/deployment.md), an Alertmanager with the v2 API only and UTF-8 matchers.
MIN_VERSIONS = {"prom/prometheus": (3, 0, 0), "prom/alertmanager": (0, 28, 0)}


OCI_LABELS = ("title", "description", "source", "licenses", "version")


def image_problems(text: str, pyproject: Mapping[str, Any]) -> list[str]:
    """The final stage has a HEALTHCHECK on /ready and the OCI labels (its version the package's), and the
    dependencies are the pinned ones: the builder uses constraints.txt and the final stage installs only its wheels."""
    problems = []
    lines = dockerfile_instructions(text)
    froms = [i for i, (op, _) in enumerate(lines) if op == "FROM"]
    build, final = lines[:froms[-1]] if froms else [], lines[froms[-1]:] if froms else lines
    checks = [arg for op, arg in final if op == "HEALTHCHECK"]
    if not checks or "CMD" not in checks[-1] or "/ready" not in checks[-1]:
        problems.append("the final stage has no HEALTHCHECK CMD on the worker's /ready")
    label_text = " ".join(a for o, a in final if o == "LABEL")
    labels = {k: v.strip('"') for k, v in re.findall(r'org\.opencontainers\.image\.(\w+)=("[^"]*"|\S+)', label_text)}
    problems += [f"no LABEL org.opencontainers.image.{n}" for n in OCI_LABELS if n not in labels]
    version = labels.get("version", "")
    args = dict(re.findall(r"(\w+)=(\S+)", " ".join(a for o, a in final if o == "ARG")))
    version = re.sub(r"\$\{?(\w+)\}?", lambda m: args.get(m.group(1), m.group(0)), version)
    if version and version != pyproject["project"]["version"]:
        problems.append(f"image version {version} is not the package's {pyproject['project']['version']}")
    if not any(o == "COPY" and "constraints.txt" in a.split() for o, a in build):
        problems.append("the build stage does not COPY constraints.txt")
    if not any(o == "RUN" and re.search(r"pip (wheel|install) .*-c constraints\.txt", a) for o, a in build):
        problems.append("the build stage does not install with -c constraints.txt")
    if not any(o == "RUN" and "pip install" in a and "--no-index" in a for o, a in final):
        problems.append("the final stage may fetch from an index (pip install without --no-index)")
    return problems


def _version(tag: str) -> tuple[int, ...] | None:
    match = re.fullmatch(r"v?(\d+)\.(\d+)\.(\d+)", tag)
    return tuple(int(x) for x in match.groups()) if match else None


def compose_image_problems(compose: Mapping[str, Any], stack: StackConfig | None = None) -> list[str]:
    """Pinned image tags; Kafka the local stack's version; Prometheus and Alertmanager at least MIN_VERSIONS;
    monitor containers that run no worker turn off the image's HEALTHCHECK (it asks a worker's /ready)."""
    kafka_version = (stack or StackConfig()).kafka_version
    problems = []
    monitors = monitor_services(compose)
    for name, service in (compose.get("services") or {}).items():
        if name in monitors:
            command = service.get("command") or ["worker"]
            if command[0] != "worker" and not (service.get("healthcheck") or {}).get("disable"):
                problems.append(f"{name}: runs {command[0]}, so the image's HEALTHCHECK must be disabled")
            continue
        image, _, tag = str(service.get("image", "")).partition(":")
        version = _version(tag)
        if version is None:
            problems.append(f"{name}: image {service.get('image')} has no release tag (X.Y.Z)")
        elif image == "apache/kafka" and tag != kafka_version:
            problems.append(f"{name}: Kafka {tag}, the local stack runs {kafka_version}")
        elif image in MIN_VERSIONS and version < MIN_VERSIONS[image]:
            wanted = ".".join(map(str, MIN_VERSIONS[image]))
            problems.append(f"{name}: {image} {tag} is older than {wanted}")
    return problems
