"""The parts of the settings that one stage or service uses, each built by a property of ``Settings``.

Durations are in seconds here (parsed once); the names drop the prefix the flat setting has
(``kafka_bootstrap`` is ``KafkaSettings.bootstrap``).
"""

from __future__ import annotations

import socket
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from zoneinfo import ZoneInfo


@dataclass(frozen=True)
class KafkaSettings:
    """How every Kafka client of the monitor connects."""

    bootstrap: str = "127.0.0.1:9092"
    security_protocol: str = "PLAINTEXT"
    sasl_mechanism: str = "PLAIN"
    sasl_username: str = ""
    sasl_password: str = ""
    ssl_cafile: str = ""
    ssl_certfile: str = ""
    ssl_keyfile: str = ""
    max_message_bytes: int = 1_048_576


@dataclass(frozen=True)
class TopicSettings:
    """The topics the monitor reads and writes, and how it creates them."""

    app_id: str
    lifecycle: str
    support: str
    feedback: str
    team: str
    dlq: str
    at_risk: str
    partitions: int
    replication_factor: int

    @property
    def inputs(self) -> list[str]:
        return [self.lifecycle, self.support, self.feedback, self.team]

    @property
    def rekeyed(self) -> str:
        """The internal topic of packed valid events, partitioned by customer (the apply stage's input)."""
        return f"{self.app_id}-events-by-customer"

    @property
    def changelog(self) -> str:
        """The compacted changelog of the customer states and fact sets."""
        return f"{self.app_id}-customers-changelog"

    @property
    def redriven(self) -> str:
        """The compacted topic of the dead letters ``retention-monitor dlq redrive`` republished, by position."""
        return f"{self.dlq}.redriven"


@dataclass(frozen=True)
class FactSettings:
    """What turns events into facts: segments, label sets, money and lateness."""

    segments: Mapping[str, list[str]]
    churn_reasons: tuple[str, ...]
    ticket_categories: tuple[str, ...]
    currency: str
    rates: Mapping[str, float]  # every accepted currency -> its worth in ``currency`` (itself: 1)
    allowed_lateness: str
    history: str
    allowed_lateness_s: int
    history_s: int


@dataclass(frozen=True)
class StorageSettings:
    """Where a worker keeps its state, and how it checkpoints the KPI store."""

    store_url: str
    worker_dir: Path
    checkpoint_interval_s: int
    abc_thresholds: tuple[float, float]


@dataclass(frozen=True)
class CalendarSettings:
    """How periods are cut: the time zone of calendar periods, and what "now" is."""

    timezone: str
    clock: str  # "wall" or "event"

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)


@dataclass(frozen=True)
class RedisSettings:
    """The Redis that keeps the alert state shared by the workers."""

    url: str
    password: str = ""
    ssl_cafile: str = ""


@dataclass(frozen=True)
class AlertSettings:
    """Rules, timing and delivery of the alerts evaluated in the stream."""

    rules: str  # a rule file, or "" for the shipped one
    interval_s: int
    resend_s: int
    alertmanager_url: str
    webhook_url: str
    redis: RedisSettings
    grafana_url: str  # a rule's dashboard_url that is a path ("/d/...") is under this URL
    path: str  # alert_path: the engine posts unless it is "prometheus"

    @property
    def posts(self) -> bool:
        """Whether this worker's engine posts alerts (else the generated Prometheus rules alone page)."""
        return self.path != "prometheus"


@dataclass(frozen=True)
class RiskSettings:
    """At-risk scoring: threshold, weights (defaults filled in) and the durations of its reasons."""

    threshold: int
    weights: Mapping[str, int]
    lookback_s: int
    complaint_sla_s: int
    first_reply_sla_s: int
    quiet_after_s: int
    frequency_factor: float
    refunds_min: int


@dataclass(frozen=True)
class WebSettings:
    """The worker's HTTP server, and the URL other workers reach it at."""

    host: str
    port: int
    advertised_url: str = ""

    @property
    def url(self) -> str:
        if self.advertised_url:
            return self.advertised_url.rstrip("/")
        host = socket.gethostname() if self.host in ("0.0.0.0", "::", "") else self.host
        return f"http://{host}:{self.port}"
