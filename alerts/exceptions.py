"""Errors of the alerts package."""

from core.errors import RetentionMonitorError


class AlertsError(RetentionMonitorError):
    """Base of the alerts package's errors."""


class RuleError(AlertsError):
    """An alert rule file or one of its rules is not valid."""


class AlertError(AlertsError):
    """An alert has missing or invalid labels."""
