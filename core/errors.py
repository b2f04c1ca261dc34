"""The one exception root of retention-monitor, and the errors of the base (settings, periods).

Every package has its own ``exceptions`` module whose classes derive from :class:`RetentionMonitorError`,
so a caller can catch everything the monitor raises on purpose in one place.
"""


class RetentionMonitorError(Exception):
    """Base of every error the monitor raises on purpose."""


class ConfigError(RetentionMonitorError):
    """A setting has a value that is not allowed."""


class PeriodError(RetentionMonitorError):
    """A KPI period or segment selector cannot be parsed."""
