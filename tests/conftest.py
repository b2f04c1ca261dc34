"""pytest configuration: the real local stack for integration tests, and nothing left behind in it."""

from __future__ import annotations

import gc
import subprocess
from collections.abc import Iterator

import pytest
from fixtures import LEDGER
from ledger import clean

from core.settings import Settings
from retention_monitor.stack import StackConfig, up
from retention_monitor.stack.process import started_here


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


def running_subprocesses() -> list[subprocess.Popen[bytes]]:
    return [obj for obj in gc.get_objects() if isinstance(obj, subprocess.Popen) and obj.poll() is None]


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    LEDGER.close()
    # A process left running would go on consuming topics or holding ports after the run, and only shows
    # as a ResourceWarning at interpreter exit that names no test: stop it and say what it was. Services
    # this session started for a stack stay up (the stack is shared), but are named too.
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    services = {id(child) for child in started_here()}
    for proc in running_subprocesses():
        if id(proc) in services:
            line = f"conftest: a stack service this session started keeps running: pid {proc.pid}, {proc.args!r}"
        else:
            proc.kill()
            proc.wait(timeout=10)
            line = f"conftest: stopped a subprocess a test left running: pid {proc.pid}, {proc.args!r}"
        if reporter is not None:
            reporter.write_line(line[:400])
