"""Run one monitor worker process (a Faust worker)."""

from __future__ import annotations

import asyncio
import gc

import faust

from core.settings import Settings
from streams.kafka.topics import ensure_topics
from streams.worker.app import create_app


def run_worker(settings: Settings) -> None:
    """Block running a worker until SIGINT/SIGTERM; the worker joins the consumer group ``app_id``."""
    settings.worker_dir.mkdir(parents=True, exist_ok=True)
    asyncio.run(ensure_topics(settings.kafka, settings.topics))
    runtime = create_app(settings)
    # What exists now (modules, the app and its services) lives as long as the process: keep it out of
    # the collector's full passes, which under load come every few seconds and hold the event loop for
    # as long as they scan (retention_gc_pause_seconds).
    gc.collect()
    gc.freeze()
    worker = faust.Worker(runtime.app, loglevel=settings.log_level.upper(), redirect_stdouts=False)
    worker.execute_from_commandline()
