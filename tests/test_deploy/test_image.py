"""The Dockerfile: a HEALTHCHECK that really asks a worker's /ready, OCI labels with the package's version, and
dependencies at the versions of constraints.txt; every check reports a broken copy."""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
from typing import Any

import pytest
from deploy_checks import COMPOSE_FILE, DOCKERFILE, REPO, load_pyproject, load_yaml
from fixtures import json_server
from image_checks import compose_image_problems, image_problems

from retention_monitor.stack.config import StackConfig

TEXT = DOCKERFILE.read_text()


def healthcheck_command() -> list[str]:
    """The exec-form CMD of the Dockerfile's HEALTHCHECK."""
    joined = TEXT.replace("\\\n", " ")
    line = next(line for line in joined.splitlines() if line.startswith("HEALTHCHECK"))
    command: list[str] = json.loads(line.split(" CMD ", 1)[1])
    return command


@pytest.mark.parametrize(("status", "healthy"), [(200, True), (503, False)])
def test_the_healthcheck_asks_ready_on_the_configured_port(status: int, healthy: bool) -> None:
    asked: list[str] = []

    def answer(path: str) -> tuple[int, Any]:
        asked.append(path)
        return status, {"ready": healthy}

    with json_server(answer) as url:
        env = {**os.environ, "RETENTION_WEB_PORT": url.rsplit(":", 1)[1], "PYTHONPATH": str(REPO)}
        command = healthcheck_command()
        assert command[0] == "python"
        done = subprocess.run([sys.executable, *command[1:]], env=env, capture_output=True, timeout=60, check=False)
    assert (done.returncode == 0) is healthy
    assert asked == ["/ready"]


def test_the_image_is_labelled_and_pinned() -> None:
    assert image_problems(TEXT, load_pyproject()) == []
    assert 'org.opencontainers.image.licenses="Apache-2.0"' in TEXT


@pytest.mark.parametrize(
    ("old", "new", "problem"),
    [
        ("/ready'", "/kpis'", "the final stage has no HEALTHCHECK CMD on the worker's /ready"),
        ('org.opencontainers.image.source="', 'org.example.source="', "no LABEL org.opencontainers.image.source"),
        ("ARG VERSION=0.1.0", "ARG VERSION=9.9.9", "image version 9.9.9 is not the package's 0.1.0"),
        ("COPY pyproject.toml README.md LICENSE constraints.txt ./", "COPY pyproject.toml README.md LICENSE ./",
         "the build stage does not COPY constraints.txt"),
        ("-c constraints.txt .", ".", "the build stage does not install with -c constraints.txt"),
        ("--no-index --find-links /wheels retention-monitor", "/wheels/*.whl",
         "the final stage may fetch from an index (pip install without --no-index)"),
    ],
)
def test_a_broken_dockerfile_is_reported(old: str, new: str, problem: str) -> None:
    assert old in TEXT
    assert image_problems(TEXT.replace(old, new), load_pyproject()) == [problem]


@pytest.fixture
def compose() -> dict[str, Any]:
    return copy.deepcopy(load_yaml(COMPOSE_FILE))


def test_compose_images_are_aligned_and_current(compose: dict[str, Any]) -> None:
    assert compose_image_problems(compose) == []
    assert compose["services"]["kafka"]["image"] == f"apache/kafka:{StackConfig().kafka_version}"


@pytest.mark.parametrize(
    ("service", "image", "problem"),
    [
        ("kafka", "apache/kafka:3.9.0", "kafka: Kafka 3.9.0, the local stack runs 3.9.2"),
        ("prometheus", "prom/prometheus:v2.42.0", "prometheus: prom/prometheus v2.42.0 is older than 3.0.0"),
        ("alertmanager", "prom/alertmanager:v0.25.0", "alertmanager: prom/alertmanager v0.25.0 is older than 0.28.0"),
        ("redis", "redis:latest", "redis: image redis:latest has no release tag (X.Y.Z)"),
    ],
)
def test_old_or_floating_images_are_reported(compose: dict[str, Any], service: str, image: str, problem: str) -> None:
    compose["services"][service]["image"] = image
    assert compose_image_problems(compose) == [problem]


def test_a_container_without_a_worker_must_turn_the_healthcheck_off(compose: dict[str, Any]) -> None:
    del compose["services"]["simulator"]["healthcheck"]
    assert compose_image_problems(compose) == ["simulator: runs simulate, so the image's HEALTHCHECK must be disabled"]
