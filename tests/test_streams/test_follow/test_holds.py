"""Read sessions pause the follower's writes, expire, and let neither side starve."""

from __future__ import annotations

import asyncio

import pytest

from streams.follow.holds import Holds


@pytest.mark.asyncio
async def test_a_writer_waits_for_the_sessions_and_a_new_session_for_the_writer() -> None:
    holds = Holds(lease_s=5.0)
    await holds.hold("a")
    writer = asyncio.create_task(holds.writable())
    await asyncio.sleep(0)  # the writer is waiting now
    newcomer = asyncio.create_task(holds.hold("b"))
    await holds.hold("a")  # an open session is renewed without waiting
    await asyncio.sleep(0)
    assert not writer.done()
    assert not newcomer.done()  # waits behind the writer
    await holds.release("a")
    await asyncio.wait_for(writer, 1)
    await asyncio.wait_for(newcomer, 1)
    assert set(holds.sessions) == {"b"}


@pytest.mark.asyncio
async def test_a_session_whose_coordinator_went_away_expires() -> None:
    holds = Holds(lease_s=0.05)
    await holds.hold("gone")
    await asyncio.wait_for(holds.writable(), 2)  # no release: the lease ends it
    assert holds.sessions == {}


@pytest.mark.asyncio
async def test_without_sessions_writes_go_ahead() -> None:
    holds = Holds()
    await asyncio.wait_for(holds.writable(), 1)
    await holds.release("never-held")
    assert holds.sessions == {}
