"""Errors of the command line and the local stack."""

from core.errors import RetentionMonitorError


class CliError(RetentionMonitorError):
    """Base of the command line's errors."""


class StackError(CliError):
    """The local stack (Kafka, Redis, Prometheus, Alertmanager) cannot be set up or started."""


class QueryError(CliError):
    """A KPI query to a worker failed."""


class ReportError(CliError):
    """A report option has a value that is not allowed."""


class GrafanaError(StackError):
    """Grafana cannot be reached, refuses the credentials, or rejects a dashboard."""
