"""Alert rules, evaluation and delivery (Alertmanager); see issue 4."""
