"""pytest configuration: the real local stack for integration tests, and nothing left behind in it."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fixtures import LEDGER
from ledger import clean

from retention_monitor.stack import StackConfig, up
from streams.config import Settings


@pytest.fixture(scope="session")
def stack() -> Iterator[str]:
    """Start (or reuse) the local stack on the default ports; yields the Kafka bootstrap address.

    What tests of sessions that are gone left behind is deleted first, this session's own at the end.
    """
    settings = Settings()
    statuses = up(StackConfig.from_settings(settings))
    assert all(s.running for s in statuses), statuses
    live = LEDGER.live_tags()
    clean(settings.kafka_bootstrap, settings.redis_url, lambda tag: tag not in live)
    # The stack stays up after the tests: it is shared with `./run demo` and later runs.
    yield settings.kafka_bootstrap
    clean(settings.kafka_bootstrap, settings.redis_url, lambda tag: tag in LEDGER.tags)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    LEDGER.close()
