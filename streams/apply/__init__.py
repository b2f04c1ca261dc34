"""Stage 2, apply: per-customer state of the owned partitions, records to facts, one changelog entry per changed key."""
