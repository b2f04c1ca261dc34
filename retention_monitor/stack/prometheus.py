"""Prometheus with the repo's scrape config and alert rules, rewritten for the stack's ports and alert path."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path
from typing import ClassVar

import aiohttp

from retention_monitor.exceptions import StackError

from .config import deploy_dir
from .process import Report, Service

# The hand-written meta-alerts (the monitor itself is down, lags…) always; the generated KPI alerts only
# when alert_path asks Prometheus to page for them, so one condition never pages from both by surprise.
META_RULES = "meta.yml"
RECORDING_RULES = "retention-recording.yml"  # the ratios the dashboards read
KPI_RULES = "retention-alerts.yml"
_MARKER = re.compile(r"^(?P<head>.*?)(?P<value>\[[^\]]*\]|\"[^\"]*\")(?P<tail>\s*# stack: (?P<key>[a-z_]+)\s*)$")


async def http_ready(url: str) -> bool:
    """True when ``url`` answers 200 within 2 s."""
    try:
        timeout = aiohttp.ClientTimeout(total=2)
        async with aiohttp.ClientSession(timeout=timeout) as session, session.get(url) as response:
            return response.status == 200
    except (aiohttp.ClientError, TimeoutError, OSError):
        return False


def render(template: str, values: dict[str, object]) -> str:
    """Replace the flow list or quoted string on each line marked ``# stack: <key>``."""
    seen: set[str] = set()
    lines = []
    for line in template.splitlines():
        match = _MARKER.match(line)
        if match and match["key"] in values:
            seen.add(match["key"])
            lines.append(match["head"] + json.dumps(values[match["key"]]) + match["tail"])
        else:
            lines.append(line)
    missing = sorted(set(values) - seen)
    if missing:
        raise StackError(f"deploy/prometheus/prometheus.yml lacks the `# stack:` lines {', '.join(missing)}")
    return "\n".join(lines) + "\n"


def rule_files(alert_path: str) -> list[str]:
    """The files of deploy/prometheus/rules/ Prometheus loads for ``alert_path``."""
    always = [META_RULES, RECORDING_RULES]
    return always if alert_path == "stream" else [*always, KPI_RULES]


class Prometheus(Service):
    name = "prometheus"
    apt_packages: ClassVar[dict[str, str]] = {"prometheus": "prometheus"}

    @property
    def ports(self) -> tuple[int, ...]:
        return (self.cfg.prometheus_port,)

    @property
    def config_file(self) -> Path:
        return self.dir / "prometheus.yml"

    async def prepare(self, report: Report) -> None:
        deploy = deploy_dir() / "prometheus"
        rules = deploy / "rules"
        if not rules.is_dir():
            raise StackError(f"{rules} not found; run the stack from a retention-monitor source checkout")
        values: dict[str, object] = {
            "rule_files": [str(rules / name) for name in rule_files(self.cfg.alert_path)],
            "alertmanager": [f"127.0.0.1:{self.cfg.alertmanager_port}"],
            "workers": list(self.cfg.worker_targets),
            "prometheus": [self.address],
        }
        self.dir.joinpath("data").mkdir(parents=True, exist_ok=True)
        self.config_file.write_text(render((deploy / "prometheus.yml").read_text(), values))

    def argv(self) -> list[str]:
        binary = shutil.which("prometheus")
        if binary is None:
            raise StackError("prometheus not found: install the Debian package prometheus")
        return [
            binary,
            f"--config.file={self.config_file}",
            f"--storage.tsdb.path={self.dir / 'data'}",
            f"--web.listen-address={self.address}",
            f"--web.external-url=http://{self.address}/",
            "--web.enable-lifecycle",
        ]

    async def probe(self) -> bool:
        return await http_ready(f"http://{self.address}/-/ready")
