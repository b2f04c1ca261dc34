"""Tests leave nothing behind: not in the shared broker, not in Redis, not on disk.

Each test gets its own topics, Faust app, data directory and alert-state keys (``isolated_env``). Left
alone they pile up over runs: every partition keeps files open in the broker, and a few dozen runs
exhausted its file limit and stopped it ("Too many open files", then its log directory failed). So each
pytest session records the tags it hands out in a ledger file named after its process; when it ends it
deletes what belongs to its tags, and when it starts it deletes what belongs to tags in no live session's
ledger (a session that was killed, or runs from before the ledger). Sessions that run at the same time
leave each other's things alone.
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
from collections.abc import Callable
from pathlib import Path

from redis import Redis

from bench import broker
from retention_monitor.stack.process import start_time

Doomed = Callable[[str], bool]  # whether a tag's leftovers go

DATA_ROOT = Path("/tmp")
# Topics of isolated_env (``t-<tag>.lifecycle``) and of its Faust app id (``test-<tag>-…-changelog``).
_TOPIC = re.compile(r"^(?:t|test)-([0-9a-f]{8})[.-]")
# A worker's data directory, a second worker's (``-b``, ``-c``) and the worker's log (``.log``).
_DATA_DIR = re.compile(r"^retention-test-([0-9a-f]{8})(?:$|[.-])")
_REDIS_KEY = re.compile(r"^retention:test-([0-9a-f]{8}):")


def data_dir(tag: str) -> Path:
    return DATA_ROOT / f"retention-test-{tag}"


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


def chosen(names: list[str], pattern: re.Pattern[str], doomed: Doomed) -> list[str]:
    """The names that belong to a test tag that is ``doomed``."""
    return sorted(n for n in names if (m := pattern.match(n)) and doomed(m.group(1)))


async def delete_topics(bootstrap: str, doomed: Doomed) -> list[str]:
    # A long timeout: the first sweep of a broker that collected thousands of test topics is slow.
    return await broker.delete_topics(bootstrap, lambda topic: bool(chosen([topic], _TOPIC, doomed)), 60.0)


def remove_data_dirs(doomed: Doomed) -> list[str]:
    """Data directories and worker logs of the doomed tags."""
    names = chosen([p.name for p in DATA_ROOT.glob("retention-test-*")], _DATA_DIR, doomed)
    for name in names:
        path = DATA_ROOT / name
        if path.is_dir():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)
    return names


def delete_redis_keys(url: str, doomed: Doomed) -> list[str]:
    client = Redis.from_url(url, socket_timeout=5, decode_responses=True)
    try:
        keys = chosen(list(client.scan_iter(match="retention:test-*", count=1000)), _REDIS_KEY, doomed)
        if keys:
            client.delete(*keys)
        return keys
    finally:
        client.close()


def clean(bootstrap: str, redis_url: str, doomed: Doomed) -> None:
    """Delete the topics, data directories and alert-state keys of the doomed tags."""
    asyncio.run(delete_topics(bootstrap, doomed))
    remove_data_dirs(doomed)
    delete_redis_keys(redis_url, doomed)
