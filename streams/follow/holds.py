"""Read sessions on the KPI store: while a KPI answer is being computed (several rounds of questions),
the follower applies nothing, so every round sees the same state of this worker's share.

A session is held from its first question until it is released, or until it has been idle for
``lease_s`` (a coordinator that went away). Sessions already open are never kept waiting; a new one waits
while the follower waits, so neither side starves.
"""

from __future__ import annotations

import asyncio
import contextlib
import time

LEASE_S = 2.0


class Holds:
    """Sessions that pause writes to one KPI store."""

    def __init__(self, lease_s: float = LEASE_S) -> None:
        self.lease_s = lease_s
        self.sessions: dict[str, float] = {}  # session -> when its lease runs out (monotonic)
        self._changed = asyncio.Condition()
        self._writer_waiting = False

    async def hold(self, session: str) -> None:
        """Hold (or renew) ``session``; a new one waits for a waiting writer first."""
        async with self._changed:
            if session not in self.sessions:
                await self._changed.wait_for(lambda: not self._writer_waiting)
            self.sessions[session] = time.monotonic() + self.lease_s

    async def release(self, session: str) -> None:
        async with self._changed:
            if self.sessions.pop(session, None) is not None:
                self._changed.notify_all()

    async def writable(self) -> None:
        """Wait until no session holds the store (expiring the ones whose lease ran out)."""
        async with self._changed:
            self._writer_waiting = True
            try:
                while self._expire():
                    soonest = min(self.sessions.values()) - time.monotonic()
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._changed.wait(), max(soonest, 0.001))
            finally:
                self._writer_waiting = False
                self._changed.notify_all()

    def _expire(self) -> bool:
        """Drop the sessions whose lease ran out; whether any is left."""
        now = time.monotonic()
        for session in [s for s, until in self.sessions.items() if until <= now]:
            del self.sessions[session]
        return bool(self.sessions)
