"""Settings: one TOML file plus ``RETENTION_*`` environment variables for every setting.

Precedence: built-in default < config file < environment. Every bad value raises a
:class:`ConfigError` whose one-line message names the setting, the value and what is allowed.
"""

from __future__ import annotations

import json
import os
import re
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Literal, get_args
from urllib.parse import urlsplit, urlunsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from core.errors import ConfigError
from metrics.risk import DEFAULT_WEIGHTS as DEFAULT_RISK_WEIGHTS

ENV_PREFIX = "RETENTION_"
CONFIG_ENV = "RETENTION_CONFIG"
DEFAULT_CONFIG_FILE = "retention-monitor.toml"

Clock = Literal["wall", "event"]
_DURATION = re.compile(r"^(\d+)(s|m|h|d|w)$")
_DURATION_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_NAME = re.compile(r"^[A-Za-z0-9._-]{1,200}$")
_SEGMENT_VALUE = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,62}$")
_CURRENCY = re.compile(r"^[A-Z]{3}$")


MASK = "***"
DEFAULT_EUR_RATES = {"USD": 0.92, "GBP": 1.17, "CHF": 1.06}


def redact_url(url: str) -> str:
    """``url`` with the password of its user info (``scheme://user:PASSWORD@host``) replaced by ``***``.

    An ``@`` that does not parse as user info (a mistyped ``redis:/:PASSWORD@host``) hides everything
    before it: showing too little is better than echoing a password.
    """
    try:
        parts = urlsplit(url)
        password = parts.password
    except ValueError:
        parts, password = None, None
    if parts is not None and password is not None:
        userinfo, _, hostport = parts.netloc.rpartition("@")
        return urlunsplit(parts._replace(netloc=f"{userinfo.partition(':')[0]}:{MASK}@{hostport}"))
    if "@" not in url or (parts is not None and "@" in parts.netloc):  # no user info, or a user without password
        return url
    scheme, colon, _ = url.partition(":")
    return f"{scheme}{colon}{MASK}{url[url.rindex('@'):]}" if colon else MASK + url[url.rindex("@"):]


def redacted(name: str, value: Any) -> Any:
    """What may be shown of setting ``name``: ``***`` for a set password, URLs without their password."""
    if name.endswith("_password"):
        return MASK if value else value
    if name.endswith("_url") and isinstance(value, str):
        return redact_url(value)
    return value


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
    web_host: str = "127.0.0.1"
    web_port: int = 6066
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
    alert_rules: str = ""
    alert_interval: str = "10s"
    alert_resend: str = "1m"
    alert_webhook_url: str = ""
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
    def allowed_lateness_seconds(self) -> int:
        return parse_duration(self.allowed_lateness)

    @property
    def history_seconds(self) -> int:
        return parse_duration(self.history)

    @property
    def worker_dir(self) -> Path:
        """Where this app's worker keeps local state (table stores), one folder per ``app_id``."""
        return Path(self.data_dir).expanduser() / self.app_id

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    @property
    def input_topics(self) -> list[str]:
        return [self.topic_lifecycle, self.topic_support, self.topic_feedback, self.topic_team]

    def to_dict(self) -> dict[str, Any]:
        """Every setting's effective value (``currency_rates``: the table in force, see :attr:`rates`)."""
        return {f.name: self.rates if f.name == "currency_rates" else getattr(self, f.name) for f in fields(self)}


@dataclass(frozen=True)
class LoadedSettings:
    """Settings plus where each value came from (``default``, the file path, or the env variable)."""

    settings: Settings
    sources: dict[str, str]


def env_name(setting: str) -> str:
    return ENV_PREFIX + setting.upper()


