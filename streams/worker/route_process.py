"""The route stage in a child process, so that a worker uses two cores: validation, records and packs
in one, apply, follow, KPIs and the web API in the other.

The child is the same route stage and consumer (group ``<app_id>-route``) with its own producer; it
commits an input offset only once the packs and dead letters of its fetch are acknowledged, exactly as
in the worker's loop, so killing either process at any moment loses nothing and the apply stage
dedupes what is routed twice. It reports to its parent over a pipe (dead letters by reason, lag,
rebalances, commit times) for the parent's ``/metrics``, and exits when the pipe closes: a parent
killed with -9 leaves no orphan consuming the input.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import multiprocessing
import os
import threading
from collections.abc import Callable
from multiprocessing.connection import Connection
from typing import Any

from core.settings import Settings
from streams.kafka.clients import client_options
from streams.kafka.transport import SharedProducer
from streams.pacing import name_thread
from streams.route.consumer import BatchConsumer
from streams.route.dead_letters import DeadLetters
from streams.route.records import Recorder
from streams.route.stage import RouteStage
from streams.telemetry import ConsumerMetrics

log = logging.getLogger(__name__)
REPORT_SECONDS = 0.5
Report = tuple[str, Any]


class RouteProcess:
    """The parent's handle: :meth:`run` starts the child and relays its reports until it exits."""

    def __init__(self, settings: Settings, metrics: ConsumerMetrics, count: Callable[[dict[str, int]], None]) -> None:
        self.settings = settings
        self.metrics = metrics
        self.count = count
        self._lag: list[tuple[str, int, int]] = []
        metrics.register("route", self.lag)

    def lag(self) -> list[tuple[str, int, int]]:
        return self._lag

    async def run(self) -> None:
        """Run the child until it exits (an error: the worker restarts it) or this task is cancelled."""
        ours, theirs = multiprocessing.get_context("spawn").Pipe()
        child = multiprocessing.get_context("spawn").Process(
            target=child_main, args=(self.settings, theirs), name="retention-route", daemon=True)
        child.start()
        theirs.close()
        exited = asyncio.get_running_loop().create_future()
        asyncio.get_running_loop().add_reader(ours.fileno(), self._relay, ours, exited)
        try:
            await exited
            raise RuntimeError(f"the route process exited (code {child.exitcode})")
        finally:
            asyncio.get_running_loop().remove_reader(ours.fileno())
            self._lag = []
            await _stop(child, ours)

    def _relay(self, conn: Connection, exited: asyncio.Future[None]) -> None:
        try:
            while conn.poll():
                kind, value = conn.recv()
                self._apply(kind, value)
        except (EOFError, OSError):
            if not exited.done():
                exited.set_result(None)

    def _apply(self, kind: str, value: Any) -> None:
        if kind == "rejected":
            self.count(value)
        elif kind == "lag":
            self._lag = value
        elif kind == "rebalance":
            self.metrics.rebalanced("route")
        elif kind == "commit":
            self.metrics.committed("route", value)


async def _stop(child: Any, conn: Connection) -> None:
    """Ask the child to commit and stop, then make sure it is gone."""
    with contextlib.suppress(OSError):
        conn.send("stop")
    loop = asyncio.get_running_loop()
    await loop.run_in_executor(None, child.join, 10)
    conn.close()
    if child.is_alive():
        child.kill()
        await loop.run_in_executor(None, child.join, 5)


# -- in the child -----------------------------------------------------------------------------------


class _Relay:
    """The child's consumer metrics: what it counts goes to the parent."""

    def __init__(self, send: Callable[[Report], None]) -> None:
        self.send = send

    def register(self, stage: str, lag: Callable[[], list[tuple[str, int, int]]]) -> None:
        pass  # the child sends its lag itself, every REPORT_SECONDS

    def rebalanced(self, stage: str) -> None:
        self.send(("rebalance", 1))

    def committed(self, stage: str, seconds: float) -> None:
        self.send(("commit", seconds))


def child_main(settings: Settings, conn: Connection) -> None:
    """Entry point of the child (spawned: a fresh interpreter, not a copy of the worker's state)."""
    name_thread("retention-route")
    logging.basicConfig(level=settings.log_level.upper(), format="[%(asctime)s] [%(process)d] %(levelname)s "
                        "route: %(message)s")
    with contextlib.suppress(asyncio.CancelledError):
        asyncio.run(_route(settings, conn))


def _listen(conn: Connection, loop: asyncio.AbstractEventLoop, task: asyncio.Task[None]) -> None:
    """The parent writes once, "stop": commit and stop. End of file: the parent is gone (killed, say)."""
    try:
        conn.recv()
    except (EOFError, OSError):
        os._exit(0)  # uncommitted fetches are read again by the next route member and deduped downstream
    loop.call_soon_threadsafe(task.cancel)


async def _route(settings: Settings, conn: Connection) -> None:
    task = asyncio.current_task()
    assert task is not None
    threading.Thread(target=_listen, args=(conn, asyncio.get_running_loop(), task), daemon=True).start()
    lock = threading.Lock()

    def send(report: Report) -> None:
        with lock:
            conn.send(report)

    topics = settings.topics
    producer = SharedProducer(settings.kafka)
    await producer.start()
    try:
        facts = settings.facts
        letters = DeadLetters(producer, topics.dlq, count=lambda reasons: send(("rejected", reasons)))
        stage = RouteStage(recorder=Recorder(facts.currency, facts.rates), producer=producer, rekeyed=topics.rekeyed,
                           partitions=topics.partitions, dead_letters=letters,
                           max_bytes=settings.kafka.max_message_bytes)
        consumer = BatchConsumer(stage="route", options=client_options(settings.kafka),
                                 group_id=f"{topics.app_id}-route", topics=topics.inputs, handle=stage.handle,
                                 metrics=_Relay(send))
        reporting = asyncio.create_task(_report_lag(consumer, send))
        try:
            await consumer.run()
        finally:
            reporting.cancel()
    finally:
        await producer.stop()


async def _report_lag(consumer: BatchConsumer, send: Callable[[Report], None]) -> None:
    while True:
        await asyncio.sleep(REPORT_SECONDS)
        send(("lag", consumer.lag()))
