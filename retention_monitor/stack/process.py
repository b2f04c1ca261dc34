"""Detached service processes: pid files, logs, readiness polling and stopping."""

from __future__ import annotations

import asyncio
import os
import resource
import signal
import socket
import subprocess
import time
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from retention_monitor.exceptions import StackError

from .config import StackConfig

Report = Callable[[str], None]
# Popen objects of the services this interpreter started, so that they can be reaped (no zombies).
_CHILDREN: dict[int, subprocess.Popen[bytes]] = {}


@dataclass(frozen=True)
class ServiceStatus:
    name: str
    running: bool
    address: str
    pid: int | None
    detail: str


class Service(ABC):
    """One local service: how to prepare, start and probe it. Files live in ``<home>/<name>/``."""

    name: str = ""
    apt_packages: ClassVar[dict[str, str]] = {}  # binary -> Debian package that provides it
    ready_timeout: float = 30.0  # how long start-up may go without visible progress
    ready_cap: float = 0.0  # how long start-up may take while it shows progress (at least ready_timeout)
    stop_timeout: float = 10.0
    open_files: int | None = None  # open-file limit to lift the process to, when the default is too low

    def __init__(self, cfg: StackConfig) -> None:
        self.cfg = cfg

    @property
    def dir(self) -> Path:
        return self.cfg.home / self.name

    @property
    def pid_file(self) -> Path:
        return self.dir / f"{self.name}.pid"

    @property
    def log_file(self) -> Path:
        return self.dir / f"{self.name}.log"

    @property
    @abstractmethod
    def ports(self) -> tuple[int, ...]:
        """Loopback ports the service listens on; the first one is its address."""

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.ports[0]}"

    @abstractmethod
    async def prepare(self, report: Report) -> None:
        """Write config files and fetch what is missing before the process starts."""

    @abstractmethod
    def argv(self) -> list[str]: ...

    @abstractmethod
    async def probe(self) -> bool:
        """One quick readiness check; never raises."""

    def progress(self) -> str | None:
        """What start-up has done so far, when the service tells (a recovering broker does); never raises."""
        return None