def load_settings(
    path: str | Path | None = None,
    env: Mapping[str, str] | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> LoadedSettings:
    """Load defaults, then the config file, then ``RETENTION_*`` variables, then ``overrides``."""
    environ = os.environ if env is None else env
    known = {f.name: f for f in fields(Settings)}
    values: dict[str, Any] = {}
    sources = {name: "default" for name in known}

    config_path = _config_path(path, environ)
    if config_path is not None:
        for key, value in _read_toml(config_path).items():
            if key not in known:
                allowed = ", ".join(sorted(known))
                raise ConfigError(f"{config_path}: unknown setting {key!r}; allowed: {allowed}")
            values[key] = value
            sources[key] = str(config_path)

    for name in known:
        var = env_name(name)
        if var in environ:
            values[name] = _parse_env(name, var, environ[var])
            sources[name] = var

    for name, value in (overrides or {}).items():
        if name not in known:
            raise ConfigError(f"unknown setting {name!r}")
        values[name] = value
        sources[name] = "override"

    settings = Settings(**{name: _coerce(name, value, sources[name]) for name, value in values.items()})
    validate(settings, sources)
    return LoadedSettings(settings, sources)


def _config_path(path: str | Path | None, environ: Mapping[str, str]) -> Path | None:
    if path is not None:
        p = Path(path)
        if not p.is_file():
            raise ConfigError(f"config file {str(p)!r} does not exist")
        return p
    if CONFIG_ENV in environ:
        p = Path(environ[CONFIG_ENV])
        if not p.is_file():
            raise ConfigError(f"{CONFIG_ENV}={environ[CONFIG_ENV]}: no such config file")
        return p
    default = Path(DEFAULT_CONFIG_FILE)
    return default if default.is_file() else None


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as fh:
            data = tomllib.load(fh)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML ({exc})") from exc
    # A [retention] table is accepted so the file can share space with other tools' tables.
    section = data.get("retention", data)
    if not isinstance(section, dict):
        raise ConfigError(f"{path}: [retention] must be a table")
    return section


# Settings whose default is None take values of this type.
_NONE_DEFAULT_TYPES: dict[str, Any] = {"currency_rates": {"USD": 1.1}}


def _example(name: str) -> Any:
    default = getattr(Settings(), name)
    return _NONE_DEFAULT_TYPES[name] if default is None else default


def _parse_env(name: str, var: str, raw: str) -> Any:
    default = _example(name)
    if isinstance(default, bool | int | float | str):
        return raw
    try:
        return json.loads(raw)
    except json.JSONDecodeError as exc:
        kind = "a JSON object" if isinstance(default, dict) else "a JSON array"
        raise ConfigError(f"{var}={raw}: must be {kind}, e.g. {json.dumps(default)}") from exc


def _where(name: str, source: str) -> str:
    return source if source.startswith(ENV_PREFIX) else name


def _coerce(name: str, value: Any, source: str) -> Any:
    default = _example(name)
    where = _where(name, source)
    shown = redacted(name, value)
    if isinstance(default, int) and not isinstance(default, bool):
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, str) and re.fullmatch(r"-?\d+", value.strip()):
            return int(value)
        raise ConfigError(f"{where}={shown!r}: must be an integer")
    if isinstance(default, float):
        if isinstance(value, str) and re.fullmatch(r"\d+(\.\d+)?", value.strip()):
            return float(value)
        if not isinstance(value, int | float) or isinstance(value, bool):
            raise ConfigError(f"{where}={shown!r}: must be a number")
        return float(value)
    if isinstance(default, str):
        if not isinstance(value, str):
            raise ConfigError(f"{where}={shown!r}: must be a string")
        return value
    if isinstance(default, dict) and not isinstance(value, dict):
        raise ConfigError(f"{where}={shown!r}: must be a table/object")
    if isinstance(default, list) and not isinstance(value, list):
        raise ConfigError(f"{where}={shown!r}: must be a list")
    return value


def validate(settings: Settings, sources: Mapping[str, str] | None = None) -> None:
    """Raise :class:`ConfigError` for the first setting whose value is not allowed."""
    src = sources or {}

    def fail(name: str, value: Any, allowed: str) -> ConfigError:
        return ConfigError(f"{_where(name, src.get(name, name))}={redacted(name, value)!r}: {allowed}")

    for check in (_check_kafka, _check_services, _check_segments, _check_money, _check_runtime, _check_alerts,
                  _check_risk):
        check(settings, fail)


Fail = Callable[[str, Any, str], ConfigError]


SECURITY_PROTOCOLS = ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")
SASL_MECHANISMS = ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512")


