"""Benchmarks of the monitor against a raw-consumer ceiling and a Quix Streams peer.

Run from the repository root: ``.venv/bin/python -m bench.run --help`` (``bench/run.py`` works too).
"""
