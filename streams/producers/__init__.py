"""Producer-side tools, apart from the worker: publish files, simulate traffic, replay exports."""
