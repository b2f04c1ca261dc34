"""Alertmanager with the repo's routing (deploy/alertmanager.yml), clustering off."""

from __future__ import annotations

import shutil
from typing import ClassVar

from retention_monitor.exceptions import StackError

from .config import deploy_dir
from .process import Report, Service
from .prometheus import http_ready


class Alertmanager(Service):
    name = "alertmanager"
    apt_packages: ClassVar[dict[str, str]] = {"prometheus-alertmanager": "prometheus-alertmanager"}

    @property
    def ports(self) -> tuple[int, ...]:
        return (self.cfg.alertmanager_port,)

    async def prepare(self, report: Report) -> None:
        deploy_dir()  # fails clearly outside a source checkout
        self.dir.joinpath("data").mkdir(parents=True, exist_ok=True)

    def argv(self) -> list[str]:
        binary = shutil.which("prometheus-alertmanager")
        if binary is None:
            raise StackError("prometheus-alertmanager not found: install the Debian package prometheus-alertmanager")
        return [
            binary,
            f"--config.file={deploy_dir() / 'alertmanager.yml'}",
            f"--storage.path={self.dir / 'data'}",
            f"--web.listen-address={self.address}",
            f"--web.external-url=http://{self.address}/",
            "--cluster.listen-address=",
        ]

    async def probe(self) -> bool:
        return await http_ready(f"http://{self.address}/-/ready")
