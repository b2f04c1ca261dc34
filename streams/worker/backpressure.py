"""Counts the moments Faust stops feeding the apply agent: when the agent's buffer passes its high-water
mark (80 % of ``stream_buffer_maxsize``), Faust stops fetching its partitions and, once none is left to
fetch, sleeps a whole second before it looks again (``Consumer._wait_next_records``). Each such moment
adds up to a second to the ``queue`` stage of ``retention_stage_seconds``; this counter says whether a
latency spike was one.
"""

from __future__ import annotations

import faust
from faust.types import TP
from prometheus_client import CollectorRegistry, Counter


class BufferFullSensor(faust.Sensor):
    """A Faust sensor feeding ``retention_apply_buffer_full_total``."""

    def __init__(self, registry: CollectorRegistry) -> None:
        super().__init__()
        self.full = Counter("retention_apply_buffer_full", "Times the apply agent's buffer passed its high-water "
                            "mark and Faust paused fetching one of its partitions", registry=registry)  # fmt: skip

    def on_topic_buffer_full(self, tp: TP) -> None:
        self.full.inc()
