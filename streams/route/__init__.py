"""Stage 1, route: validate every input message, dead-letter the bad, pack the good by customer partition."""
