"""Tests leave nothing behind: a session deletes its own leftovers, the next one those of a session that died."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import uuid
from pathlib import Path

import ledger
import pytest
from aiokafka.admin import AIOKafkaAdminClient
from fixtures import create_topics, poll
from ledger import Ledger, delete_redis_keys, delete_topics, remove_data_dirs
from redis import Redis

from core.settings import Settings
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


def test_only_test_names_of_doomed_tags_are_chosen() -> None:
    topics = ["t-0123abcd.lifecycle", "test-0123abcd-customers-changelog", "t-deadbeef.dlq",
              "test-deadbeef-__assignor-__leader", "retention.lifecycle", "t-nothex12.lifecycle",
              "bench-0123abcd-events", "__consumer_offsets"]  # fmt: skip
    stale = ledger.chosen(topics, ledger._TOPIC, lambda tag: tag != "0123abcd")
    assert stale == ["t-deadbeef.dlq", "test-deadbeef-__assignor-__leader"]
    own = ledger.chosen(topics, ledger._TOPIC, lambda tag: tag == "0123abcd")
    assert own == ["t-0123abcd.lifecycle", "test-0123abcd-customers-changelog"]


def test_data_dirs_of_doomed_tags_are_removed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ledger, "DATA_ROOT", tmp_path)
    for tag in ("0123abcd", "deadbeef"):
        (ledger.data_dir(tag) / "kpi-checkpoint").mkdir(parents=True)
    (tmp_path / "retention-test-deadbeef-b").mkdir()
    (tmp_path / "retention-test-deadbeef.log").write_text("worker log")
    (tmp_path / "retention-test-other").mkdir()
    gone = ["retention-test-deadbeef", "retention-test-deadbeef-b", "retention-test-deadbeef.log"]
    assert remove_data_dirs(lambda tag: tag == "deadbeef") == gone
    assert sorted(p.name for p in tmp_path.iterdir()) == ["retention-test-0123abcd", "retention-test-other"]


async def topic_names(bootstrap: str) -> set[str]:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        return set(await admin.list_topics())
    finally:
        await admin.close()


@pytest.mark.integration
def test_topics_of_doomed_tags_are_deleted_and_others_kept(stack: str) -> None:
    gone, live = uuid.uuid4().hex[:8], uuid.uuid4().hex[:8]
    names = [f"t-{gone}.lifecycle", f"test-{gone}-customers-changelog", f"t-{live}.lifecycle"]
    create_topics(stack, names)
    poll(lambda: set(names) <= asyncio.run(topic_names(stack)), 30, "the three topics")

    assert asyncio.run(delete_topics(stack, lambda tag: tag == gone)) == sorted(names[:2])
    poll(lambda: not set(names[:2]) & asyncio.run(topic_names(stack)), 30, "the doomed topics to go")
    assert names[2] in asyncio.run(topic_names(stack))
    assert asyncio.run(delete_topics(stack, lambda tag: tag == live)) == [names[2]]


@pytest.mark.integration
def test_alert_state_of_doomed_tags_is_deleted(stack: str) -> None:
    gone, live = uuid.uuid4().hex[:8], uuid.uuid4().hex[:8]
    url = Settings().redis_url
    client = Redis.from_url(url, decode_responses=True)
    keys = [f"retention:test-{gone}:alert:ChurnRateHigh:all", f"retention:test-{live}:alert:NpsLow:all"]
    try:
        for key in keys:
            client.hset(key, "firing_since", "1")
        assert delete_redis_keys(url, lambda tag: tag == gone) == keys[:1]
        assert [client.exists(k) for k in keys] == [0, 1]
    finally:
        client.delete(*keys)
        client.close()
