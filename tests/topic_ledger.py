"""Test topics must not pile up in the shared broker.

Every partition keeps files open in the broker, and each test gets its own topics (``isolated_env``): left
alone, a few dozen test runs exhaust the broker's file limit and it stops ("Too many open files", then its
log directory fails). So each pytest session records the tags it hands out in a ledger file named after its
process; when it ends it deletes its tags' topics, and when it starts it deletes the test topics whose tag
is in no live session's ledger (a session that was killed, or runs from before the ledger). Sessions that
run at the same time leave each other's topics alone.
"""

from __future__ import annotations

import asyncio
import os
import re
from collections.abc import Callable, Iterable
from pathlib import Path

from aiokafka.admin import AIOKafkaAdminClient

from retention_monitor.stack.process import start_time

# Topics of isolated_env (``t-<tag>.lifecycle``) and of its Faust app id (``test-<tag>-…-changelog``).
TEST_TOPIC = re.compile(r"^(?:t|test)-([0-9a-f]{8})[.-]")
_CHUNK = 500  # topics per DeleteTopics request: thousands at once exceed the request timeout


class Ledger:
    """The tags one pytest session gave out, in ``<directory>/<pid>-<process start time>.tags``."""

    def __init__(self, directory: Path, pid: int | None = None) -> None:
        self.dir = directory
        self.pid = os.getpid() if pid is None else pid
        self.path = directory / f"{self.pid}-{start_time(self.pid)}.tags"
        self.tags: set[str] = set()

    def record(self, tag: str) -> None:
        if tag in self.tags:
            return
        self.tags.add(tag)
        self.dir.mkdir(parents=True, exist_ok=True)
        with self.path.open("a") as ledger:
            ledger.write(f"{tag}\n")

    def live_tags(self) -> set[str]:
        """Tags of the sessions still running; ledgers of finished sessions are removed."""
        live: set[str] = set()
        for path in self.dir.glob("*.tags"):
            pid, _, started = path.stem.partition("-")
            if pid.isdigit() and start_time(int(pid)) == started:
                live.update(path.read_text().split())
            else:
                path.unlink(missing_ok=True)
        return live

    def close(self) -> None:
        self.path.unlink(missing_ok=True)


def stale_topics(topics: Iterable[str], live: set[str]) -> list[str]:
    """Test topics whose tag belongs to no live session."""
    return sorted(t for t in topics if (m := TEST_TOPIC.match(t)) and m.group(1) not in live)


def own_topics(topics: Iterable[str], tags: set[str]) -> list[str]:
    return sorted(t for t in topics if (m := TEST_TOPIC.match(t)) and m.group(1) in tags)


async def delete_topics(bootstrap: str, pick: Callable[[list[str]], list[str]]) -> list[str]:
    """Delete the topics ``pick`` chooses from the broker's list; returns them."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=60_000)
    await asyncio.wait_for(admin.start(), 30)
    try:
        doomed = pick(sorted(await admin.list_topics()))
        for start in range(0, len(doomed), _CHUNK):
            await admin.delete_topics(doomed[start : start + _CHUNK])
        return doomed
    finally:
        await admin.close()
