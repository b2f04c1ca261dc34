"""A real Alertmanager for alert tests, and a webhook receiver behind it."""

from __future__ import annotations

import json
import shutil
import subprocess
import threading
import time
import urllib.parse
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from fixtures import free_port, get_json, poll


class Receiver:
    """A webhook receiver that records every Alertmanager notification and when it arrived."""

    def __init__(self) -> None:
        self.notifications: list[dict[str, Any]] = []
        self.times: list[float] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.notifications.append(json.loads(body))
                receiver.times.append(time.monotonic())
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def received(self, name: str, status: str) -> list[tuple[float, dict[str, Any]]]:
        """``(arrival time, alert)`` of every notified alert called ``name`` with ``status``."""
        return [(t, a) for t, n in zip(list(self.times), list(self.notifications), strict=False)
                for a in n["alerts"] if a["labels"]["alertname"] == name and a["status"] == status]

    def alerts(self, name: str, status: str) -> list[dict[str, Any]]:
        return [a for _, a in self.received(name, status)]


@contextmanager
def alertmanager(tmp: Path, receiver_port: int, port: int | None = None) -> Iterator[str]:
    """A real Alertmanager (on ``port``, default a free one) with short grouping times, routing
    everything to the receiver; yields its URL."""
    port = port or free_port()
    config = tmp / "alertmanager.yml"
    config.write_text(f"""
route:
  receiver: pager
  group_by: [alertname, kpi, segment]
  group_wait: 1s
  group_interval: 2s
  repeat_interval: 1h
receivers:
  - name: pager
    webhook_configs:
      - url: http://127.0.0.1:{receiver_port}/pager
        send_resolved: true
""")
    binary = shutil.which("prometheus-alertmanager")
    assert binary, "the stack installs prometheus-alertmanager"
    proc = subprocess.Popen([binary, f"--config.file={config}", f"--storage.path={tmp / 'am-data'}",
                             f"--web.listen-address=127.0.0.1:{port}", "--cluster.listen-address="],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        poll(lambda: get_json(f"{url}/api/v2/status"), 30, "alertmanager to start")
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def am_alerts(am_url: str, name: str) -> list[dict[str, Any]]:
    """The alerts called ``name`` that the Alertmanager at ``am_url`` holds (``GET /api/v2/alerts``)."""
    query = urllib.parse.quote(f'alertname="{name}"')
    alerts: list[dict[str, Any]] = get_json(f"{am_url}/api/v2/alerts?filter={query}")
    return alerts
