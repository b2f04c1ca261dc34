"""Alert state in the real Redis: round trip, shared by workers, one page per firing, and the
in-memory fallback while Redis is down, written back by ``reconcile``."""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from fixtures import free_port
from hypothesis import given
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry
from redis.asyncio import Redis

from alerts.state import AlertState, StateMetrics, StateStore
from core.config import load_settings

REDIS_URL = "redis://127.0.0.1:6379/0"

finite = st.none() | st.floats(allow_nan=False)


@given(st.builds(AlertState, finite, finite, finite, finite, finite))
def test_hash_round_trip(state: AlertState) -> None:
    data = state.to_hash()
    assert all(isinstance(v, str) for v in data.values())
    assert AlertState.from_hash(data) == state


def test_hash_leaves_out_none_and_ignores_garbage() -> None:
    assert AlertState(firing_since=1.5).to_hash() == {"firing_since": "1.5"}
    assert AlertState.from_hash({}) == AlertState()
    assert AlertState.from_hash({"last_sent": "x", "other": "1", "last_value": "0.25"}) == AlertState(last_value=0.25)


def test_stamp_is_the_latest_send_or_firing() -> None:
    assert AlertState().stamp() == float("-inf")
    assert AlertState(firing_since=10, last_sent=30, last_breach=99).stamp() == 30
    assert AlertState(firing_since=40, last_sent=30).stamp() == 40


# -- against the real Redis ------------------------------------------------------------------------------


@pytest_asyncio.fixture
async def app_id(stack: str) -> AsyncIterator[str]:
    """A unique app id; its keys are deleted afterwards."""
    app = f"test-state-{uuid.uuid4().hex[:8]}"
    yield app
    redis = Redis.from_url(REDIS_URL, decode_responses=True)
    try:
        keys = [k async for k in redis.scan_iter(match=f"retention:{app}:*")]
        if keys:
            await redis.delete(*keys)
    finally:
        await redis.aclose()


@pytest_asyncio.fixture
async def raw() -> AsyncIterator[Redis]:
    redis = Redis.from_url(REDIS_URL, decode_responses=True)
    yield redis
    await redis.aclose()


def sample(registry: CollectorRegistry, name: str, **labels: str) -> float | None:
    return registry.get_sample_value(name, labels)


@pytest.mark.integration
@pytest.mark.asyncio
async def test_put_get_round_trip(app_id: str, raw: Redis) -> None:
    store = StateStore(REDIS_URL, app_id)
    try:
        assert await store.get("ChurnHigh", "plan:pro") == AlertState()
        state = AlertState(pending_since=1741600000.25, firing_since=1741600180.5, last_value=0.3)
        await store.put("ChurnHigh", "plan:pro", state)
        assert await store.get("ChurnHigh", "plan:pro") == state
        assert await raw.hgetall(f"retention:{app_id}:alert:ChurnHigh:plan:pro") == {
            "pending_since": "1741600000.25", "firing_since": "1741600180.5", "last_value": "0.3"}

        await store.put("ChurnHigh", "plan:pro", AlertState(last_sent=5.0))  # None fields disappear
        assert await raw.hgetall(f"retention:{app_id}:alert:ChurnHigh:plan:pro") == {"last_sent": "5.0"}
        await store.put("ChurnHigh", "plan:pro", AlertState())
        assert await raw.exists(f"retention:{app_id}:alert:ChurnHigh:plan:pro") == 0
        assert store.available
    finally:
        await store.close()


