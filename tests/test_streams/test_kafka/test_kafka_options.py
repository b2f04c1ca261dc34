"""Kafka client options from the settings: every client (aiokafka and Faust) connects the same way, secrets
stay out of what the monitor prints, and a test broker can be given secured listeners (unit; no broker)."""

from __future__ import annotations

import ssl
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from certs import issue, make_ca
from faust.auth import SASLCredentials, SSLCredentials
from faust.transport.drivers.aiokafka import credentials_to_aiokafka_auth

from core.config import load_settings, redact_url, redacted
from core.errors import ConfigError
from core.settings import Settings
from retention_monitor.cli import main
from retention_monitor.exceptions import StackError
from retention_monitor.stack import StackConfig, services
from retention_monitor.stack.kafka import SERVER_PROPERTIES, BrokerSecurity, Kafka, Listener, override_properties
from streams.kafka.clients import client_options, new_producer, new_reader, ssl_context
from streams.kafka.diagnose import explain
from streams.worker.app import create_app
from streams.worker.faust_app import faust_credentials

PASSWORD = "pw-7c1e9b0d4a"  # distinctive, so that finding it in any output is a real leak


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    ca = make_ca(tmp_path_factory.mktemp("tls"))
    leaf = issue(ca, "client")
    return {"kafka_ssl_cafile": str(ca), "kafka_ssl_certfile": str(leaf.cert), "kafka_ssl_keyfile": str(leaf.key)}


def sasl(protocol: str = "SASL_SSL", mechanism: str = "SCRAM-SHA-256", **extra: Any) -> Settings:
    return load_settings(env={}, overrides={
        "kafka_bootstrap": "broker-1:9093,broker-2:9093", "kafka_security_protocol": protocol,
        "kafka_sasl_mechanism": mechanism, "kafka_sasl_username": "monitor", "kafka_sasl_password": PASSWORD,
        **extra}).settings


# -- client_options ----------------------------------------------------------------------------------


def test_plaintext_options_are_bootstrap_and_protocol_only() -> None:
    assert client_options(Settings().kafka) == {"bootstrap_servers": "127.0.0.1:9092", "security_protocol": "PLAINTEXT"}
    assert ssl_context(Settings().kafka) is None


def test_sasl_ssl_options_verify_the_broker_against_the_ca(tls: dict[str, str]) -> None:
    options = client_options(sasl(kafka_ssl_cafile=tls["kafka_ssl_cafile"]).kafka)
    context = options.pop("ssl_context")
    assert options == {"bootstrap_servers": "broker-1:9093,broker-2:9093", "security_protocol": "SASL_SSL",
                       "sasl_mechanism": "SCRAM-SHA-256", "sasl_plain_username": "monitor",
                       "sasl_plain_password": PASSWORD}
    assert isinstance(context, ssl.SSLContext)
    assert context.verify_mode == ssl.CERT_REQUIRED
    assert context.check_hostname
    subjects = [dict(rdn[0] for rdn in ca["subject"]) for ca in context.get_ca_certs()]
    assert {"commonName": "retention-monitor test ca"} in subjects


def test_sasl_plaintext_has_no_tls() -> None:
    options = client_options(sasl("SASL_PLAINTEXT", "PLAIN").kafka)
    assert "ssl_context" not in options
    assert (options["security_protocol"], options["sasl_mechanism"]) == ("SASL_PLAINTEXT", "PLAIN")


