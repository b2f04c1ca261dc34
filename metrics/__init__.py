"""Pure KPI math (no Faust, no Kafka), Prometheus exposition and the KPI query."""
