"""Errors of the command line and the local stack."""

from core.errors import RetentionMonitorError


class CliError(RetentionMonitorError):
    """Base of the command line's errors."""


class UsageError(CliError):
    """An option has a value that is not allowed (exit 2)."""


class StackError(CliError):
    """The local stack (Kafka, Redis, Prometheus, Alertmanager) cannot be set up or started."""


class QueryError(CliError):
    """A KPI query to a worker failed: no answer, or the worker could not answer now (exit 3)."""


class BadRequest(QueryError):
    """The worker refused the question itself (HTTP 4xx: a bad period, segment or option; exit 2)."""


class ReportError(CliError):
    """A report option has a value that is not allowed."""


class GrafanaError(StackError):
    """Grafana cannot be reached, refuses the credentials, or rejects a dashboard."""


class KafkaUnreachable(StackError):
    """Kafka cannot be reached or fails a command's reads and sends (exit 3)."""
