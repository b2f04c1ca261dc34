"""Test topics are deleted: by the session that made them, or by the next one if that session died."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from fixtures import poll
from topic_ledger import Ledger, delete_topics, own_topics, stale_topics

from retention_monitor.stack.process import start_time


def dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait(timeout=10)
    return proc.pid


def test_a_live_session_keeps_its_tags_and_a_dead_one_is_forgotten(tmp_path: Path) -> None:
    mine = Ledger(tmp_path)
    mine.record("0123abcd")
    mine.record("0123abcd")
    dead = tmp_path / f"{dead_pid()}-{start_time(1)}.tags"
    dead.write_text("deadbeef\n")
    assert mine.path.read_text() == "0123abcd\n"
    assert mine.live_tags() == {"0123abcd"}
    assert not dead.exists()
    mine.close()
    assert not mine.path.exists()


def test_a_reused_pid_is_not_mistaken_for_the_session(tmp_path: Path) -> None:
    # Same pid as a live process, other start time: the session that wrote it is gone.
    impostor = tmp_path / f"{Ledger(tmp_path).pid}-1.tags"
    impostor.write_text("deadbeef\n")
    assert Ledger(tmp_path).live_tags() == set()


def test_only_test_topics_of_the_wrong_sessions_are_chosen() -> None:
    topics = ["t-0123abcd.lifecycle", "test-0123abcd-customers-changelog", "t-deadbeef.dlq",
              "test-deadbeef-__assignor-__leader", "retention.lifecycle", "t-nothex12.lifecycle",
              "bench-0123abcd-events", "__consumer_offsets"]  # fmt: skip
    assert stale_topics(topics, {"0123abcd"}) == ["t-deadbeef.dlq", "test-deadbeef-__assignor-__leader"]
    assert own_topics(topics, {"0123abcd"}) == ["t-0123abcd.lifecycle", "test-0123abcd-customers-changelog"]


async def topic_names(bootstrap: str) -> set[str]:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        return set(await admin.list_topics())
    finally:
        await admin.close()


async def create(bootstrap: str, names: list[str]) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(n, num_partitions=1, replication_factor=1) for n in names])
    finally:
        await admin.close()


@pytest.mark.integration
def test_stale_topics_are_deleted_and_live_ones_kept(stack: str) -> None:
    gone, live = uuid.uuid4().hex[:8], uuid.uuid4().hex[:8]
    names = [f"t-{gone}.lifecycle", f"test-{gone}-customers-changelog", f"t-{live}.lifecycle"]
    asyncio.run(create(stack, names))
    poll(lambda: set(names) <= asyncio.run(topic_names(stack)), 30, "the three topics")

    deleted = asyncio.run(delete_topics(stack, lambda topics: [t for t in stale_topics(topics, {live}) if gone in t]))
    assert deleted == sorted(names[:2])
    poll(lambda: not set(names[:2]) & asyncio.run(topic_names(stack)), 30, "the stale topics to go")
    assert names[2] in asyncio.run(topic_names(stack))

    assert asyncio.run(delete_topics(stack, lambda topics: own_topics(topics, {live}))) == [names[2]]