def _check_kafka(settings: Settings, fail: Fail) -> None:
    for hostport in settings.kafka_bootstrap.split(","):
        host, _, port = hostport.strip().rpartition(":")
        if not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise fail("kafka_bootstrap", settings.kafka_bootstrap, "must be host:port[,host:port...]")
    _check_kafka_security(settings, fail)
    for name in ("app_id", "topic_lifecycle", "topic_support", "topic_feedback", "topic_team", "topic_dlq",
                 "topic_at_risk"):
        if not _NAME.match(getattr(settings, name)):
            raise fail(name, getattr(settings, name), "must be 1-200 of [A-Za-z0-9._-]")
    if len({*settings.input_topics, settings.topic_dlq}) != 5:
        raise fail("topic_dlq", settings.topic_dlq, "topic names must all differ")
    if settings.topic_at_risk in {*settings.input_topics, settings.topic_dlq}:
        raise fail("topic_at_risk", settings.topic_at_risk, "must differ from the input and dead-letter topics")
    if not 1 <= settings.partitions <= 1024:
        raise fail("partitions", settings.partitions, "must be 1-1024")
    if not 1 <= settings.replication_factor <= 32:
        raise fail("replication_factor", settings.replication_factor, "must be 1-32 (at most the number of brokers)")
    if not 1024 <= settings.max_message_bytes <= 16 * 1_048_576:
        raise fail("max_message_bytes", settings.max_message_bytes, "must be 1024-16777216")


def _check_kafka_security(settings: Settings, fail: Fail) -> None:
    protocol = settings.kafka_security_protocol
    if protocol not in SECURITY_PROTOCOLS:
        raise fail("kafka_security_protocol", protocol, f"must be one of {', '.join(SECURITY_PROTOCOLS)}")
    if protocol.startswith("SASL_"):
        if settings.kafka_sasl_mechanism not in SASL_MECHANISMS:
            raise fail("kafka_sasl_mechanism", settings.kafka_sasl_mechanism,
                       f"must be one of {', '.join(SASL_MECHANISMS)}")
        if not settings.kafka_sasl_username or not settings.kafka_sasl_password:
            raise fail("kafka_sasl_username", settings.kafka_sasl_username,
                       f"kafka_security_protocol={protocol} needs kafka_sasl_username and kafka_sasl_password")
    for name in ("kafka_ssl_cafile", "kafka_ssl_certfile", "kafka_ssl_keyfile"):
        path = getattr(settings, name)
        if path and not Path(path).expanduser().is_file():
            raise fail(name, path, "no such file (a PEM file, or empty)")
    if bool(settings.kafka_ssl_certfile) != bool(settings.kafka_ssl_keyfile):
        raise fail("kafka_ssl_certfile", settings.kafka_ssl_certfile,
                   "a client certificate needs both kafka_ssl_certfile and kafka_ssl_keyfile")


def _check_services(settings: Settings, fail: Fail) -> None:
    if not settings.redis_url.startswith(("redis://", "rediss://", "unix://")):
        raise fail("redis_url", settings.redis_url, "must start with redis://, rediss:// or unix://")
    if settings.redis_ssl_cafile and not Path(settings.redis_ssl_cafile).expanduser().is_file():
        raise fail("redis_ssl_cafile", settings.redis_ssl_cafile, "no such file (a PEM file, or empty)")
    if not settings.alertmanager_url.startswith(("http://", "https://")):
        raise fail("alertmanager_url", settings.alertmanager_url, "must start with http:// or https://")
    if not 0 < settings.web_port < 65536:
        raise fail("web_port", settings.web_port, "must be 1-65535")


def _check_segments(settings: Settings, fail: Fail) -> None:
    for dim, allowed_values in settings.segments.items():
        if not _SEGMENT_VALUE.match(dim) or dim in {"all", "abc"}:
            raise fail("segments", dim, "dimension names are [a-z0-9_.-], not 'all' or 'abc'")
        if not isinstance(allowed_values, list) or not allowed_values:
            raise fail("segments", {dim: allowed_values}, "each dimension needs a non-empty list of values")
        for value in allowed_values:
            if not isinstance(value, str) or not _SEGMENT_VALUE.match(value) or value == "other":
                raise fail("segments", f"{dim}:{value}", "values are [a-z0-9_.-] (max 63), not 'other'")
        if len(allowed_values) > 50:
            raise fail("segments", dim, "at most 50 values per dimension (labels must stay bounded)")
    for name in ("churn_reasons", "ticket_categories"):
        for value in getattr(settings, name):
            if not isinstance(value, str) or not _SEGMENT_VALUE.match(value):
                raise fail(name, value, "values are [a-z0-9_.-] (max 63)")
        if len(getattr(settings, name)) > 50:
            raise fail(name, len(getattr(settings, name)), "at most 50 values (labels must stay bounded)")
    t = settings.abc_thresholds
    numbers = len(t) == 2 and all(isinstance(x, int | float) and not isinstance(x, bool) for x in t)
    if not (numbers and 0 < t[0] < t[1] <= 1):
        raise fail("abc_thresholds", settings.abc_thresholds, "must be [A, B] with 0 < A < B <= 1, e.g. [0.8, 0.95]")