def test_mtls_loads_the_client_certificate(tls: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    loaded: list[tuple[str, str | None]] = []
    real = ssl.SSLContext.load_cert_chain

    def spy(self: ssl.SSLContext, certfile: str, keyfile: str | None = None, password: Any = None) -> None:
        loaded.append((certfile, keyfile))
        real(self, certfile, keyfile, password)

    monkeypatch.setattr(ssl.SSLContext, "load_cert_chain", spy)
    settings = load_settings(env={}, overrides={"kafka_security_protocol": "SSL", **tls}).settings
    options = client_options(settings.kafka)
    assert options["security_protocol"] == "SSL"
    assert "sasl_mechanism" not in options
    assert loaded == [(tls["kafka_ssl_certfile"], tls["kafka_ssl_keyfile"])]


@pytest.mark.asyncio
async def test_producer_and_reader_are_built_from_the_options(tls: dict[str, str]) -> None:
    settings = sasl(kafka_ssl_cafile=tls["kafka_ssl_cafile"])
    producer, reader = new_producer(settings.kafka), new_reader(settings.kafka)
    for client in (producer.client, reader._client):
        assert client._security_protocol == "SASL_SSL"
        assert client._sasl_mechanism == "SCRAM-SHA-256"
        assert (client._sasl_plain_username, client._sasl_plain_password) == ("monitor", PASSWORD)
        assert isinstance(client._ssl_context, ssl.SSLContext)
    await producer.stop()
    await reader.stop()


# -- Faust gets the same connection ------------------------------------------------------------------


def test_faust_credentials_are_none_for_plaintext() -> None:
    assert faust_credentials(Settings().kafka) is None


@pytest.mark.parametrize(("protocol", "mechanism"), [("SASL_SSL", "SCRAM-SHA-256"), ("SASL_SSL", "PLAIN"),
                                                     ("SASL_PLAINTEXT", "SCRAM-SHA-512"), ("SSL", "PLAIN")])
def test_faust_connects_like_the_aiokafka_clients(protocol: str, mechanism: str, tls: dict[str, str]) -> None:
    settings = sasl(protocol, mechanism, kafka_ssl_cafile=tls["kafka_ssl_cafile"])
    credentials = faust_credentials(settings.kafka)
    assert isinstance(credentials, SSLCredentials if protocol == "SSL" else SASLCredentials)
    faust_auth = dict(credentials_to_aiokafka_auth(credentials))
    ours = client_options(settings.kafka)
    ours.pop("bootstrap_servers")
    assert (faust_auth.pop("ssl_context") is None) == ("ssl_context" not in ours)
    ours.pop("ssl_context", None)
    assert faust_auth == ours
    assert PASSWORD not in repr(credentials)


# -- secrets stay out of what is printed --------------------------------------------------------------


@pytest.mark.parametrize(("url", "shown"), [
    ("redis://127.0.0.1:6379/0", "redis://127.0.0.1:6379/0"),
    (f"redis://:{PASSWORD}@redis:6379/0", "redis://:***@redis:6379/0"),
    (f"rediss://monitor:{PASSWORD}@redis:6380/1", "rediss://monitor:***@redis:6380/1"),
    ("redis://monitor@redis/0", "redis://monitor@redis/0"),
    (f"redis:/:{PASSWORD}@redis", "redis:***@redis"),  # mistyped: no user info parsed, hidden anyway
    (f"http://[::1:{PASSWORD}@x", "http:***@x"),  # unparsable
])
def test_redact_url(url: str, shown: str) -> None:
    assert redact_url(url) == shown


def test_redacted_masks_set_passwords_only() -> None:
    assert redacted("kafka_sasl_password", PASSWORD) == "***"
    assert redacted("redis_password", "") == ""  # unset stays visibly unset
    assert redacted("alert_webhook_url", f"https://bot:{PASSWORD}@hooks.example/x") == "https://bot:***@hooks.example/x"
    assert redacted("kafka_sasl_username", "monitor") == "monitor"


def test_config_errors_do_not_echo_passwords(tmp_path: Path) -> None:
    config = tmp_path / "retention-monitor.toml"
    config.write_text("kafka_sasl_password = 73519\n")  # a number where a string belongs
    with pytest.raises(ConfigError) as number:
        load_settings(config, env={})
    assert "kafka_sasl_password='***': must be a string" in str(number.value)
    assert "73519" not in str(number.value)
    with pytest.raises(ConfigError) as url:
        load_settings(env={"RETENTION_REDIS_URL": f"redis:/:{PASSWORD}@redis:6379"})
    assert "RETENTION_REDIS_URL='redis:***@redis:6379': must start with" in str(url.value)
    assert PASSWORD not in str(url.value)


@pytest.mark.parametrize("as_json", [True, False])
def test_config_show_masks_passwords(as_json: bool, monkeypatch: pytest.MonkeyPatch,
                                     capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(Path(__file__).parent)  # no retention-monitor.toml picked up from the checkout
    monkeypatch.setenv("COLUMNS", "250")  # rich would cut the table's columns in a narrow terminal
    monkeypatch.setenv("RETENTION_KAFKA_SASL_PASSWORD", PASSWORD)
    monkeypatch.setenv("RETENTION_REDIS_PASSWORD", PASSWORD + "-redis")
    monkeypatch.setenv("RETENTION_REDIS_URL", f"redis://:{PASSWORD}-url@redis:6379/0")
    assert main(["config", "show", *(["--json"] if as_json else [])]) == 0
    out = capsys.readouterr().out
    assert PASSWORD not in out
    assert out.count("***") == 3
    assert "redis://:***@redis:6379/0" in out
    assert "RETENTION_KAFKA_SASL_PASSWORD" in out


@pytest.mark.asyncio
async def test_explain_names_an_unreachable_broker() -> None:
    settings = load_settings(env={}, overrides={"kafka_bootstrap": "127.0.0.1:9"}).settings  # discard: refused
    refused = "nothing listens there; is the broker up?"
    assert await explain(settings.kafka) == f"cannot reach Kafka at 127.0.0.1:9: {refused}"
    several = replace(settings, kafka_bootstrap="127.0.0.1:9,127.0.0.1:9")
    assert await explain(several.kafka) == f"cannot reach Kafka at 127.0.0.1:9,127.0.0.1:9: 127.0.0.1:9: {refused}"


# -- a test broker with secured listeners --------------------------------------------------------------


def test_default_broker_properties_are_unchanged(tmp_path: Path) -> None:
    kafka = Kafka(StackConfig(home=tmp_path))
    text = kafka._properties()
    assert text == SERVER_PROPERTIES.format(port=9092, ctl=9095, data=tmp_path / "kafka" / "data")
    assert "listeners=PLAINTEXT://127.0.0.1:9092,CONTROLLER://127.0.0.1:9095\n" in text
    assert kafka.ports == (9092, 9095)


def test_secured_broker_replaces_the_listeners(tmp_path: Path) -> None:
    cfg = replace(StackConfig(home=tmp_path), kafka_port=19100, kafka_controller_port=19101)
    security = BrokerSecurity(listeners=(Listener("SASL", "SASL_SSL", 19100), Listener("MTLS", "SSL", 19102)),
                              properties={"ssl.keystore.type": "PEM", "num.partitions": "2"})
    kafka = Kafka(cfg, security)
    lines = kafka._properties().splitlines()
    entries = dict(line.split("=", 1) for line in lines)
    assert len(entries) == len(lines)  # every key once
    assert entries["listeners"] == "SASL://127.0.0.1:19100,MTLS://127.0.0.1:19102,CONTROLLER://127.0.0.1:19101"
    assert entries["advertised.listeners"] == "SASL://127.0.0.1:19100,MTLS://127.0.0.1:19102"
    assert entries["inter.broker.listener.name"] == "SASL"
    assert entries["listener.security.protocol.map"] == "SASL:SASL_SSL,MTLS:SSL,CONTROLLER:PLAINTEXT"
    assert (entries["ssl.keystore.type"], entries["num.partitions"]) == ("PEM", "2")
    assert kafka.ports == (19100, 19102, 19101)
    assert kafka.address == "127.0.0.1:19100"


def test_override_properties_replaces_in_place_and_appends() -> None:
    assert override_properties("a=1\n# note\nb=2\n", {"b": "3", "c": "4"}) == "a=1\n# note\nb=3\nc=4\n"


def test_secured_broker_must_listen_on_the_stack_port(tmp_path: Path) -> None:
    security = BrokerSecurity(listeners=(Listener("SASL", "SASL_SSL", 19200),))
    with pytest.raises(StackError, match=r"first listener must be on StackConfig\.kafka_port"):
        Kafka(StackConfig(home=tmp_path), security)


# -- what listens where ---------------------------------------------------------------------------------


@pytest.mark.parametrize("host", ["127.0.0.1", "0.0.0.0"])
def test_worker_binds_web_host_with_faust_views_off(host: str, tmp_path: Path) -> None:
    conf = create_app(Settings(web_host=host, data_dir=str(tmp_path))).app.conf
    assert (conf.web_bind, conf.web_port) == (host, 6066)
    # Faust's /table/<name>/<key> and /router/<name>/<key> would answer with customer data and owners
    flags = ("web_tables_enabled", "web_router_enabled", "web_graph_enabled", "web_stats_enabled",
             "web_metrics_enabled")
    assert {flag: getattr(conf, flag) for flag in flags} == dict.fromkeys(flags, False)


def test_default_web_host_is_loopback() -> None:
    assert Settings().web_host == "127.0.0.1"


def test_local_stack_listens_on_loopback_only(tmp_path: Path) -> None:
    listening: dict[str, list[str]] = {}
    for service in services(StackConfig(home=tmp_path)):
        argv = service.argv()
        if isinstance(service, Kafka):
            argv = [*argv, *service._properties().splitlines()]
        addresses = [a for a in argv if str(tmp_path) not in a]  # the test's name has "listen" in it
        listening[service.name] = [a for a in addresses if "listen" in a or "127.0.0.1" in a or "0.0.0.0" in a]
        assert service.address.startswith("127.0.0.1:")
    assert not any("0.0.0.0" in a or "::" in a for args in listening.values() for a in args)
    assert "listeners=PLAINTEXT://127.0.0.1:9092,CONTROLLER://127.0.0.1:9095" in listening["kafka"]
    assert listening["redis"] == ["127.0.0.1"]  # the value of --bind
    assert "--web.listen-address=127.0.0.1:9090" in listening["prometheus"]
    assert "--web.listen-address=127.0.0.1:9093" in listening["alertmanager"]
    assert "--cluster.listen-address=" in listening["alertmanager"]  # no gossip port at all
