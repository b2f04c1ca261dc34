"""Alert state shared by every worker of an app, in Redis, with an in-memory fallback.

Design notes: docs/architecture.md, "alerts/state.py".
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from prometheus_client import CollectorRegistry, Counter, Gauge
from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import ConstantBackoff
from redis.exceptions import RedisError, WatchError
from redis.typing import EncodableT, FieldT

from core.config import MASK, redact_url
from core.slices import RedisSettings

log = logging.getLogger(__name__)

StateKey = tuple[str, str]  # (rule, segment)
_GLOB_SPECIAL = "*?[]\\"


@dataclass
class AlertState:
    """Where one rule stands for one segment (epoch seconds; ``None`` = never / not now)."""

    pending_since: float | None = None
    firing_since: float | None = None
    last_breach: float | None = None
    last_sent: float | None = None
    last_value: float | None = None

    def to_hash(self) -> dict[FieldT, EncodableT]:
        """The Redis hash fields: set values as round-trippable strings, ``None`` fields left out."""
        return {name: repr(float(value)) for name in _FIELDS if (value := getattr(self, name)) is not None}

    @classmethod
    def from_hash(cls, data: Mapping[Any, Any]) -> AlertState:
        """The inverse of :meth:`to_hash`; missing, unknown or unparsable fields are ignored (``None``)."""
        values: dict[str, float | None] = {}
        for name in _FIELDS:
            raw = data.get(name)
            if raw is None:
                continue
            raw = raw.decode() if isinstance(raw, bytes) else str(raw)
            try:
                values[name] = float(raw)
            except ValueError:
                log.warning("alert state field %s=%r is not a number, ignoring it", name, raw)
        return cls(**values)

    def stamp(self) -> float:
        """How recent this state is, for reconciling: the latest of ``last_sent`` and ``firing_since``."""
        return max((t for t in (self.last_sent, self.firing_since) if t is not None), default=-math.inf)


_FIELDS = tuple(f.name for f in fields(AlertState))


@dataclass
class StateMetrics:
    """Redis errors of the alert state store and whether Redis is reachable."""

    errors: Counter
    redis_up: Gauge

    @classmethod
    def create(cls, registry: CollectorRegistry) -> StateMetrics:
        return cls(
            errors=Counter("retention_alert_state_errors_total",
                           "Alert state operations that failed against Redis (served from memory)",
                           ["op"], registry=registry),
            redis_up=Gauge("retention_alert_state_redis_up",
                           "1 when the alert state store uses Redis, 0 while it runs from memory",
                           registry=registry),
        )


def _escape_glob(text: str) -> str:
    return "".join(f"\\{c}" if c in _GLOB_SPECIAL else c for c in text)


class StateStore:
    """Alert states of app ``app_id`` in Redis at ``redis_url``, with an in-memory copy for outages."""

    def __init__(self, redis_url: str, app_id: str, metrics: StateMetrics | None = None,
                 timeout_s: float = 2.0, *, password: str = "", ssl_cafile: str = "") -> None:
        self.app_id = app_id
        self.metrics = metrics
        self.timeout_s = timeout_s
        self.available = True
        self.redis_url = redis_url
        self._password = password
        self._ssl_cafile = ssl_cafile
        self._redis = self._connect(redis_url)
        self._local: dict[StateKey, AlertState] = {}
        self._dirty: set[StateKey] = set()  # changed in memory, not yet in Redis
        self._claims: dict[str, float] = {}  # page claim key -> monotonic expiry, as far as this process knows
        self._unsent_claims: set[str] = set()  # claimed in memory during an outage
        self._set_up(True)

    @classmethod
    def from_settings(cls, redis: RedisSettings, app_id: str, metrics: StateMetrics | None = None) -> StateStore:
        """The store of ``app_id`` at the ``redis_url``, with ``redis_password`` and ``redis_ssl_cafile``."""
        return cls(redis.url, app_id, metrics=metrics, password=redis.password, ssl_cafile=redis.ssl_cafile)

    @property
    def where(self) -> str:
        """The Redis URL as log lines may show it (password masked)."""
        return redact_url(self.redis_url)

    # -- keys -------------------------------------------------------------------------------------

    def key(self, rule: str, segment: str) -> str:
        return f"retention:{self.app_id}:alert:{rule}:{segment}"

    def page_key(self, rule: str, segment: str, firing_since: float) -> str:
        return f"retention:{self.app_id}:alert-page:{rule}:{segment}:{float(firing_since)!r}"

    # -- public API -------------------------------------------------------------------------------

    async def get(self, rule: str, segment: str) -> AlertState:
        """The state of ``rule`` for ``segment`` (a fresh :class:`AlertState` if there is none)."""
        sk = (rule, segment)
        if self.available and sk not in self._dirty:
            try:
                data = await self._redis.hgetall(self.key(rule, segment))
            except (RedisError, OSError) as exc:
                self._down("get", exc)
            else:
                state = AlertState.from_hash(data)
                self._local[sk] = state
                return replace(state)
        return replace(self._local.get(sk, AlertState()))

    async def put(self, rule: str, segment: str, state: AlertState) -> None:
        """Store ``state`` (in memory at once, in Redis now or at the next successful :meth:`reconcile`)."""
        sk = (rule, segment)
        self._local[sk] = replace(state)
        if self.available:
            try:
                await self._write(self.key(rule, segment), state)
            except (RedisError, OSError) as exc:
                self._down("put", exc)
            else:
                self._dirty.discard(sk)
                return
        self._dirty.add(sk)

    async def claim_page(self, rule: str, segment: str, firing_since: float, ttl_s: int) -> bool:
        """True for the first caller only (across workers) to claim the page of this firing; the claim
        expires after ``ttl_s``. While Redis is unreachable: True unless this process saw it claimed."""
        key = self.page_key(rule, segment, firing_since)
        now = time.monotonic()
        self._claims = {k: exp for k, exp in self._claims.items() if exp > now}
        if self.available:
            try:
                won = bool(await self._redis.set(key, str(time.time()), nx=True, ex=max(1, int(ttl_s))))
            except (RedisError, OSError) as exc:
                self._down("claim_page", exc)
            else:
                self._claims[key] = now + ttl_s
                return won
        if key in self._claims:
            return False
        self._claims[key] = now + ttl_s
        self._unsent_claims.add(key)
        return True

    async def all(self) -> dict[StateKey, AlertState]:
        """Every state of this app: from Redis (plus local changes not written yet), or from memory."""
        if self.available:
            try:
                states = await self._read_all()
            except (RedisError, OSError) as exc:
                self._down("all", exc)
            else:
                for sk, state in states.items():
                    if sk not in self._dirty:
                        self._local[sk] = state
                return {sk: replace(s) for sk, s in {**states, **self._local_dirty()}.items()}
        return {sk: replace(s) for sk, s in self._local.items()}

    async def reconcile(self) -> bool:
        """Write what changed during an outage back to Redis when it is reachable; True when in sync.

        A local state wins unless Redis holds a newer one (:meth:`AlertState.stamp`), which is then
        adopted locally. Cheap (no Redis call) when Redis is available and nothing is pending.
        """
        if self.available and not self._dirty and not self._unsent_claims:
            return True
        try:
            await self._redis.ping()
            synced = True
            for sk in sorted(self._dirty):
                if await self._write_back(sk):
                    self._dirty.discard(sk)
                else:
                    synced = False
            for key in sorted(self._unsent_claims):
                ttl = self._claims.get(key, 0.0) - time.monotonic()
                if ttl >= 1 and not await self._redis.set(key, "reconciled", nx=True, ex=int(ttl)):
                    log.warning("page %s was also claimed by another worker during the Redis outage", key)
                self._unsent_claims.discard(key)
        except (RedisError, OSError) as exc:
            self._down("reconcile", exc)
            return False
        if not self.available:
            log.info("alert state: Redis at %s reachable again, local changes written back", self.where)
        self.available = True
        self._set_up(True)
        return synced

    async def use_url(self, redis_url: str) -> None:
        """Talk to Redis at ``redis_url`` from now on (the next :meth:`reconcile` syncs local changes)."""
        old = self._redis
        self.redis_url = redis_url
        self._redis = self._connect(redis_url)
        await old.aclose()

    async def close(self) -> None:
        await self._redis.aclose()

    # -- internals --------------------------------------------------------------------------------

    def _connect(self, url: str) -> Redis:
        options: dict[str, Any] = {}
        if self._password:
            # redis-py lets the URL's password win over a keyword, so it leaves the URL first
            url = _without_password(url)
            options["password"] = self._password
        if self._ssl_cafile and url.startswith("rediss://"):
            options["ssl_ca_certs"] = str(Path(self._ssl_cafile).expanduser())
        # one quick retry for a dropped connection, then fall back to memory rather than stall the alert loop
        return Redis.from_url(url, decode_responses=True, socket_timeout=self.timeout_s,
                              socket_connect_timeout=self.timeout_s, retry=Retry(ConstantBackoff(0.05), 1), **options)

    def _local_dirty(self) -> dict[StateKey, AlertState]:
        return {sk: self._local[sk] for sk in self._dirty if sk in self._local}

    async def _write(self, key: str, state: AlertState) -> None:
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.delete(key)
            if mapping := state.to_hash():
                pipe.hset(key, mapping=mapping)
            await pipe.execute()

    async def _write_back(self, sk: StateKey, attempts: int = 5) -> bool:
        """Write the local state of ``sk`` unless Redis has a newer one (optimistic, WATCH/MULTI)."""
        key = self.key(*sk)
        local = self._local[sk]
        for _ in range(attempts):
            try:
                async with self._redis.pipeline(transaction=True) as pipe:
                    await pipe.watch(key)
                    remote = AlertState.from_hash(await pipe.hgetall(key))
                    if remote.stamp() > local.stamp():
                        log.info("alert state %s: Redis has a newer state than this worker, keeping it", key)
                        self._local[sk] = remote
                        return True
                    pipe.multi()  # type: ignore[no-untyped-call]
                    pipe.delete(key)
                    if mapping := local.to_hash():
                        pipe.hset(key, mapping=mapping)
                    await pipe.execute()
                    return True
            except WatchError:  # someone wrote it meanwhile: compare again
                continue
        log.warning("alert state %s: changed concurrently %d times, writing it on the next reconcile", key, attempts)
        return False

    async def _read_all(self) -> dict[StateKey, AlertState]:
        prefix = f"retention:{self.app_id}:alert:"
        keys: list[str] = [k async for k in self._redis.scan_iter(match=_escape_glob(prefix) + "*",
                                                                   count=500, _type="HASH")]
        if not keys:
            return {}
        async with self._redis.pipeline(transaction=False) as pipe:
            for k in keys:
                pipe.hgetall(k)
            hashes: list[Any] = await pipe.execute()
        out: dict[StateKey, AlertState] = {}
        for k, data in zip(keys, hashes, strict=True):
            rule, sep, segment = k[len(prefix):].partition(":")
            if sep and data:
                out[(rule, segment)] = AlertState.from_hash(data)
        return out

    def _down(self, op: str, exc: BaseException) -> None:
        if self.metrics is not None:
            self.metrics.errors.labels(op).inc()
        if self.available:
            log.warning("alert state: Redis at %s failed on %s (%s: %s); using the in-memory copy until it is "
                        "reachable again", self.where, op, type(exc).__name__, self._scrub(str(exc)))
        self.available = False
        self._set_up(False)

    def _scrub(self, text: str) -> str:
        """``text`` without the password (no Redis error is known to echo it; this keeps it that way)."""
        secrets = {self._password}
        try:
            in_url = urlsplit(self.redis_url).password
        except ValueError:
            in_url = None
        if in_url:
            secrets |= {in_url, unquote(in_url)}
        for secret in sorted(filter(None, secrets), key=len, reverse=True):
            text = text.replace(secret, MASK)
        return text

    def _set_up(self, up: bool) -> None:
        if self.metrics is not None:
            self.metrics.redis_up.set(1 if up else 0)


def _without_password(url: str) -> str:
    """``url`` without the password of its user info (the user name stays)."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    userinfo, _, hostport = parts.netloc.rpartition("@")
    user = userinfo.partition(":")[0]
    return parts._replace(netloc=f"{user}@{hostport}" if user else hostport).geturl()
