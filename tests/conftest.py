"""pytest configuration: the real local stack for integration tests, and no test topics left behind in it."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest
from fixtures import LEDGER
from topic_ledger import delete_topics, own_topics, stale_topics

from retention_monitor.stack import StackConfig, up
from streams.config import Settings


@pytest.fixture(scope="session")
def stack() -> Iterator[str]:
    """Start (or reuse) the local stack on the default ports; yields the Kafka bootstrap address.

    Test topics of sessions that are gone are deleted first, this session's own ones at the end.
    """
    settings = Settings()
    statuses = up(StackConfig.from_settings(settings))
    assert all(s.running for s in statuses), statuses
    bootstrap = settings.kafka_bootstrap
    live = LEDGER.live_tags()
    asyncio.run(delete_topics(bootstrap, lambda topics: stale_topics(topics, live)))
    # The stack stays up after the tests: it is shared with `./run demo` and later runs.
    yield bootstrap
    asyncio.run(delete_topics(bootstrap, lambda topics: own_topics(topics, LEDGER.tags)))


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    LEDGER.close()
