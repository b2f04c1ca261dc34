"""Security against real services: a Kafka broker that only speaks TLS (SASL_SSL with SCRAM-SHA-256 and PLAIN,
and an mTLS listener), and a redis-server with ``requirepass`` and a ``tls-port``, all with certificates made
here (tests/certs.py) and passwords drawn per run, so that finding one in an output is a real leak.

A worker processes events published over SASL_SSL and answers ``/kpis`` exactly like
:class:`fixtures.PurePipeline`; wrong credentials fail in bounded time with one line naming the cause.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import secrets
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest
from aiokafka.errors import KafkaConnectionError
from aiokafka.helpers import create_ssl_context
from certs import Leaf, issue, make_ca
from fixtures import ROOT, converge, encode, free_port, isolated_env, poll, running_worker, seed_example
from prometheus_client import CollectorRegistry
from pure_pipeline import PurePipeline
from redis import Redis

from alerts.state import AlertState, StateMetrics, StateStore
from core.config import load_settings
from core.settings import Settings
from retention_monitor.stack import StackConfig
from retention_monitor.stack.kafka import BrokerSecurity, Kafka, Listener
from retention_monitor.stack.process import spawn, stop, wait_ready
from streams.exceptions import PublishError
from streams.kafka.clients import new_reader
from streams.kafka.diagnose import explain
from streams.kafka.topics import ensure_topics
from streams.producers.publish import produce

pytestmark = pytest.mark.integration

SCRAM_USER, PLAIN_USER = "alice", "plain-user"
CUSTOMER = "cust-5e0b-"  # prefix of the customer ids: none may show up in metrics or INFO logs
PERIODS = ("2025-01", "2025-Q1")


# -- a broker that only speaks TLS ------------------------------------------------------------------------


@dataclass(frozen=True)
class SecureKafka:
    sasl: str  # SASL_SSL listener: SCRAM-SHA-256 (alice) and PLAIN (plain-user)
    mtls: str  # SSL listener that requires a client certificate
    ca: Path
    client: Leaf
    scram_password: str
    plain_password: str


def broker_security(sasl_port: int, mtls_port: int, keystore: Path, ca: Path,
                    passwords: dict[str, str]) -> BrokerSecurity:
    plain_users = " ".join(f'user_{user}="{pw}"' for user, pw in passwords.items() if user != SCRAM_USER)
    plain = ("org.apache.kafka.common.security.plain.PlainLoginModule required "
             f'username="broker" password="{passwords["broker"]}" {plain_users};')
    return BrokerSecurity(
        listeners=(Listener("SASL", "SASL_SSL", sasl_port), Listener("MTLS", "SSL", mtls_port)),
        properties={
            "ssl.keystore.type": "PEM", "ssl.keystore.location": str(keystore),
            "ssl.truststore.type": "PEM", "ssl.truststore.location": str(ca),
            "sasl.enabled.mechanisms": "PLAIN,SCRAM-SHA-256",
            # the broker logs in to its own SASL listener (inter-broker) with PLAIN as "broker"
            "sasl.mechanism.inter.broker.protocol": "PLAIN",
            "listener.name.sasl.plain.sasl.jaas.config": plain,
            "listener.name.sasl.scram-sha-256.sasl.jaas.config":
                "org.apache.kafka.common.security.scram.ScramLoginModule required;",
            "listener.name.mtls.ssl.client.auth": "required",
        },
        # KRaft keeps SCRAM credentials in the metadata log: the format writes them before the first start
        format_args=("--add-scram", f"SCRAM-SHA-256=[name={SCRAM_USER},password={passwords[SCRAM_USER]}]"),
        probe_options={"security_protocol": "SASL_SSL", "ssl_context": create_ssl_context(cafile=str(ca)),
                       "sasl_mechanism": "PLAIN", "sasl_plain_username": "broker",
                       "sasl_plain_password": passwords["broker"]},
    )


@pytest.fixture(scope="module")
def secure_kafka(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SecureKafka]:
    tls = tmp_path_factory.mktemp("kafka-tls")
    ca = make_ca(tls)
    server, client = issue(ca, "broker"), issue(ca, "client")
    passwords = {user: secrets.token_hex(12) for user in ("broker", SCRAM_USER, PLAIN_USER)}
    sasl_port, mtls_port = free_port(), free_port()
    cfg = replace(StackConfig(home=tmp_path_factory.mktemp("stack")), kafka_port=sasl_port,
                  kafka_controller_port=free_port())
    kafka = Kafka(cfg, broker_security(sasl_port, mtls_port, server.bundle(tls / "keystore.pem"), ca, passwords))

    async def start() -> None:
        await kafka.prepare(lambda _message: None)
        await wait_ready(kafka, spawn(kafka.argv(), kafka.pid_file, kafka.log_file))

    try:
        asyncio.run(start())
        yield SecureKafka(kafka.address, f"127.0.0.1:{mtls_port}", ca, client, passwords[SCRAM_USER],
                          passwords[PLAIN_USER])
    finally:
        asyncio.run(stop(kafka.pid_file, kafka.stop_timeout))


def scram_env(kafka: SecureKafka, password: str | None = None) -> dict[str, str]:
    return {
        "RETENTION_KAFKA_BOOTSTRAP": kafka.sasl,
        "RETENTION_KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
        "RETENTION_KAFKA_SASL_MECHANISM": "SCRAM-SHA-256",
        "RETENTION_KAFKA_SASL_USERNAME": SCRAM_USER,
        "RETENTION_KAFKA_SASL_PASSWORD": kafka.scram_password if password is None else password,
        "RETENTION_KAFKA_SSL_CAFILE": str(kafka.ca),
    }


def plain_env(kafka: SecureKafka) -> dict[str, str]:
    return {**scram_env(kafka), "RETENTION_KAFKA_SASL_MECHANISM": "PLAIN",
            "RETENTION_KAFKA_SASL_USERNAME": PLAIN_USER, "RETENTION_KAFKA_SASL_PASSWORD": kafka.plain_password}


def mtls_env(kafka: SecureKafka, with_certificate: bool = True) -> dict[str, str]:
    env = {"RETENTION_KAFKA_BOOTSTRAP": kafka.mtls, "RETENTION_KAFKA_SECURITY_PROTOCOL": "SSL",
           "RETENTION_KAFKA_SSL_CAFILE": str(kafka.ca)}
    if with_certificate:
        env |= {"RETENTION_KAFKA_SSL_CERTFILE": str(kafka.client.cert),
                "RETENTION_KAFKA_SSL_KEYFILE": str(kafka.client.key)}
    return env


def settings_of(env: dict[str, str]) -> Settings:
    return load_settings(env=isolated_env(**env)).settings


async def read(settings: Settings, topic: str, want: int, timeout_s: float = 30) -> list[Any]:
    """Records of ``topic`` from the start, read with the monitor's own reader (``client_options``)."""
    reader = new_reader(settings.kafka)
    await reader.start()
    try:
        reader.subscribe([topic])
        out: list[Any] = []
        deadline = time.monotonic() + timeout_s
        while len(out) < want and time.monotonic() < deadline:
            for records in (await reader.getmany(timeout_ms=500)).values():
                out.extend(records)
        return out
    finally:
        await reader.stop()


