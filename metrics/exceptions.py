"""Errors of the pure KPI logic."""

from core.errors import RetentionMonitorError


class MetricsError(RetentionMonitorError):
    """Base of the metrics package's errors."""


class KeyRangeError(MetricsError, ValueError):
    """A customer number outside the range the KPI store's columns can hold."""
