"""Redis on loopback without persistence (named so that it does not shadow the ``redis`` client)."""

from __future__ import annotations

import shutil
from typing import ClassVar

import redis.asyncio as aioredis

from retention_monitor.exceptions import StackError

from .process import Report, Service


class Redis(Service):
    name = "redis"
    apt_packages: ClassVar[dict[str, str]] = {"redis-server": "redis-server"}
    ready_timeout = 15.0

    @property
    def ports(self) -> tuple[int, ...]:
        return (self.cfg.redis_port,)

    async def prepare(self, report: Report) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)

    def argv(self) -> list[str]:
        binary = shutil.which("redis-server")
        if binary is None:
            raise StackError("redis-server not found: install the Debian package redis-server")
        return [
            binary,
            "--bind", "127.0.0.1",
            "--port", str(self.cfg.redis_port),
            "--dir", str(self.dir),
            "--save", "",
            "--appendonly", "no",
            "--daemonize", "no",
            "--protected-mode", "yes",
        ]  # fmt: skip

    async def probe(self) -> bool:
        client = aioredis.Redis(host="127.0.0.1", port=self.cfg.redis_port, socket_timeout=2.0)
        try:
            return bool(await client.ping())
        except Exception:
            return False
        finally:
            await client.aclose()
