"""Where the local stack keeps its files and which loopback ports it listens on."""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from core.config import STACK_HOME_ENV
from core.settings import Settings
from retention_monitor.exceptions import StackError

HOME_ENV = STACK_HOME_ENV
_ANY_HOST = {"", "0.0.0.0", "::", "[::]"}


def _default_home() -> Path:
    env = os.environ.get(HOME_ENV)
    if env:
        return Path(env).expanduser()
    return Path("~/.local/share/retention-monitor/stack").expanduser()


def _default_cache() -> Path:
    return Path("~/.cache/retention-monitor").expanduser()


@dataclass(frozen=True)
class StackConfig:
    """Paths and ports of the local Kafka, Redis, Prometheus and Alertmanager (all on 127.0.0.1)."""

    home: Path = field(default_factory=_default_home)
    cache: Path = field(default_factory=_default_cache)
    kafka_version: str = "3.9.2"
    kafka_port: int = 9092
    kafka_controller_port: int = 9095
    redis_port: int = 6379
    prometheus_port: int = 9090
    alertmanager_port: int = 9093
    worker_targets: tuple[str, ...] = ("127.0.0.1:6066", "127.0.0.1:6067")
    alert_path: str = "stream"  # "prometheus" or "both": Prometheus loads the generated KPI alert rules too

    @classmethod
    def from_settings(cls, settings: Settings, **overrides: Any) -> StackConfig:
        """Ports the monitor's settings point at; the second worker target is ``web_port + 1``."""
        kafka_port = _port(settings.kafka_bootstrap.split(",")[0].strip().rpartition(":")[2], "kafka_bootstrap")
        redis_port = 6379
        if settings.redis_url.startswith(("redis://", "rediss://")):
            redis_port = urlsplit(settings.redis_url).port or 6379
        alertmanager_port = urlsplit(settings.alertmanager_url).port or 9093
        host = "127.0.0.1" if settings.web_host in _ANY_HOST else settings.web_host
        targets = (f"{host}:{settings.web_port}", f"{host}:{settings.web_port + 1}")
        cfg = cls(
            kafka_port=kafka_port,
            redis_port=redis_port,
            alertmanager_port=alertmanager_port,
            worker_targets=targets,
            alert_path=settings.alert_path,
        )
        return replace(cfg, **overrides)


def _port(text: str, name: str) -> int:
    if not text.isdigit() or not 0 < int(text) < 65536:
        raise StackError(f"{name}: {text!r} is not a port number")
    return int(text)


def repo_root() -> Path:
    """The checkout this package runs from (it holds ``deploy/``)."""
    return Path(__file__).resolve().parents[2]


def deploy_dir() -> Path:
    deploy = repo_root() / "deploy"
    if not (deploy / "prometheus" / "prometheus.yml").is_file() or not (deploy / "alertmanager.yml").is_file():
        raise StackError(
            f"{deploy}: deploy/prometheus/prometheus.yml and deploy/alertmanager.yml not found; "
            "run the stack from a retention-monitor source checkout"
        )
    return deploy
