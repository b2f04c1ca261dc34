"""Benchmarks of the monitor against a raw-consumer ceiling and the Quix Streams, Bytewax and Pathway peers.

Run from the repository root: ``.venv/bin/python -m bench.run --help`` (``bench/run.py`` works too).
"""
