"""Checkpoints of the KPI store on local disk: which ones may be used, and writing them off the loop.

A restarted worker that gets its partitions back resumes each from the checkpoint's position instead of
reading its whole changelog again.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from pathlib import Path

from metrics import snapshot
from metrics.store import KpiStore
from streams.pacing import beside

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Checkpoints:
    """Where and how often the KPI store is checkpointed, and which checkpoints may be used."""

    directory: Path
    fingerprint: str
    interval_s: float  # 0: never
    max_age_s: float  # younger than the changelog's min.compaction.lag.ms: nothing after it was compacted


class Checkpointer:
    """Writes checkpoints of ``store`` at most every ``interval_s``, in a thread, one at a time."""

    def __init__(self, checkpoints: Checkpoints | None, store: KpiStore) -> None:
        self.checkpoints = checkpoints
        self.store = store
        self._at = time.monotonic()
        self._records = -1
        self._writing: asyncio.Task[None] | None = None

    async def restore(self) -> dict[int, int]:
        """Load the usable checkpoint into the store; its positions per partition (none: empty)."""
        cp = self.checkpoints
        if cp is None:
            return {}
        began = time.monotonic()
        positions = await asyncio.to_thread(snapshot.read, cp.directory, self.store, cp.fingerprint, cp.max_age_s)
        if positions is None:
            return {}
        log.info("KPI store checkpoint loaded: partitions %s, %d customers, %.1fs", sorted(positions),
                 self.store.customers(), time.monotonic() - began)
        return positions

    def maybe(self, positions: dict[int, int], records: int) -> None:
        """Start writing a checkpoint if one is due and anything changed since the last."""
        cp = self.checkpoints
        if cp is None or not cp.interval_s or time.monotonic() - self._at < cp.interval_s:
            return
        if (self._writing and not self._writing.done()) or records == self._records:
            return
        self._at, self._records = time.monotonic(), records
        taken = snapshot.capture(self.store, positions, cp.fingerprint)  # consistent: between batches
        self._writing = asyncio.get_running_loop().create_task(beside(lambda: snapshot.write(taken, cp.directory)))

    def now(self, positions: dict[int, int]) -> None:
        """Write one now (a clean stop), so the restart reads nothing twice."""
        cp = self.checkpoints
        if cp is None or not cp.interval_s:
            return
        try:
            snapshot.write(snapshot.capture(self.store, positions, cp.fingerprint), cp.directory)
        except OSError:
            log.warning("could not write the KPI store checkpoint to %s", cp.directory, exc_info=True)
