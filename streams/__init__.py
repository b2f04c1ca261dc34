"""Event contract, Faust app, agents and per-customer state of retention-monitor."""
