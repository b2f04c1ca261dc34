"""The one exception root of retention-monitor, and its direct subclasses."""


class RetentionMonitorError(Exception):
    """Base of every error the monitor raises on purpose."""


class ConfigError(RetentionMonitorError):
    """A setting has a value that is not allowed."""


class PeriodError(RetentionMonitorError):
    """A KPI period or segment selector cannot be parsed."""


class StackError(RetentionMonitorError):
    """The local stack (Kafka, Redis, Prometheus, Alertmanager) cannot be set up or started."""


class QueryError(RetentionMonitorError):
    """A KPI query to a worker failed."""
