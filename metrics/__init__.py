"""Pure KPI logic (no Faust, no Kafka): records, facts, the event-time index, the KPI formulas, the gauges."""
