"""The worker process: wires the stages, the KPI gauges, the alerts and the HTTP pages into one Faust app."""
