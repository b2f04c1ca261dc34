"""pytest configuration: ``fixtures`` importable, and the real local stack for integration tests."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))


@pytest.fixture(scope="session")
def stack() -> Iterator[str]:
    """Start (or reuse) the local stack on the default ports; yields the Kafka bootstrap address."""
    from retention_monitor.stack import StackConfig, up
    from streams.config import Settings

    settings = Settings()
    statuses = up(StackConfig.from_settings(settings))
    assert all(s.running for s in statuses), statuses
    yield settings.kafka_bootstrap
