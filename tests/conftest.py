"""pytest configuration: ``fixtures`` importable, and the real local stack for integration tests."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from retention_monitor.stack import StackConfig, up
from streams.config import Settings

sys.path.insert(0, str(Path(__file__).parent))


@pytest.fixture(scope="session")
def stack() -> str:
    """Start (or reuse) the local stack on the default ports; returns the Kafka bootstrap address."""
    settings = Settings()
    statuses = up(StackConfig.from_settings(settings))
    assert all(s.running for s in statuses), statuses
    # The stack stays up after the tests: it is shared with `./run demo` and later runs.
    return settings.kafka_bootstrap