@pytest.mark.integration
@pytest.mark.asyncio
async def test_two_workers_share_state(app_id: str) -> None:
    a, b = StateStore(REDIS_URL, app_id), StateStore(REDIS_URL, app_id)
    other = StateStore(REDIS_URL, app_id + "-other")
    try:
        await a.put("ChurnHigh", "all", AlertState(firing_since=100.0, last_sent=100.0))
        await a.put("NpsLow", "region:eu", AlertState(pending_since=50.0))
        assert await b.get("ChurnHigh", "all") == AlertState(firing_since=100.0, last_sent=100.0)
        await b.put("ChurnHigh", "all", AlertState(firing_since=100.0, last_sent=160.0))
        assert (await a.get("ChurnHigh", "all")).last_sent == 160.0
        await a.claim_page("ChurnHigh", "all", 100.0, 60)  # a page claim is not a state
        assert await b.all() == {("ChurnHigh", "all"): AlertState(firing_since=100.0, last_sent=160.0),
                                 ("NpsLow", "region:eu"): AlertState(pending_since=50.0)}
        assert await other.all() == {}
    finally:
        for s in (a, b, other):
            await s.close()


@pytest.mark.integration
@pytest.mark.asyncio
async def test_claim_page_once_per_firing(app_id: str, raw: Redis) -> None:
    stores = [StateStore(REDIS_URL, app_id) for _ in range(8)]
    try:
        won = await asyncio.gather(*(s.claim_page("ChurnHigh", "all", 1741600180.5, 120) for s in stores))
        assert sorted(won) == [False] * 7 + [True]
        assert not await stores[0].claim_page("ChurnHigh", "all", 1741600180.5, 120)
        assert await stores[0].claim_page("ChurnHigh", "all", 1741609999.0, 120)  # a later firing pages again
        assert await stores[0].claim_page("ChurnHigh", "plan:pro", 1741600180.5, 120)
        ttl = await raw.ttl(stores[0].page_key("ChurnHigh", "all", 1741600180.5))
        assert 0 < ttl <= 120
    finally:
        for s in stores:
            await s.close()


@pytest.mark.integration
@pytest.mark.asyncio
async def test_redis_down_serves_memory_and_reconciles(app_id: str, caplog: pytest.LogCaptureFixture) -> None:
    registry = CollectorRegistry()
    store = StateStore(f"redis://127.0.0.1:{free_port()}/0", app_id, metrics=StateMetrics.create(registry))
    reader = StateStore(REDIS_URL, app_id)
    try:
        assert sample(registry, "retention_alert_state_redis_up") == 1
        with caplog.at_level(logging.WARNING, logger="alerts.state"):
            assert await store.get("ChurnHigh", "all") == AlertState()
            state = AlertState(pending_since=10.0, firing_since=20.0, last_breach=25.0, last_sent=25.0, last_value=0.4)
            await store.put("ChurnHigh", "all", state)
            assert await store.get("ChurnHigh", "all") == state
            assert await store.all() == {("ChurnHigh", "all"): state}
            assert await store.claim_page("ChurnHigh", "all", 20.0, 3600)  # best effort, from memory
            assert not await store.claim_page("ChurnHigh", "all", 20.0, 3600)
            assert not await store.reconcile()  # still down
        assert not store.available
        assert sample(registry, "retention_alert_state_redis_up") == 0
        assert sample(registry, "retention_alert_state_errors_total", op="get") == 1
        assert sample(registry, "retention_alert_state_errors_total", op="reconcile") == 1
        assert len([r for r in caplog.records if r.levelno == logging.WARNING]) == 1  # once per outage
        assert await reader.get("ChurnHigh", "all") == AlertState()

        await store.use_url(REDIS_URL)  # Redis is back
        assert await store.reconcile()
        assert store.available
        assert sample(registry, "retention_alert_state_redis_up") == 1
        assert await reader.get("ChurnHigh", "all") == state
        assert not await reader.claim_page("ChurnHigh", "all", 20.0, 3600)  # the outage's page claim is kept
    finally:
        await store.close()
        await reader.close()


