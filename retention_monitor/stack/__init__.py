"""The local stack: Kafka (KRaft), Redis, Prometheus and Alertmanager as detached processes on 127.0.0.1.

``up`` starts what is not running (concurrently) and waits until each service answers a real client
call; ``down`` stops everything; ``status`` only looks. Data, logs and pid files live under
``StackConfig.home``; the Kafka jars are fetched once with Maven into ``StackConfig.cache``.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import time
from collections.abc import Iterable

from rich.console import Console
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from retention_monitor.exceptions import StackError

from .alertmanager import Alertmanager
from .config import StackConfig
from .kafka import Kafka
from .process import (
    Report,
    Service,
    ServiceStatus,
    file_warning,
    port_in_use,
    raise_file_limit,
    running_pid,
    spawn,
    stop,
    wait_ready,
)
from .prometheus import Prometheus
from .redis_server import Redis

__all__ = [
    "ServiceStatus",
    "StackConfig",
    "down",
    "down_async",
    "services",
    "status",
    "status_async",
    "status_table",
    "up",
    "up_async",
]


def services(cfg: StackConfig) -> list[Service]:
    return [Kafka(cfg), Redis(cfg), Prometheus(cfg), Alertmanager(cfg)]


def up(cfg: StackConfig, console: Console | None = None) -> list[ServiceStatus]:
    """Start every service that is not running and wait until all are ready (idempotent)."""
    return asyncio.run(up_async(cfg, console))


def down(cfg: StackConfig) -> list[ServiceStatus]:
    """Stop every service this stack started (idempotent)."""
    return asyncio.run(down_async(cfg))


def status(cfg: StackConfig) -> list[ServiceStatus]:
    """Whether each service runs and answers; starts nothing."""
    return asyncio.run(status_async(cfg))


async def up_async(cfg: StackConfig, console: Console | None = None) -> list[ServiceStatus]:
    svcs = services(cfg)
    columns = (SpinnerColumn(), TextColumn("{task.fields[service]:<13}"), TextColumn("{task.description}"))
    with Progress(*columns, TimeElapsedColumn(), console=console or Console(stderr=True)) as progress:
        tasks = {s.name: progress.add_task("checking", service=s.name, total=1) for s in svcs}

        def reporter(name: str) -> Report:
            return lambda message: progress.update(tasks[name], description=message)

        def report_all(message: str) -> None:
            for task in tasks.values():
                progress.update(task, description=message)

        stopped = [s for s in svcs if running_pid(s.pid_file) is None]
        await asyncio.to_thread(_install_missing, stopped, report_all)
        results = await asyncio.gather(*(_ensure(s, reporter(s.name)) for s in svcs), return_exceptions=True)
        for s, result in zip(svcs, results, strict=True):
            text = f"[green]{result.detail}" if isinstance(result, ServiceStatus) else f"[red]failed: {result}"
            progress.update(tasks[s.name], description=text, completed=1)
    failures = [f"{s.name}: {r}" for s, r in zip(svcs, results, strict=True) if isinstance(r, BaseException)]
    for result in results:
        if isinstance(result, BaseException) and not isinstance(result, Exception):
            raise result
    if failures:
        raise StackError("; ".join(failures))
    return [r for r in results if isinstance(r, ServiceStatus)]


async def _ensure(s: Service, report: Report) -> ServiceStatus:
    started = time.monotonic()
    pid = running_pid(s.pid_file)
    if pid is not None:
        if await s.probe():
            return ServiceStatus(s.name, True, s.address, pid, "already running" + file_warning(pid))
        report("running, waiting until ready")
        await wait_ready(s, pid, report)
        return ServiceStatus(s.name, True, s.address, pid, f"ready after {time.monotonic() - started:.1f}s")
    busy = [port for port in s.ports if port_in_use(port)]
    if busy:
        raise StackError(
            f"127.0.0.1:{busy[0]} is in use by a process this stack did not start; stop it or choose another port"
        )
    await s.prepare(report)
    report("starting")
    pid = spawn(s.argv(), s.pid_file, s.log_file)
    if s.open_files is not None:
        raise_file_limit(pid, s.open_files)
    report(f"pid {pid}, waiting until ready")
    try:
        await wait_ready(s, pid, report)
    except BaseException:
        await stop(s.pid_file, 5.0)
        raise
    return ServiceStatus(s.name, True, s.address, pid, f"started, ready in {time.monotonic() - started:.1f}s")


async def down_async(cfg: StackConfig) -> list[ServiceStatus]:
    svcs = services(cfg)
    pids = [running_pid(s.pid_file) for s in svcs]
    stopped = await asyncio.gather(*(stop(s.pid_file, s.stop_timeout) for s in svcs))
    return [
        ServiceStatus(s.name, False, s.address, pid, "stopped" if was else "was not running")
        for s, pid, was in zip(svcs, pids, stopped, strict=True)
    ]


async def status_async(cfg: StackConfig) -> list[ServiceStatus]:
    async def one(s: Service) -> ServiceStatus:
        pid = running_pid(s.pid_file)
        if pid is None:
            foreign = port_in_use(s.ports[0])
            detail = "stopped (port used by another process)" if foreign else "stopped"
            return ServiceStatus(s.name, False, s.address, None, detail)
        detail = "ready" if await s.probe() else "not ready (starting or unhealthy)"
        detail += file_warning(pid)
        return ServiceStatus(s.name, True, s.address, pid, detail)

    return list(await asyncio.gather(*(one(s) for s in services(cfg))))


def status_table(statuses: list[ServiceStatus]) -> Table:
    table = Table("service", "state", "address", "pid", "detail")
    for st in statuses:
        state = "[green]running" if st.running else "[red]stopped"
        table.add_row(st.name, state, st.address, str(st.pid or "-"), st.detail)
    return table


def _install_missing(services: Iterable[Service], report: Report) -> None:
    """``apt-get install`` the Debian packages of binaries that are not on PATH (needs root)."""
    missing = {pkg: binary for s in services for binary, pkg in s.apt_packages.items() if not shutil.which(binary)}
    if not missing:
        return
    names = " ".join(sorted(missing))
    if not shutil.which("apt-get"):
        raise StackError(f"{', '.join(sorted(missing.values()))} not found: install the packages {names}")
    if os.geteuid() != 0:
        raise StackError(f"{', '.join(sorted(missing.values()))} not found: run as root or `apt-get install {names}`")
    # RUNLEVEL=1 keeps the packages' init scripts from starting system-wide daemons on the default ports.
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive", "RUNLEVEL": "1"}
    for step in (
        ["apt-get", "update"],
        ["apt-get", "install", "-y", "--no-install-recommends", *sorted(missing)],
    ):
        report(f"{' '.join(step[:2])} {names}")
        done = subprocess.run(step, env=env, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            tail = (done.stderr.strip() or done.stdout.strip()).splitlines()[-1:] or ["no output"]
            raise StackError(f"`{' '.join(step)}` failed ({done.returncode}): {tail[0]}")
    still = [binary for binary in missing.values() if not shutil.which(binary)]
    if still:
        raise StackError(f"{', '.join(still)} still not on PATH after apt-get install {names}")
