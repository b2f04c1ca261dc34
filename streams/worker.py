"""Run one monitor worker process (a Faust worker)."""

from __future__ import annotations

import asyncio

import faust

from streams.app import create_app
from streams.config import Settings
from streams.topics import ensure_topics


def run_worker(settings: Settings) -> None:
    """Block running a worker until SIGINT/SIGTERM; the worker joins the consumer group ``app_id``."""
    settings.worker_dir.mkdir(parents=True, exist_ok=True)
    asyncio.run(ensure_topics(settings))
    runtime = create_app(settings)
    worker = faust.Worker(runtime.app, loglevel=settings.log_level.upper(), redirect_stdouts=False)
    worker.execute_from_commandline()