def start_time(pid: int) -> str | None:
    """Start time of a live (not zombie) process from /proc, or None."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat[stat.rindex(")") + 2 :].split()
    return None if fields[0] in ("Z", "X") else fields[19]


def running_pid(pid_file: Path) -> int | None:
    """The pid recorded in ``pid_file`` if that very process is still alive."""
    try:
        pid_text, _, started = pid_file.read_text().strip().partition(" ")
        pid = int(pid_text)
    except (OSError, ValueError):
        return None
    child = _CHILDREN.get(pid)
    if child is not None and child.poll() is not None:
        del _CHILDREN[pid]
        return None
    now = start_time(pid)
    return pid if now is not None and now == started else None


def started_here() -> list[subprocess.Popen[bytes]]:
    """The service processes this interpreter started that it has not yet seen exit."""
    return list(_CHILDREN.values())


def spawn(argv: list[str], pid_file: Path, log_file: Path, env: dict[str, str] | None = None) -> int:
    """Start ``argv`` in its own session, output appended to ``log_file``; record the pid."""
    log_file.parent.mkdir(parents=True, exist_ok=True)
    with log_file.open("ab") as log:
        log.write(f"--- {time.strftime('%Y-%m-%d %H:%M:%S')} starting: {' '.join(argv)}\n".encode())
        log.flush()
        try:
            child = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                cwd=pid_file.parent,
                env=env,
            )
        except OSError as exc:
            raise StackError(f"cannot start {argv[0]}: {exc}") from exc
    _CHILDREN[child.pid] = child
    pid_file.write_text(f"{child.pid} {start_time(child.pid) or ''}\n")
    return child.pid


def raise_file_limit(pid: int, wanted: int) -> int:
    """Lift ``pid``'s open-file limit to ``wanted`` (root may raise the hard limit), or as far as the hard
    limit allows; returns the soft limit now in force."""
    soft, hard = resource.prlimit(pid, resource.RLIMIT_NOFILE)
    for limits in file_limit_steps(soft, hard, wanted):
        try:
            resource.prlimit(pid, resource.RLIMIT_NOFILE, limits)
        except (OSError, ValueError):  # not root: the hard limit stays where it is
            continue
        return limits[0]
    return soft


def file_limit_steps(soft: int, hard: int, wanted: int) -> list[tuple[int, int]]:
    """The (soft, hard) limits to try in turn, best first; none when ``soft`` is high enough already.
    Never lowers a limit; unlimited (``RLIM_INFINITY``) stays unlimited."""
    unlimited = resource.RLIM_INFINITY
    if soft == unlimited or soft >= wanted:
        return []
    if hard == unlimited:
        return [(wanted, hard)]
    return [(wanted, max(wanted, hard)), (min(wanted, hard), hard)]


def open_files(pid: int) -> tuple[int, int] | None:
    """How many files ``pid`` holds open and its soft limit, or None when /proc does not tell."""
    try:
        count = sum(1 for _ in Path(f"/proc/{pid}/fd").iterdir())
        soft, _hard = resource.prlimit(pid, resource.RLIMIT_NOFILE)
    except OSError:
        return None
    return count, soft


def file_warning(pid: int, share: float = 0.8) -> str:
    """A warning when ``pid`` uses more than ``share`` of its open-file limit, else ''."""
    usage = open_files(pid)
    if usage is None or usage[1] <= 0 or usage[0] < share * usage[1]:
        return ""
    return f"; {usage[0]:,} of {usage[1]:,} open files: delete unused topics or raise the limit"


async def stop(pid_file: Path, grace: float) -> bool:
    """SIGTERM the recorded process group, SIGKILL it after ``grace`` s; True if one was running."""
    pid = running_pid(pid_file)
    if pid is None:
        _forget(pid_file)
        return False

    async def gone() -> bool:
        return running_pid(pid_file) != pid

    for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 10.0)):
        try:
            if os.getpgid(pid) == pid:
                os.killpg(pid, sig)
            else:
                os.kill(pid, sig)
        except ProcessLookupError:
            break
        if await poll_until(gone, wait):
            break
    _forget(pid_file)
    return True


def _forget(pid_file: Path) -> None:
    pid_file.unlink(missing_ok=True)


async def poll_until(check: Callable[[], Awaitable[bool]], seconds: float) -> bool:
    """Call ``check`` until it returns True or ``seconds`` pass; back off from 50 ms to 0.5 s."""
    deadline = time.monotonic() + seconds
    interval = 0.05
    while True:
        if await check():
            return True
        left = deadline - time.monotonic()
        if left <= 0:
            return False
        await asyncio.sleep(min(interval, left))
        interval = min(interval * 1.5, 0.5)


async def wait_ready(service: Service, pid: int, report: Report | None = None) -> None:
    """Poll ``service.probe`` until ready; fail when the process exits or start-up stalls.

    A broker recovering a large log directory after a crash is slow but busy: while its progress
    changes it may take up to ``ready_cap``; it fails after ``ready_timeout`` without progress.
    """
    started = time.monotonic()
    seen, moved = service.progress(), started
    state = ""  # "ready", "died" or "stalled" once decided

    async def check() -> bool:
        nonlocal seen, moved, state
        if running_pid(service.pid_file) != pid:
            state = "died"
        elif await service.probe():
            state = "ready"
        elif (now := service.progress()) != seen:
            seen, moved = now, time.monotonic()
            if report is not None and now is not None:
                report(now)
        elif time.monotonic() - moved > service.ready_timeout:
            state = "stalled"
        return state != ""

    await poll_until(check, max(service.ready_cap, service.ready_timeout))
    if state != "ready":
        why = "exited during start-up" if state == "died" else f"not ready after {time.monotonic() - started:.0f}s"
        where = f" at {seen}" if seen is not None and state != "died" else ""
        raise StackError(f"{service.name} {why}{where}: {last_line(service.log_file)} (see {service.log_file})")


def last_line(path: Path) -> str:
    try:
        lines = [ln.strip() for ln in path.read_text(errors="replace").splitlines()[-50:] if ln.strip()]
    except OSError:
        return "no log"
    return lines[-1][:300] if lines else "empty log"


def port_in_use(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0
