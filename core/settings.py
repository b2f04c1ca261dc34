"""Every setting of the monitor, and the slices of them that each stage and service receives.

:class:`Settings` is the configuration as a user writes it (one TOML key or ``RETENTION_*`` variable
per field); :mod:`core.config` loads and checks it. A stage gets only its slice (``settings.kafka``,
``settings.topics``, ``settings.facts``…), so what it depends on is visible in its signature.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo

from core.slices import (
    AlertSettings,
    CalendarSettings,
    FactSettings,
    KafkaSettings,
    RedisSettings,
    RiskSettings,
    StorageSettings,
    TopicSettings,
    WebSettings,
)

Clock = Literal["wall", "event"]
# Who posts the KPI alerts to Alertmanager: the worker's engine, Prometheus with the generated rules, or both.
AlertPath = Literal["stream", "prometheus", "both"]
RouteMode = Literal["process", "loop"]
_DURATION = re.compile(r"^(\d+)(s|m|h|d|w)$")
_DURATION_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
DEFAULT_EUR_RATES = {"USD": 0.92, "GBP": 1.17, "CHF": 1.06}
# The at-risk reasons and their default weights (0-100); metrics.risk scores with them.
DEFAULT_RISK_WEIGHTS: Mapping[str, int] = {"detractor": 35, "complaint_past_sla": 35, "purchase_frequency_falling": 25,
                                           "refunds": 20, "gone_quiet_a": 40, "gone_quiet_b": 20, "gone_quiet_c": 10}


def parse_duration(text: str) -> int:
    """Parse ``30s``, ``15m``, ``6h``, ``7d`` or ``2w`` into seconds."""
    match = _DURATION.match(text.strip())
    if not match:
        raise ValueError(f"{text!r} is not a duration like 30s, 15m, 6h, 7d or 2w")
    return int(match.group(1)) * _DURATION_UNITS[match.group(2)]


@dataclass(frozen=True)
class Settings:
    """Every setting of the monitor; field names are the TOML keys and, upper-cased, the env suffixes."""

    kafka_bootstrap: str = "127.0.0.1:9092"
    kafka_security_protocol: str = "PLAINTEXT"
    kafka_sasl_mechanism: str = "PLAIN"
    kafka_sasl_username: str = ""
    kafka_sasl_password: str = ""
    kafka_ssl_cafile: str = ""
    kafka_ssl_certfile: str = ""
    kafka_ssl_keyfile: str = ""
    app_id: str = "retention-monitor"
    topic_lifecycle: str = "retention.lifecycle"
    topic_support: str = "retention.support"
    topic_feedback: str = "retention.feedback"
    topic_team: str = "retention.team"
    topic_dlq: str = "retention.dlq"
    partitions: int = 4
    replication_factor: int = 1
    redis_url: str = "redis://127.0.0.1:6379/0"
    redis_password: str = ""
    redis_ssl_cafile: str = ""
    alertmanager_url: str = "http://127.0.0.1:9093"
    grafana_url: str = "http://127.0.0.1:3000"  # alerts' dashboard links and `dashboards push` start here
    web_host: str = "127.0.0.1"
    web_port: int = 6066
    web_advertised_url: str = ""  # how other workers reach this one ("": http://web_host:web_port)
    api_token: str = ""  # bearer token the HTTP API requires ("": no authentication)
    api_token_file: str = ""  # or a file holding it (a mounted Kubernetes Secret)
    api_token_protects_metrics: bool = False  # scrapers usually come without a token
    api_token_protects_ready: bool = False  # so do kubelet probes
    segments: dict[str, list[str]] = field(
        default_factory=lambda: {
            "plan": ["free", "basic", "pro", "enterprise"],
            "region": ["eu", "us", "apac"],
        }
    )
    churn_reasons: list[str] = field(
        default_factory=lambda: ["price", "service", "competitor", "product", "moved", "inactive", "other"]
    )
    ticket_categories: list[str] = field(
        default_factory=lambda: ["billing", "delivery", "product", "service", "account"]
    )
    abc_thresholds: list[float] = field(default_factory=lambda: [0.8, 0.95])
    currency: str = "EUR"
    currency_rates: dict[str, float] | None = None  # None: DEFAULT_EUR_RATES with EUR, else no other currency
    allowed_lateness: str = "7d"
    history: str = "800d"
    timezone: str = "UTC"
    clock: Clock = "wall"
    store: str = "rocksdb://"
    checkpoint_interval: str = "5m"
    data_dir: str = "~/.local/share/retention-monitor/worker"
    max_message_bytes: int = 1_048_576
    route: RouteMode = "loop"  # "process": the route stage in a child process (a second core; opt-in)
    gauge_interval: str = "5s"
    alert_rules: str = ""
    alert_interval: str = "10s"
    alert_resend: str = "1m"
    alert_webhook_url: str = ""
    alert_path: AlertPath = "stream"
    topic_at_risk: str = "retention.at_risk"
    risk_threshold: int = 30
    risk_weights: dict[str, int] = field(default_factory=lambda: dict(DEFAULT_RISK_WEIGHTS))
    risk_lookback: str = "90d"
    risk_complaint_sla: str = "48h"
    risk_first_reply_sla: str = "24h"
    risk_quiet_after: str = "60d"
    risk_frequency_factor: float = 2.0
    risk_refunds_min: int = 2
    log_level: str = "info"

    @property
    def rates(self) -> dict[str, float]:
        """Every accepted currency and what one unit of it is worth in the reporting currency (itself: 1).

        The built-in table holds rates *to EUR*; it applies only when EUR is the reporting currency, so
        another reporting currency never silently reuses them.
        """
        table = self.currency_rates
        if table is None:
            table = DEFAULT_EUR_RATES if self.currency == "EUR" else {}
        return {**table, self.currency: 1.0}

    @property
    def worker_dir(self) -> Path:
        """Where this app's worker keeps local state (table stores), one folder per ``app_id``."""
        return Path(self.data_dir).expanduser() / self.app_id

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    @property
    def bearer_token(self) -> str:
        """The token the HTTP API requires and the commands send: ``api_token``, or ``api_token_file``'s content."""
        if self.api_token_file:
            return Path(self.api_token_file).expanduser().read_text(encoding="utf-8").strip()
        return self.api_token

    # -- the slices each stage and service receives ----------------------------------------------

    @property
    def kafka(self) -> KafkaSettings:
        return KafkaSettings(self.kafka_bootstrap, self.kafka_security_protocol, self.kafka_sasl_mechanism,
                             self.kafka_sasl_username, self.kafka_sasl_password, self.kafka_ssl_cafile,
                             self.kafka_ssl_certfile, self.kafka_ssl_keyfile, self.max_message_bytes)

    @property
    def topics(self) -> TopicSettings:
        return TopicSettings(self.app_id, self.topic_lifecycle, self.topic_support, self.topic_feedback,
                             self.topic_team, self.topic_dlq, self.topic_at_risk, self.partitions,
                             self.replication_factor)

    @property
    def facts(self) -> FactSettings:
        return FactSettings(self.segments, tuple(self.churn_reasons), tuple(self.ticket_categories), self.currency,
                            self.rates, self.allowed_lateness, self.history, parse_duration(self.allowed_lateness),
                            parse_duration(self.history))

    @property
    def storage(self) -> StorageSettings:
        a, b = self.abc_thresholds
        return StorageSettings(self.store, self.worker_dir, parse_duration(self.checkpoint_interval), (a, b))

    @property
    def calendar(self) -> CalendarSettings:
        return CalendarSettings(self.timezone, self.clock)

    @property
    def alerting(self) -> AlertSettings:
        return AlertSettings(self.alert_rules, parse_duration(self.alert_interval), parse_duration(self.alert_resend),
                             self.alertmanager_url, self.alert_webhook_url,
                             RedisSettings(self.redis_url, self.redis_password, self.redis_ssl_cafile),
                             self.grafana_url, self.alert_path)

    @property
    def risk(self) -> RiskSettings:
        return RiskSettings(self.risk_threshold, {**DEFAULT_RISK_WEIGHTS, **self.risk_weights},
                            parse_duration(self.risk_lookback), parse_duration(self.risk_complaint_sla),
                            parse_duration(self.risk_first_reply_sla), parse_duration(self.risk_quiet_after),
                            self.risk_frequency_factor, self.risk_refunds_min)

    @property
    def web(self) -> WebSettings:
        return WebSettings(self.web_host, self.web_port, self.web_advertised_url, self.bearer_token,
                           self.api_token_protects_metrics, self.api_token_protects_ready)

    def to_dict(self) -> dict[str, Any]:
        """Every setting's effective value (``currency_rates``: the table in force, see :attr:`rates`)."""
        return {f.name: self.rates if f.name == "currency_rates" else getattr(self, f.name) for f in fields(self)}

