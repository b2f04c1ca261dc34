"""Settings: file < environment precedence, and one-line errors naming the setting and the value."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from core.config import load_settings
from core.errors import ConfigError
from core.settings import Settings


def test_defaults_file_and_env_precedence(tmp_path: Path) -> None:
    cfg = tmp_path / "rm.toml"
    cfg.write_text('web_port = 7000\ntimezone = "Europe/Berlin"\n[segments]\ntier = ["gold", "silver"]\n')
    loaded = load_settings(cfg, env={"RETENTION_WEB_PORT": "7001", "RETENTION_CURRENCY_RATES": '{"USD": 0.9}'})
    s = loaded.settings
    assert s.web_port == 7001
    assert s.timezone == "Europe/Berlin"
    assert s.segments == {"tier": ["gold", "silver"]}
    assert s.currency_rates == {"USD": 0.9}
    assert loaded.sources["web_port"] == "RETENTION_WEB_PORT"
    assert loaded.sources["timezone"] == str(cfg)
    assert loaded.sources["app_id"] == "default"


def test_retention_table_in_a_shared_file(tmp_path: Path) -> None:
    cfg = tmp_path / "shared.toml"
    cfg.write_text('[retention]\napp_id = "shop-retention"\n[other_tool]\nx = 1\n')
    assert load_settings(cfg, env={}).settings.app_id == "shop-retention"


@pytest.mark.parametrize(
    ("env", "needle"),
    [
        ({"RETENTION_WEB_PORT": "abc"}, "RETENTION_WEB_PORT='abc': must be an integer"),
        ({"RETENTION_WEB_PORT": "70000"}, "RETENTION_WEB_PORT=70000: must be 1-65535"),
        ({"RETENTION_KAFKA_BOOTSTRAP": "localhost"}, "RETENTION_KAFKA_BOOTSTRAP='localhost': must be host:port"),
        ({"RETENTION_TIMEZONE": "Mars/Olympus"}, "RETENTION_TIMEZONE='Mars/Olympus': must be an IANA time zone"),
        ({"RETENTION_ALLOWED_LATENESS": "7 days"}, "RETENTION_ALLOWED_LATENESS='7 days': must be a duration"),
        ({"RETENTION_CLOCK": "sundial"}, "RETENTION_CLOCK='sundial': must be 'wall'"),
        ({"RETENTION_GAUGE_INTERVAL": "0s"}, "RETENTION_GAUGE_INTERVAL='0s': must be a duration like 10s"),
        ({"RETENTION_ALERT_PATH": "grafana"}, "RETENTION_ALERT_PATH='grafana': must be 'stream' (the workers post"),
        ({"RETENTION_SEGMENTS": "plan=pro"}, "RETENTION_SEGMENTS=plan=pro: must be a JSON object"),
        ({"RETENTION_SEGMENTS": '{"plan": ["Pro Plan"]}'}, "RETENTION_SEGMENTS='plan:Pro Plan'"),
        ({"RETENTION_SEGMENTS": '{"all": ["x"]}'}, "RETENTION_SEGMENTS='all'"),
        ({"RETENTION_CURRENCY": "euro"}, "RETENTION_CURRENCY='euro': must be an ISO 4217 code"),
        ({"RETENTION_CURRENCY_RATES": '{"USD": -1}'}, "RETENTION_CURRENCY_RATES={'USD': -1}: rates must be"),
        ({"RETENTION_REDIS_URL": "localhost:6379"}, "RETENTION_REDIS_URL='localhost:6379': must start with"),
        ({"RETENTION_GRAFANA_URL": "grafana:3000"}, "RETENTION_GRAFANA_URL='grafana:3000': must start with http"),
        ({"RETENTION_TOPIC_DLQ": "retention.lifecycle"}, "RETENTION_TOPIC_DLQ='retention.lifecycle'"),
        ({"RETENTION_HISTORY": "1d"}, "RETENTION_HISTORY='1d': must be at least allowed_lateness=7d"),
        ({"RETENTION_ABC_THRESHOLDS": "[0.9, 0.8]"}, "RETENTION_ABC_THRESHOLDS=[0.9, 0.8]: must be [A, B]"),
        ({"RETENTION_STORE": "postgres://"}, "RETENTION_STORE='postgres://': must be memory:// or rocksdb://"),
        ({"RETENTION_CONFIG": "/nonexistent.toml"}, "RETENTION_CONFIG=/nonexistent.toml: no such config file"),
    ],
)
def test_bad_values_get_one_line_errors(env: dict[str, str], needle: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_settings(env=env)
    message = str(info.value)
    assert needle in message
    assert "\n" not in message


@pytest.mark.parametrize(("path", "posts"), [("stream", True), ("both", True), ("prometheus", False)])
def test_alert_path_decides_whether_the_workers_post(path: str, posts: bool) -> None:
    assert load_settings(env={}).settings.alerting.posts  # the stream engine by default
    alerting = load_settings(env={"RETENTION_ALERT_PATH": path}).settings.alerting
    assert (alerting.path, alerting.posts) == (path, posts)


def test_unknown_key_in_file_names_the_closest_setting(tmp_path: Path) -> None:
    cfg = tmp_path / "rm.toml"
    cfg.write_text("web_prot = 1\n")
    with pytest.raises(ConfigError, match=r"unknown setting 'web_prot'; did you mean 'web_port'\?$"):
        load_settings(cfg, env={})


def test_unknown_key_in_file_like_no_setting_lists_them_all(tmp_path: Path) -> None:
    cfg = tmp_path / "rm.toml"
    cfg.write_text("zzzz = 1\n")
    with pytest.raises(ConfigError, match=r"unknown setting 'zzzz'; allowed: abc_thresholds, .*web_port"):
        load_settings(cfg, env={})


def test_an_unknown_retention_variable_is_refused_with_the_closest_setting() -> None:
    with pytest.raises(ConfigError) as info:
        load_settings(env={"RETENTION_REPORTING_CURRENCY": "USD"})
    message = str(info.value)
    assert message.startswith("RETENTION_REPORTING_CURRENCY: not a setting; did you mean 'RETENTION_CURRENCY'?")
    assert "RETENTION_ALLOW_UNKNOWN=1" in message
    assert "\n" not in message


@pytest.mark.parametrize("flag", ["1", "true", "YES"])
def test_unknown_retention_variables_can_be_allowed_for_shared_env_files(flag: str) -> None:
    env = {"RETENTION_REPORTING_CURRENCY": "USD", "RETENTION_ALLOW_UNKNOWN": flag, "RETENTION_CURRENCY": "USD"}
    assert load_settings(env=env).settings.currency == "USD"


def test_the_variables_that_are_no_settings_but_ours_are_not_refused(tmp_path: Path) -> None:
    cfg = tmp_path / "rm.toml"
    cfg.write_text("web_port = 7000\n")
    env = {"RETENTION_CONFIG": str(cfg), "RETENTION_STACK_HOME": str(tmp_path), "OTHER_TOOL_X": "1"}
    assert load_settings(env=env).settings.web_port == 7000


def test_invalid_toml_is_reported_with_the_path(tmp_path: Path) -> None:
    cfg = tmp_path / "rm.toml"
    cfg.write_text("web_port = = 1\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_settings(cfg, env={})


def test_the_built_in_rates_are_to_eur_and_apply_only_with_eur() -> None:
    assert Settings().rates == {"EUR": 1.0, "USD": 0.92, "GBP": 1.17, "CHF": 1.06}
    # Another reporting currency starts with no other currency: the EUR table would be wrong for it.
    usd = load_settings(env={"RETENTION_CURRENCY": "USD"}).settings
    assert usd.rates == {"USD": 1.0}
    given = load_settings(env={"RETENTION_CURRENCY": "USD", "RETENTION_CURRENCY_RATES": '{"EUR": 1.09}'}).settings
    assert given.rates == {"EUR": 1.09, "USD": 1.0}
    # An explicitly empty table with EUR accepts EUR alone.
    assert load_settings(env={"RETENTION_CURRENCY_RATES": "{}"}).settings.rates == {"EUR": 1.0}


def test_config_lists_the_effective_rates() -> None:
    assert load_settings(env={"RETENTION_CURRENCY": "GBP"}).settings.to_dict()["currency_rates"] == {"GBP": 1.0}


@pytest.mark.parametrize("rate", [0.92, 2])
def test_a_rate_for_the_reporting_currency_other_than_1_is_refused(rate: float) -> None:
    env = {"RETENTION_CURRENCY": "USD", "RETENTION_CURRENCY_RATES": json.dumps({"EUR": 1.09, "USD": rate})}
    with pytest.raises(ConfigError) as err:
        load_settings(env=env)
    message = str(err.value)
    assert message.startswith("RETENTION_CURRENCY_RATES=")
    assert f"'USD': {rate}" in message
    assert "USD is the reporting currency: its rate is 1" in message
    assert "\n" not in message


def test_a_rate_of_1_for_the_reporting_currency_is_accepted() -> None:
    env = {"RETENTION_CURRENCY": "USD", "RETENTION_CURRENCY_RATES": '{"USD": 1, "EUR": 1.09}'}
    assert load_settings(env=env).settings.rates == {"USD": 1.0, "EUR": 1.09}
