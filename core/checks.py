"""The checks of every setting's value; each failure names the setting and what is allowed."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any, get_args
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from core.errors import ConfigError
from core.settings import DEFAULT_RISK_WEIGHTS, AlertPath, Clock, RouteMode, Settings, parse_duration

_NAME = re.compile(r"^[A-Za-z0-9._-]{1,200}$")
_SEGMENT_VALUE = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,62}$")
_CURRENCY = re.compile(r"^[A-Z]{3}$")

Fail = Callable[[str, Any, str], ConfigError]


def run_checks(settings: Settings, fail: Fail) -> None:
    """Raise ``fail(setting, value, what is allowed)`` for the first setting whose value is not allowed."""
    for check in (_check_kafka, _check_services, _check_api_token, _check_segments, _check_money, _check_runtime,
                  _check_alerts, _check_risk):
        check(settings, fail)


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
    if len({*settings.topics.inputs, settings.topic_dlq}) != 5:
        raise fail("topic_dlq", settings.topic_dlq, "topic names must all differ")
    if settings.topic_at_risk in {*settings.topics.inputs, settings.topic_dlq}:
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
    if not settings.grafana_url.startswith(("http://", "https://")):
        raise fail("grafana_url", settings.grafana_url, "must start with http:// or https://")
    if not 0 < settings.web_port < 65536:
        raise fail("web_port", settings.web_port, "must be 1-65535")
    if settings.web_advertised_url and not settings.web_advertised_url.startswith(("http://", "https://")):
        raise fail("web_advertised_url", settings.web_advertised_url,
                   "must start with http:// or https:// (or be empty: http://web_host:web_port)")


# RFC 6750's token68 characters; 16 or more so a token is not guessable by trying.
_TOKEN = re.compile(r"^[A-Za-z0-9._~+/=-]{16,4096}$")


def _check_api_token(settings: Settings, fail: Fail) -> None:
    if settings.api_token and settings.api_token_file:
        raise fail("api_token_file", settings.api_token_file, "set api_token or api_token_file, not both")
    if settings.api_token_file:
        path = Path(settings.api_token_file).expanduser()
        if not path.is_file():
            raise fail("api_token_file", settings.api_token_file, "no such file (a file holding the token, or empty)")
        try:
            token = settings.bearer_token
        except (OSError, UnicodeError) as exc:
            raise fail("api_token_file", settings.api_token_file, f"cannot be read ({exc})") from exc
        if not _TOKEN.match(token):
            raise fail("api_token_file", settings.api_token_file,
                       "must hold one token of 16-4096 characters of [A-Za-z0-9._~+/=-]")
    elif settings.api_token and not _TOKEN.match(settings.api_token):
        raise fail("api_token", settings.api_token, "must be 16-4096 characters of [A-Za-z0-9._~+/=-]")


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
        lateness = parse_duration(settings.allowed_lateness)
        if lateness <= 0:
            raise ValueError("must be positive")
    except ValueError as exc:
        raise fail("allowed_lateness", settings.allowed_lateness, "must be a duration like 7d or 36h") from exc
    try:
        history = parse_duration(settings.history)
    except ValueError as exc:
        raise fail("history", settings.history, "must be a duration like 800d") from exc
    if history < lateness:
        raise fail("history", settings.history, f"must be at least allowed_lateness={settings.allowed_lateness}")
    try:
        ZoneInfo(settings.timezone)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise fail("timezone", settings.timezone, "must be an IANA time zone like UTC or Europe/Berlin") from exc
    if settings.clock not in get_args(Clock):
        raise fail("clock", settings.clock, "must be 'wall' (windows end now) or 'event' (at the newest event)")
    if settings.route not in get_args(RouteMode):
        raise fail("route", settings.route, "must be 'process' (a child process: a second core) or 'loop'")
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
    for name in ("gauge_interval", "alert_interval", "alert_resend"):
        try:
            if parse_duration(getattr(settings, name)) <= 0:
                raise ValueError("must be positive")
        except ValueError as exc:
            raise fail(name, getattr(settings, name), "must be a duration like 10s or 1m") from exc
    if settings.alert_webhook_url and not settings.alert_webhook_url.startswith(("http://", "https://")):
        raise fail("alert_webhook_url", settings.alert_webhook_url, "must start with http:// or https:// (or be empty)")
    if settings.alert_path not in get_args(AlertPath):
        raise fail("alert_path", settings.alert_path,
                   "must be 'stream' (the workers post the alerts), 'prometheus' (the generated Prometheus rules "
                   "do) or 'both' (Alertmanager merges them)")
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