def _check_money(settings: Settings, fail: Fail) -> None:
    if not _CURRENCY.match(settings.currency):
        raise fail("currency", settings.currency, "must be an ISO 4217 code like EUR")
    for code, rate in (settings.currency_rates or {}).items():
        if not _CURRENCY.match(code):
            raise fail("currency_rates", code, "keys must be ISO 4217 codes like USD")
        if isinstance(rate, bool) or not isinstance(rate, int | float) or not rate > 0:
            raise fail("currency_rates", {code: rate}, "rates must be numbers > 0")
        if code == settings.currency and rate != 1:
            raise fail("currency_rates", {code: rate}, f"{code} is the reporting currency: its rate is 1 "
                       "(leave it out); rates say what 1 unit of another currency is worth in it")


def _check_runtime(settings: Settings, fail: Fail) -> None:
    try:
        if settings.allowed_lateness_seconds <= 0:
            raise ValueError("must be positive")
    except ValueError as exc:
        raise fail("allowed_lateness", settings.allowed_lateness, "must be a duration like 7d or 36h") from exc
    try:
        history = settings.history_seconds
    except ValueError as exc:
        raise fail("history", settings.history, "must be a duration like 800d") from exc
    if history < settings.allowed_lateness_seconds:
        raise fail("history", settings.history, f"must be at least allowed_lateness={settings.allowed_lateness}")
    try:
        ZoneInfo(settings.timezone)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise fail("timezone", settings.timezone, "must be an IANA time zone like UTC or Europe/Berlin") from exc
    if settings.clock not in get_args(Clock):
        raise fail("clock", settings.clock, "must be 'wall' (windows end now) or 'event' (at the newest event)")
    try:
        parse_duration(settings.checkpoint_interval)
    except ValueError as exc:
        raise fail("checkpoint_interval", settings.checkpoint_interval,
                   "must be a duration like 5m (0s: no KPI store checkpoints)") from exc
    if settings.store not in ("memory://", "rocksdb://"):
        raise fail("store", settings.store, "must be memory:// or rocksdb://")
    if settings.log_level.lower() not in ("debug", "info", "warning", "error"):
        raise fail("log_level", settings.log_level, "must be debug, info, warning or error")


def _check_alerts(settings: Settings, fail: Fail) -> None:
    for name in ("alert_interval", "alert_resend"):
        try:
            if parse_duration(getattr(settings, name)) <= 0:
                raise ValueError("must be positive")
        except ValueError as exc:
            raise fail(name, getattr(settings, name), "must be a duration like 10s or 1m") from exc
    if settings.alert_webhook_url and not settings.alert_webhook_url.startswith(("http://", "https://")):
        raise fail("alert_webhook_url", settings.alert_webhook_url, "must start with http:// or https:// (or be empty)")
    if settings.alert_rules and not Path(settings.alert_rules).is_file():
        raise fail("alert_rules", settings.alert_rules, "no such rule file (empty: the shipped alerts/rules.yml)")


def _check_risk(settings: Settings, fail: Fail) -> None:
    if not 1 <= settings.risk_threshold <= 100:
        raise fail("risk_threshold", settings.risk_threshold, "must be 1-100 (the score from which one is at risk)")
    for name, weight in settings.risk_weights.items():
        if name not in DEFAULT_RISK_WEIGHTS:
            raise fail("risk_weights", name, f"keys are {', '.join(DEFAULT_RISK_WEIGHTS)}")
        if isinstance(weight, bool) or not isinstance(weight, int) or not 0 <= weight <= 100:
            raise fail("risk_weights", {name: weight}, "weights are integers 0-100 (0 turns a reason off)")
    for name in ("risk_lookback", "risk_complaint_sla", "risk_first_reply_sla", "risk_quiet_after"):
        try:
            positive = parse_duration(getattr(settings, name)) > 0
        except ValueError:
            positive = False
        if not positive:
            raise fail(name, getattr(settings, name), "must be a duration like 48h or 60d")
    if not 1 < settings.risk_frequency_factor <= 100:
        raise fail("risk_frequency_factor", settings.risk_frequency_factor,
                   "must be a number > 1 and <= 100 (times the median gap between orders)")
    if not 0 <= settings.risk_refunds_min <= 1000:
        raise fail("risk_refunds_min", settings.risk_refunds_min, "must be 0-1000 (0 turns the refunds reason off)")
