"""Single-node KRaft Kafka assembled from Maven Central jars and started with ``java -cp``."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import shutil
import subprocess
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiokafka.conn import create_conn
from aiokafka.protocol.metadata import MetadataRequest

from retention_monitor.exceptions import StackError

from .config import StackConfig
from .process import Report, Service, port_in_use

READY_MARKER = b"Kafka Server started"
LOADED_MARKER = b"Completed load of Log("  # one line per partition log loaded (or recovered) at start-up
JVM_OPTS = ["-Xms128m", "-Xmx512m", "-XX:+UseG1GC", "-XX:MaxGCPauseMillis=20", "-Djava.awt.headless=true"]
LOGGING_JARS = [("ch.qos.reload4j", "reload4j", "1.2.25"), ("org.slf4j", "slf4j-reload4j", "1.7.36")]
COPY_DEPS = "org.apache.maven.plugins:maven-dependency-plugin:3.6.1:copy-dependencies"

LOG4J = """\
log4j.rootLogger=INFO, kafkaAppender
log4j.appender.kafkaAppender=org.apache.log4j.RollingFileAppender
log4j.appender.kafkaAppender.File=${kafka.logs.dir}/server.log
log4j.appender.kafkaAppender.MaxFileSize=100MB
log4j.appender.kafkaAppender.MaxBackupIndex=3
log4j.appender.kafkaAppender.layout=org.apache.log4j.PatternLayout
log4j.appender.kafkaAppender.layout.ConversionPattern=[%d] %p %m (%c)%n
log4j.logger.kafka.request.logger=WARN
log4j.logger.org.apache.kafka.clients=WARN
"""


SERVER_PROPERTIES = """\
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:{ctl}
controller.listener.names=CONTROLLER
listeners=PLAINTEXT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{ctl}
advertised.listeners=PLAINTEXT://127.0.0.1:{port}
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
log.dirs={data}
num.partitions=4
auto.create.topics.enable=true
offsets.topic.replication.factor=1
offsets.topic.num.partitions=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
transaction.state.log.num.partitions=1
group.initial.rebalance.delay.ms=0
num.network.threads=2
num.io.threads=2
background.threads=2
num.recovery.threads.per.data.dir=2
log.cleaner.threads=1
log.cleaner.dedupe.buffer.size=8388608
"""


@dataclass(frozen=True)
class Listener:
    """A client listener of the broker: its name (``listener.name.<name lower-cased>.*`` properties),
    security protocol and loopback port."""

    name: str
    protocol: str
    port: int


@dataclass(frozen=True)
class BrokerSecurity:
    """Listeners other than the default PLAINTEXT one, for brokers that tests (or trials) secure.

    The first listener is the broker's address (on ``StackConfig.kafka_port``) and its inter-broker
    listener. ``properties`` are added to server.properties (keystores, SASL mechanisms, JAAS);
    ``format_args`` go to the storage format (e.g. ``--add-scram``: KRaft keeps SCRAM users in its
    metadata log, so they exist from the first start); ``probe_options`` are the aiokafka client options
    the readiness probe connects to the first listener with.
    """

    listeners: tuple[Listener, ...]
    properties: Mapping[str, str] = field(default_factory=dict)
    format_args: tuple[str, ...] = ()
    probe_options: Mapping[str, Any] = field(default_factory=dict)

    def overrides(self, controller_port: int) -> dict[str, str]:
        """server.properties entries that replace the default PLAINTEXT listener."""
        main = self.listeners[0].name
        protocols = {**{lst.name: lst.protocol for lst in self.listeners}, "CONTROLLER": "PLAINTEXT"}
        return {
            "listeners": ",".join([*(f"{lst.name}://127.0.0.1:{lst.port}" for lst in self.listeners),
                                   f"CONTROLLER://127.0.0.1:{controller_port}"]),
            "advertised.listeners": ",".join(f"{lst.name}://127.0.0.1:{lst.port}" for lst in self.listeners),
            "inter.broker.listener.name": main,
            "listener.security.protocol.map": ",".join(f"{name}:{proto}" for name, proto in protocols.items()),
            **self.properties,
        }


def override_properties(text: str, values: Mapping[str, str]) -> str:
    """``text`` (server.properties) with the entries of ``values`` replaced in place or appended."""
    lines, seen = [], set()
    for line in text.splitlines():
        key = line.partition("=")[0].strip()
        if key in values:
            lines.append(f"{key}={values[key]}")
            seen.add(key)
        else:
            lines.append(line)
    lines.extend(f"{key}={value}" for key, value in values.items() if key not in seen)
    return "\n".join(lines) + "\n"


class LogTail:
    """The complete lines a log file gained since ``offset``; a roll-over starts again at the top."""

    def __init__(self, path: Path, offset: int) -> None:
        self.path, self.offset = path, offset

    def read(self) -> bytes:
        try:
            with self.path.open("rb") as log:
                if self.path.stat().st_size < self.offset:
                    self.offset = 0
                log.seek(self.offset)
                chunk = log.read()
        except OSError:
            return b""
        end = chunk.rfind(b"\n") + 1
        self.offset += end
        return chunk[:end]


class Kafka(Service):
    name = "kafka"
    ready_timeout = 120.0
    # After a crash the broker re-reads every partition's last segment: tens of GiB take minutes.
    ready_cap = 1800.0
    stop_timeout = 30.0
    # Every partition holds its segment files open; Kafka's operations guide asks for 100,000 or more.
    # At a distribution's usual 1,024 or 20,000 the broker fails its log directory and stops.
    open_files = 100_000

    _tail: LogTail | None = None  # server.log from where this interpreter started the broker
    _started = False
    _loaded = 0  # partition logs loaded since that start
    _partitions = 0  # partition directories at that start

    def __init__(self, cfg: StackConfig, security: BrokerSecurity | None = None) -> None:
        super().__init__(cfg)
        if security is not None and (not security.listeners or security.listeners[0].port != cfg.kafka_port):
            raise StackError("BrokerSecurity: the first listener must be on StackConfig.kafka_port")
        self.security = security

    @property
    def ports(self) -> tuple[int, ...]:
        if self.security is None:
            return (self.cfg.kafka_port, self.cfg.kafka_controller_port)
        return (*(lst.port for lst in self.security.listeners), self.cfg.kafka_controller_port)

    @property
    def dist(self) -> Path:
        return self.cfg.cache / f"kafka-{self.cfg.kafka_version}"

    @property
    def libs(self) -> Path:
        return self.dist / "libs"

    @property
    def server_log(self) -> Path:
        return self.dir / "logs" / "server.log"

    def _java(self, main: str, *args: str) -> list[str]:
        java = shutil.which("java")
        if java is None:
            raise StackError("java not found: install a Java 17 runtime (Debian: openjdk-17-jre-headless)")
        logs = f"-Dkafka.logs.dir={self.dir / 'logs'}"
        log4j = f"-Dlog4j.configuration=file:{self.dir / 'log4j.properties'}"
        return [java, *JVM_OPTS, logs, log4j, "-cp", f"{self.libs}/*", main, *args]

    def argv(self) -> list[str]:
        return self._java("kafka.Kafka", str(self.dir / "server.properties"))

    async def prepare(self, report: Report) -> None:
        self._java("kafka.Kafka")  # fail early when java is missing
        if not (self.libs / f"kafka_2.13-{self.cfg.kafka_version}.jar").is_file():
            report(f"downloading Kafka {self.cfg.kafka_version} jars (Maven)")
            await asyncio.to_thread(self._download)
        self.dir.joinpath("logs").mkdir(parents=True, exist_ok=True)
        self.dir.joinpath("server.properties").write_text(self._properties())
        self.dir.joinpath("log4j.properties").write_text(LOG4J)
        cluster_id = self._cluster_id()
        meta = self.data / "meta.properties"
        if not meta.is_file():
            report("formatting storage")
            await asyncio.to_thread(self._format, cluster_id)
        elif f"cluster.id={cluster_id}" not in meta.read_text():
            raise StackError(f"{meta} belongs to another cluster id than {self.dir / 'cluster.id'}; remove {self.data}")
        self.watch_log()

    def watch_log(self) -> None:
        """Read readiness and progress from the broker log written from now on (a start is coming)."""
        self._tail = LogTail(self.server_log, self.server_log.stat().st_size if self.server_log.exists() else 0)
        self._started, self._loaded = False, 0
        partitions = self.data.glob("*-*") if self.data.is_dir() else ()
        self._partitions = sum(1 for p in partitions if p.is_dir() and p.name.rpartition("-")[2].isdigit())

    @property
    def data(self) -> Path:
        return self.dir / "data"

    def _download(self) -> None:
        mvn = shutil.which("mvn")
        if mvn is None:
            raise StackError("mvn not found: install Maven (Debian: maven) to fetch the Kafka jars once")
        self.dist.mkdir(parents=True, exist_ok=True)
        pom = self.dist / "pom.xml"
        pom.write_text(self._pom())
        tmp = self.dist / "libs.partial"
        shutil.rmtree(tmp, ignore_errors=True)
        opts = ["-DincludeScope=runtime", f"-DoutputDirectory={tmp}"]
        _run([mvn, "-B", "-q", "-f", str(pom), COPY_DEPS, *opts], "Maven fetching the Kafka jars", 900)
        shutil.rmtree(self.libs, ignore_errors=True)
        tmp.rename(self.libs)  # only a complete download counts as cached

    def _pom(self) -> str:
        deps = [("org.apache.kafka", "kafka_2.13", self.cfg.kafka_version), *LOGGING_JARS]
        xml = "".join(
            f"    <dependency><groupId>{g}</groupId><artifactId>{a}</artifactId><version>{v}</version></dependency>\n"
            for g, a, v in deps
        )
        return (
            '<project xmlns="http://maven.apache.org/POM/4.0.0">\n  <modelVersion>4.0.0</modelVersion>\n'
            "  <groupId>local.retention-monitor</groupId><artifactId>kafka-dist</artifactId>\n"
            f"  <version>{self.cfg.kafka_version}</version><packaging>pom</packaging>\n"
            f"  <dependencies>\n{xml}  </dependencies>\n</project>\n"
        )

    def _cluster_id(self) -> str:
        path = self.dir / "cluster.id"
        if path.is_file():
            return path.read_text().strip()
        cluster_id = "-"
        while cluster_id.startswith("-"):
            cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).rstrip(b"=").decode()
        path.write_text(cluster_id + "\n")
        return cluster_id

    def _format(self, cluster_id: str) -> None:
        props = str(self.dir / "server.properties")
        extra = self.security.format_args if self.security is not None else ()
        args = ("format", "-t", cluster_id, "-c", props, "--ignore-formatted", *extra)
        _run(self._java("kafka.tools.StorageTool", *args), "kafka storage format", 120)

    def _properties(self) -> str:
        port, ctl = self.cfg.kafka_port, self.cfg.kafka_controller_port
        text = SERVER_PROPERTIES.format(port=port, ctl=ctl, data=self.data)
        return text if self.security is None else override_properties(text, self.security.overrides(ctl))

    async def probe(self) -> bool:
        if self._tail is not None:
            new = self._tail.read()
            self._loaded += new.count(LOADED_MARKER)
            self._started = self._started or READY_MARKER in new
            if not self._started:
                return False
        if not port_in_use(self.cfg.kafka_port):  # spares aiokafka's connection-error logging
            return False
        options = self.security.probe_options if self.security is not None else {}
        try:
            conn = await create_conn("127.0.0.1", self.cfg.kafka_port, request_timeout_ms=3000, **options)
        except Exception:
            return False
        try:
            await conn.send(MetadataRequest([]))
        except Exception:
            return False
        finally:
            # Awaited: a TLS shutdown still under way when the event loop ends leaks its socket.
            with contextlib.suppress(Exception):
                await asyncio.wait_for(conn.close(), 3)
        return True

    def progress(self) -> str | None:
        if self._tail is None or self._loaded == 0:
            return None
        return f"loading logs: {min(self._loaded, self._partitions):,} of {self._partitions:,} partitions"


def _run(cmd: list[str], what: str, limit: float) -> None:
    """Run a one-shot command; a failure becomes a one-line StackError with its first error line."""
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=limit, check=False)
    except subprocess.TimeoutExpired as exc:
        raise StackError(f"{what} did not finish within {limit:.0f}s") from exc
    if done.returncode != 0:
        out = [ln.strip() for ln in (done.stdout + done.stderr).splitlines() if ln.strip()]
        error = next((ln for ln in out if "ERROR" in ln or "Exception" in ln), out[-1] if out else "")
        raise StackError(f"{what} failed (exit {done.returncode}): {error[:300] or 'no output'}")