@pytest.mark.integration
@pytest.mark.asyncio
async def test_reconcile_keeps_a_newer_state_from_redis(app_id: str) -> None:
    cut_off = StateStore(f"redis://127.0.0.1:{free_port()}/0", app_id)
    other = StateStore(REDIS_URL, app_id)
    try:
        await cut_off.put("ChurnHigh", "all", AlertState(firing_since=100.0, last_sent=100.0))
        await cut_off.put("NpsLow", "all", AlertState(last_sent=300.0))  # resolved while cut off
        await other.put("ChurnHigh", "all", AlertState(firing_since=100.0, last_sent=200.0))  # re-sent meanwhile
        await other.put("NpsLow", "all", AlertState(firing_since=150.0, last_sent=250.0))
        await cut_off.use_url(REDIS_URL)
        assert await cut_off.reconcile()
        assert await other.get("ChurnHigh", "all") == AlertState(firing_since=100.0, last_sent=200.0)
        assert await cut_off.get("ChurnHigh", "all") == AlertState(firing_since=100.0, last_sent=200.0)
        assert await other.get("NpsLow", "all") == AlertState(last_sent=300.0)
    finally:
        await cut_off.close()
        await other.close()


# -- AUTH and TLS options (no Redis needed; tests/test_reliability/test_security.py uses a real one) ---------

SECRET = "pw-4d2f8a61c3"  # distinctive, so that finding it in a log is a real leak


def connection_kwargs(store: StateStore) -> dict[str, Any]:
    kwargs: dict[str, Any] = store._redis.connection_pool.connection_kwargs
    return kwargs


@pytest.mark.asyncio
async def test_redis_password_wins_over_the_urls() -> None:
    store = StateStore("redis://monitor:from-url@redis:6379/2", "app", password=SECRET)
    try:
        kwargs = connection_kwargs(store)
        assert (kwargs["username"], kwargs["password"], kwargs["db"]) == ("monitor", SECRET, 2)
    finally:
        await store.close()


@pytest.mark.asyncio
async def test_without_redis_password_the_urls_is_used() -> None:
    store = StateStore("redis://:from-url@redis:6379/0", "app")
    try:
        assert connection_kwargs(store)["password"] == "from-url"
        assert "ssl_ca_certs" not in connection_kwargs(store)
    finally:
        await store.close()


@pytest.mark.asyncio
async def test_from_settings_verifies_rediss_against_the_ca(tmp_path: Path) -> None:
    ca = tmp_path / "ca.pem"
    ca.write_text("not read until a connection is made\n")
    settings = load_settings(env={}, overrides={"redis_url": "rediss://redis:6380/0", "redis_password": SECRET,
                                                "redis_ssl_cafile": str(ca), "app_id": "tls-app"}).settings
    store = StateStore.from_settings(settings.alerting.redis, settings.app_id)
    try:
        kwargs = connection_kwargs(store)
        assert (kwargs["ssl_ca_certs"], kwargs["password"], store.app_id) == (str(ca), SECRET, "tls-app")
        assert kwargs.get("ssl_cert_reqs", "required") == "required"
    finally:
        await store.close()


@pytest.mark.asyncio
async def test_plain_url_ignores_the_ca_file(tmp_path: Path) -> None:
    store = StateStore("redis://redis:6379/0", "app", ssl_cafile=str(tmp_path / "ca.pem"))
    try:
        assert "ssl_ca_certs" not in connection_kwargs(store)  # a plain connection would refuse the keyword
    finally:
        await store.close()


@pytest.mark.asyncio
async def test_outage_warning_masks_the_password(caplog: pytest.LogCaptureFixture) -> None:
    port = free_port()
    store = StateStore(f"redis://:{SECRET}-url@127.0.0.1:{port}/0", "app", password=SECRET)
    try:
        with caplog.at_level(logging.INFO, logger="alerts.state"):
            assert await store.get("ChurnHigh", "all") == AlertState()
        assert not store.available
        text = "\n".join(r.getMessage() for r in caplog.records)
        assert f"Redis at redis://:***@127.0.0.1:{port}/0 failed on get" in text
        assert SECRET not in text
        assert store.where == f"redis://:***@127.0.0.1:{port}/0"
    finally:
        await store.close()
