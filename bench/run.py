"""The bench's one command; see bench/harness.py or ``--help``.

    .venv/bin/python bench/run.py --customers 5000 --events 50000     # or: python -m bench.run …
"""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

if __name__ == "__main__":
    # Run as a script, Python puts bench/ itself on the path, not the repository root that holds it.
    root = str(Path(__file__).resolve().parents[1])
    if root not in sys.path:
        sys.path.insert(0, root)
    sys.exit(importlib.import_module("bench.harness").main())
