"""Stage 3, follow: read the changelog into the KPI store, with checkpoints."""
