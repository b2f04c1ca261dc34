"""How the worker shares its CPU: slices of the event loop, and work beside it at a lower priority."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest

from streams.pacing import BACKGROUND_NICE, Slice, beside, name_thread


def niceness() -> tuple[str, int]:
    return threading.current_thread().name, os.getpriority(os.PRIO_PROCESS, threading.get_native_id())


def os_name() -> str:
    return Path(f"/proc/self/task/{threading.get_native_id()}/comm").read_text().strip()


@pytest.mark.asyncio
async def test_work_beside_the_loop_runs_on_a_background_thread_at_a_lower_priority() -> None:
    name, nice = await beside(niceness)
    assert name.startswith("background")
    assert nice == BACKGROUND_NICE
    assert await beside(os_name) == "retention-bg"  # what top -H shows
    assert niceness()[1] < BACKGROUND_NICE  # the event loop's own thread keeps its priority


@pytest.mark.asyncio
async def test_a_slice_gives_the_loop_back_only_once_it_is_used_up() -> None:
    turn = Slice(seconds=3600.0)
    assert not turn.over()
    since = turn.since
    await turn.breathe()
    assert turn.since == since  # not used up: no yield, nothing reset
    turn.seconds = 0.0
    assert turn.over()
    await turn.breathe()
    assert turn.since > since


def test_a_thread_named_in_the_os_keeps_fifteen_characters_and_its_python_name() -> None:
    seen: list[tuple[str, str]] = []

    def run() -> None:
        name_thread("retention-a-long-name")
        seen.append((os_name(), threading.current_thread().name))

    thread = threading.Thread(target=run, name="py-name")
    thread.start()
    thread.join()
    assert seen == [("retention-a-lon", "py-name")]
