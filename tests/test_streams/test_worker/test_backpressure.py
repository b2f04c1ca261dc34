"""Faust's buffer-full signal becomes a counter a latency spike can be checked against."""

from __future__ import annotations

from faust.types import TP
from prometheus_client import CollectorRegistry

from streams.worker.backpressure import BufferFullSensor


def test_each_buffer_full_signal_counts_once() -> None:
    registry = CollectorRegistry()
    sensor = BufferFullSensor(registry)
    assert registry.get_sample_value("retention_apply_buffer_full_total") == 0.0
    sensor.on_topic_buffer_full(TP("app-events-by-customer", 0))
    sensor.on_topic_buffer_full(TP("app-events-by-customer", 3))
    assert registry.get_sample_value("retention_apply_buffer_full_total") == 2.0
