"""Why Kafka cannot be reached, in one line: a refused SASL login, an untrusted certificate, the wrong protocol.

aiokafka's ``start()`` reports every bootstrap failure as ``KafkaConnectionError("Unable to bootstrap
from [...]")`` and only logs the cause, so after a failed start :func:`explain` connects once more to
each bootstrap server, alone, to name the cause and the settings that fix it.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from dataclasses import dataclass
from typing import Any

from aiokafka.conn import create_conn
from aiokafka.errors import KafkaConnectionError, SaslAuthenticationFailed, UnsupportedSaslMechanismError

from core.config import MASK
from core.slices import KafkaSettings
from streams.kafka.clients import client_options


@dataclass(frozen=True)
class Diagnosis:
    """What is wrong, and whether the broker answers but refuses these settings (credentials, TLS): a
    configuration to fix (exit 2) rather than a service to bring up (exit 3)."""

    text: str
    settings: bool


async def diagnose(kafka: KafkaSettings, error: BaseException | None = None, timeout_s: float = 10.0) -> Diagnosis:
    """``cannot reach Kafka at …: <cause>; <what to check>`` (never the password); ``error`` is what the
    client raised, reported when a fresh connection succeeds."""
    servers = [hostport.strip() for hostport in kafka.bootstrap.split(",")]
    for hostport in servers:
        failure = await _try(kafka, hostport, timeout_s)
        if failure is not None:
            where = f"{hostport}: " if len(servers) > 1 else ""
            text = _scrub(kafka, f"cannot reach Kafka at {kafka.bootstrap}: {where}{_cause(kafka, failure)}")
            return Diagnosis(text, isinstance(failure, _REFUSED_SETTINGS))
    # reachable now: the failure was transient, or came after the handshake
    text = f"cannot use Kafka at {kafka.bootstrap}, though it accepts connections"
    return Diagnosis(_scrub(kafka, text + (f" ({type(error).__name__}: {error})" if error is not None else "")), False)


async def explain(kafka: KafkaSettings, error: BaseException | None = None, timeout_s: float = 10.0) -> str:
    """:func:`diagnose`'s text."""
    return (await diagnose(kafka, error, timeout_s)).text


def _scrub(kafka: KafkaSettings, text: str) -> str:
    """No known error message echoes the password; this keeps it that way."""
    return text.replace(kafka.sasl_password, MASK) if kafka.sasl_password else text


async def _try(kafka: KafkaSettings, hostport: str, timeout_s: float) -> Exception | None:
    host, _, port = hostport.rpartition(":")
    options = client_options(kafka)
    try:
        conn = await asyncio.wait_for(create_conn(
            host, int(port), security_protocol=options["security_protocol"], ssl_context=options.get("ssl_context"),
            sasl_mechanism=options.get("sasl_mechanism"), sasl_plain_username=options.get("sasl_plain_username"),
            sasl_plain_password=options.get("sasl_plain_password"), request_timeout_ms=int(timeout_s * 1000),
        ), timeout_s)
    except Exception as exc:
        return exc
    # Awaited: a TLS shutdown still under way when the event loop ends leaks its socket.
    with contextlib.suppress(Exception):
        await asyncio.wait_for(conn.close(), timeout_s)
    return None


_REFUSED_SETTINGS = (SaslAuthenticationFailed, UnsupportedSaslMechanismError, ssl.SSLError)


def _cause(kafka: KafkaSettings, exc: Any) -> str:
    protocol = kafka.security_protocol
    if isinstance(exc, SaslAuthenticationFailed):
        return (f"the SASL login of user {kafka.sasl_username!r} ({kafka.sasl_mechanism}) "
                "was refused; check kafka_sasl_username and kafka_sasl_password")
    if isinstance(exc, UnsupportedSaslMechanismError):
        return f"{exc}; set kafka_sasl_mechanism to one the listener enables"
    if isinstance(exc, ssl.SSLCertVerificationError):
        return (f"its certificate is not trusted ({exc.verify_message}); set kafka_ssl_cafile to the CA "
                "that signed it")
    if isinstance(exc, ssl.SSLError):
        return f"the TLS handshake failed ({exc.reason or exc}); does that listener speak {protocol}?"
    if isinstance(exc, KafkaConnectionError):
        return (f"the broker closed the connection; does that listener speak kafka_security_protocol={protocol}, "
                "and does it require a client certificate (kafka_ssl_certfile, kafka_ssl_keyfile)?")
    if isinstance(exc, TimeoutError):
        return f"no answer (kafka_security_protocol={protocol})"
    if isinstance(exc, ConnectionRefusedError):
        return "nothing listens there; is the broker up?"
    return f"{type(exc).__name__}: {exc}"
