"""Errors of the pure KPI logic."""

from core.errors import RetentionMonitorError


class MetricsError(RetentionMonitorError):
    """Base of the metrics package's errors."""


class Unavailable(MetricsError):
    """The stores that hold some partitions cannot answer now (a rebalance, a worker restoring or away);
    the message says which and why."""


class NotPinned(MetricsError, ValueError):
    """A read session that keeps results instead of holding the store asked what they cannot answer."""