def status(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            code: int = response.status
            return code
    except urllib.error.HTTPError as exc:
        exc.close()
        return exc.code


def cli(args: list[str], env: dict[str, str], timeout_s: float = 60) -> tuple[subprocess.CompletedProcess[str], float]:
    began = time.monotonic()
    done = subprocess.run([sys.executable, "-m", "retention_monitor.cli", *args], env={**os.environ, **env},
                          cwd=ROOT, capture_output=True, text=True, timeout=timeout_s, check=False)
    return done, time.monotonic() - began


# -- Kafka: a worker, publishing, reading, topic creation --------------------------------------------------


def test_worker_over_sasl_ssl_answers_exact_kpis(secure_kafka: SecureKafka) -> None:
    env = isolated_env(RETENTION_CLOCK="event", **scram_env(secure_kafka))
    settings = load_settings(env=env).settings
    events = seed_example(12, 5, 3, prefix=CUSTOMER)
    messages: list[tuple[str, bytes | None, bytes]] = [
        (settings.topic_lifecycle, e["data"]["customer_id"].encode(), encode(e)) for e in events]
    messages.append((settings.topic_lifecycle, None, b"not json"))  # its way to the DLQ is over TLS as well
    pure = PurePipeline(settings).send(*events)
    expected = {p: {**json.loads(json.dumps(pure.answer(p))), "timezone": settings.timezone} for p in PERIODS}

    def answers(worker: Any) -> dict[str, Any]:
        return {p: {k: v for k, v in worker.kpis(p).items() if k != "worker"} for p in PERIODS}

    with running_worker(env) as worker:
        assert asyncio.run(produce(settings.kafka, messages, progress=False)).sent == len(messages)
        converge(lambda: answers(worker), expected, "KPIs over SASL_SSL", timeout=90)
        inputs = worker.kpis("2025-Q1")["inputs"]
        assert {k: inputs[k] for k in ("B", "N", "L", "E")} == {"B": 12, "N": 5, "L": 3, "E": 14}
        assert worker.kpis("2025-Q1")["kpis"]["churn_rate"] == 0.25
        dead = asyncio.run(read(settings, settings.topic_dlq, 1))
        metrics = worker.metrics()
        assert [status(f"{worker.url}/{view}/") for view in ("table", "router", "graph")] == [404] * 3
    assert [(r.value, dict(r.headers)["reason"]) for r in dead] == [(b"not json", b"not_json")]
    log = worker.log.read_text(errors="replace")
    assert "Kafka Server" not in log  # sanity: this is the worker's log, not the broker's
    assert CUSTOMER not in metrics
    assert CUSTOMER not in log, "a customer or event id was logged above debug"
    assert secure_kafka.scram_password not in log


@pytest.mark.parametrize("listener", ["sasl-plain", "sasl-plain-system-ca", "mtls"])
def test_topics_publish_and_read_back(listener: str, secure_kafka: SecureKafka,
                                      monkeypatch: pytest.MonkeyPatch) -> None:
    if listener == "sasl-plain-system-ca":
        # Confluent Cloud-like: no kafka_ssl_cafile, the system's trust store (OpenSSL reads SSL_CERT_FILE) decides
        monkeypatch.setenv("SSL_CERT_FILE", str(secure_kafka.ca))
        settings = settings_of({**plain_env(secure_kafka), "RETENTION_KAFKA_SSL_CAFILE": ""})
    else:
        settings = settings_of(plain_env(secure_kafka) if listener == "sasl-plain" else mtls_env(secure_kafka))
    created = asyncio.run(ensure_topics(settings.kafka, settings.topics))  # the admin client
    assert set(created) >= {*settings.topics.inputs, settings.topic_dlq}
    assert asyncio.run(ensure_topics(settings.kafka, settings.topics)) == []  # listed over TLS this time
    values = [f"event {i}".encode() for i in range(5)]
    sent = asyncio.run(produce(settings.kafka, [(settings.topic_team, b"rep-1", v) for v in values], progress=False))
    assert sent.sent == 5
    assert [r.value for r in asyncio.run(read(settings, settings.topic_team, 5))] == values


@pytest.mark.parametrize(("case", "cause"), [
    ("wrong password", f"the SASL login of user '{SCRAM_USER}' (SCRAM-SHA-256) was refused; check "
                       "kafka_sasl_username and kafka_sasl_password"),
    ("no CA", "its certificate is not trusted (unable to get local issuer certificate); set kafka_ssl_cafile to "
              "the CA that signed it"),
    ("no client certificate", "the broker closed the connection; does that listener speak "
                              "kafka_security_protocol=SSL, and does it require a client certificate "
                              "(kafka_ssl_certfile, kafka_ssl_keyfile)?"),
    ("plaintext to TLS", "the broker closed the connection; does that listener speak "
                         "kafka_security_protocol=PLAINTEXT"),
])
def test_refused_connections_name_their_cause(case: str, cause: str, secure_kafka: SecureKafka) -> None:
    wrong = "wrong-" + secrets.token_hex(6)
    env = {
        "wrong password": scram_env(secure_kafka, password=wrong),
        "no CA": {**plain_env(secure_kafka), "RETENTION_KAFKA_SSL_CAFILE": ""},
        "no client certificate": mtls_env(secure_kafka, with_certificate=False),
        "plaintext to TLS": {"RETENTION_KAFKA_BOOTSTRAP": secure_kafka.sasl},
    }[case]
    settings = settings_of(env)
    began = time.monotonic()
    with pytest.raises(PublishError) as failure:
        asyncio.run(produce(settings.kafka, [(settings.topic_team, None, b"x")], progress=False))
    assert time.monotonic() - began < 30
    message = str(failure.value)
    assert message.startswith(f"cannot reach Kafka at {settings.kafka_bootstrap}: {cause}")
    assert "\n" not in message
    assert wrong not in message


def test_a_failure_past_the_handshake_is_reported_as_it_is(secure_kafka: SecureKafka) -> None:
    settings = settings_of(scram_env(secure_kafka))
    error = KafkaConnectionError(f"no luck for {secure_kafka.scram_password}")
    assert asyncio.run(explain(settings.kafka, error)) == (
        f"cannot use Kafka at {secure_kafka.sasl}, though it accepts connections (KafkaConnectionError: "
        "KafkaConnectionError: no luck for ***)")


def test_wrong_password_cli_fails_fast_with_one_line(secure_kafka: SecureKafka, tmp_path: Path) -> None:
    wrong = "wrong-" + secrets.token_hex(6)
    events = tmp_path / "events.jsonl"
    events.write_bytes(b"".join(encode(e) + b"\n" for e in seed_example(2, 0, 0, prefix=CUSTOMER)))
    env = isolated_env(**scram_env(secure_kafka, password=wrong))

    published, publish_s = cli(["publish", str(events)], env)
    assert published.returncode == 2, published.stderr
    last = published.stderr.strip().splitlines()[-1]
    assert last.startswith(f"error: cannot reach Kafka at {secure_kafka.sasl}: ")
    assert f"the SASL login of user '{SCRAM_USER}' (SCRAM-SHA-256) was refused" in last

    worker, worker_s = cli(["worker"], env)  # fails creating the topics, before Faust starts
    assert worker.returncode == 2, worker.stderr[-2000:]
    last = worker.stderr.strip().splitlines()[-1]  # the same one-line diagnosis as publish
    assert last.startswith(f"error: cannot reach Kafka at {secure_kafka.sasl}: ")
    assert f"the SASL login of user '{SCRAM_USER}' (SCRAM-SHA-256) was refused" in last
    for done in (published, worker):
        assert wrong not in done.stdout + done.stderr
    print(f"\nwrong password: publish failed in {publish_s:.1f}s, worker in {worker_s:.1f}s")


# -- Redis: AUTH and TLS ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class SecureRedis:
    port: int  # plain, AUTH required
    tls_port: int  # TLS, AUTH required, server certificate signed by ``ca``
    ca: Path
    password: str


@pytest.fixture(scope="module")
def secure_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SecureRedis]:
    directory = tmp_path_factory.mktemp("redis")
    ca = make_ca(directory)
    server = issue(ca, "redis")
    password = secrets.token_hex(12)
    port, tls_port = free_port(), free_port()
    binary = shutil.which("redis-server")
    assert binary, "the stack installs redis-server"
    proc = subprocess.Popen(
        [binary, "--bind", "127.0.0.1", "--port", str(port), "--tls-port", str(tls_port),
         "--tls-cert-file", str(server.cert), "--tls-key-file", str(server.key), "--tls-ca-cert-file", str(ca),
         "--tls-auth-clients", "no", "--requirepass", password, "--save", "", "--appendonly", "no",
         "--dir", str(directory)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    client = Redis(host="127.0.0.1", port=port, password=password, socket_timeout=2)
    try:
        poll(client.ping, 15, f"redis-server with AUTH on port {port}")
        yield SecureRedis(port, tls_port, ca, password)
    finally:
        client.close()
        proc.kill()
        proc.wait(timeout=10)


def redis_settings(url: str, password: str = "", cafile: str = "") -> Settings:
    return load_settings(env={}, overrides={"redis_url": url, "redis_password": password, "redis_ssl_cafile": cafile,
                                            "app_id": f"sec-{uuid.uuid4().hex[:8]}"}).settings


async def round_trip(store: StateStore) -> AlertState:
    state = AlertState(pending_since=1.5, firing_since=2.5, last_value=0.25)
    await store.put("ChurnHigh", "all", state)
    try:
        return await store.get("ChurnHigh", "all")
    finally:
        await store.close()


def errors(registry: CollectorRegistry, op: str) -> float | None:
    return registry.get_sample_value("retention_alert_state_errors_total", {"op": op})


@pytest.mark.parametrize("where", ["plain port", "TLS port"])
def test_state_store_with_password(where: str, secure_redis: SecureRedis) -> None:
    if where == "TLS port":
        settings = redis_settings(f"rediss://127.0.0.1:{secure_redis.tls_port}/0", secure_redis.password,
                                  str(secure_redis.ca))
    else:  # a stale password in the URL loses against redis_password
        settings = redis_settings(f"redis://:stale@127.0.0.1:{secure_redis.port}/0", secure_redis.password)
    registry = CollectorRegistry()
    store = StateStore.from_settings(settings.alerting.redis, settings.app_id, StateMetrics.create(registry))
    assert asyncio.run(round_trip(store)) == AlertState(pending_since=1.5, firing_since=2.5, last_value=0.25)
    assert store.available
    assert errors(registry, "put") is None
    assert errors(registry, "get") is None
    raw = Redis(host="127.0.0.1", port=secure_redis.port, password=secure_redis.password, decode_responses=True)
    key = f"retention:{settings.app_id}:alert:ChurnHigh:all"
    try:
        assert raw.hgetall(key) == {"pending_since": "1.5", "firing_since": "2.5", "last_value": "0.25"}
    finally:
        raw.delete(key)
        raw.close()


def test_wrong_password_is_counted_and_never_shown(secure_redis: SecureRedis,
                                                   caplog: pytest.LogCaptureFixture) -> None:
    wrong = "wrong-" + secrets.token_hex(6)
    registry = CollectorRegistry()
    url = f"redis://:{wrong}@127.0.0.1:{secure_redis.port}/0"
    settings = redis_settings(url)
    store = StateStore.from_settings(settings.alerting.redis, settings.app_id, StateMetrics.create(registry))

    async def use() -> tuple[AlertState, AlertState]:
        try:
            await store.put("ChurnHigh", "all", AlertState(firing_since=7.0))
            return await store.get("ChurnHigh", "all"), await store.get("NpsLow", "all")
        finally:
            await store.close()

    with caplog.at_level(logging.DEBUG, logger="alerts.state"):
        assert asyncio.run(use()) == (AlertState(firing_since=7.0), AlertState())  # carries on from memory
    assert not store.available
    assert errors(registry, "put") == 1
    assert registry.get_sample_value("retention_alert_state_redis_up") == 0
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1
    assert f"Redis at redis://:***@127.0.0.1:{secure_redis.port}/0 failed on put (AuthenticationError" in warnings[0]
    assert all(wrong not in r.getMessage() and secure_redis.password not in r.getMessage() for r in caplog.records)


@pytest.mark.parametrize("ca", ["another CA", "no CA"])
def test_tls_server_certificate_must_be_signed_by_the_ca(ca: str, secure_redis: SecureRedis, tmp_path: Path,
                                                         caplog: pytest.LogCaptureFixture) -> None:
    cafile = str(make_ca(tmp_path, "other")) if ca == "another CA" else ""
    registry = CollectorRegistry()
    settings = redis_settings(f"rediss://127.0.0.1:{secure_redis.tls_port}/0", secure_redis.password, cafile)
    store = StateStore.from_settings(settings.alerting.redis, settings.app_id, StateMetrics.create(registry))
    with caplog.at_level(logging.WARNING, logger="alerts.state"):
        asyncio.run(round_trip(store))
    assert not store.available
    assert errors(registry, "put") == 1
    assert "CERTIFICATE_VERIFY_FAILED" in caplog.text
