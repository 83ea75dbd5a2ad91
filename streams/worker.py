"""Running the Faust worker for the ``worker`` command (and the demo's and tests' worker processes)."""

from __future__ import annotations

import asyncio

import faust

from .app import build_app
from .config import Settings
from .topics import ensure_topics


def run_worker(settings: Settings, loglevel: str = "warning") -> None:
    """Create the topics if needed, then run the worker until SIGINT / SIGTERM."""
    asyncio.run(ensure_topics(settings))
    app, _runtime = build_app(settings)
    worker = faust.Worker(app, loglevel=loglevel, quiet=True, redirect_stdouts=False)
    worker.execute_from_commandline()
