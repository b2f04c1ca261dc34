"""The worker's HTTP pages: the KPI query, the alert dry run, readiness and the metrics."""
