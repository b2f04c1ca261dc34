"""Alert rules, evaluation and delivery (Alertmanager)."""
