"""Running the Faust worker for the ``worker`` command (and the demo's and tests' worker processes)."""

from __future__ import annotations

import asyncio
import gc

import faust

from streams.config import GC_THRESHOLDS, Settings
from streams.runtime.app import build_app
from streams.runtime.connect import ensure_broker
from streams.runtime.topics import ensure_topics


def run_worker(settings: Settings, loglevel: str = "warning") -> None:
    """Check the broker answers, create the topics if needed, then run the worker until SIGINT / SIGTERM."""
    ensure_broker(settings)
    asyncio.run(ensure_topics(settings))
    app, _runtime = build_app(settings)
    faust_worker(app, loglevel).execute_from_commandline()


def faust_worker(app: faust.App, loglevel: str) -> faust.Worker:
    """A Faust worker for ``app`` without Faust's terminal spinner.

    To make its start-up spinner turn on every log record, Faust's worker sets the root logger to
    DEBUG (the handler keeps ``loglevel``). Every debug call in Faust and aiokafka, several per
    record produced, then builds a log record only to drop it: a tenth of a busy worker's time.
    Without the spinner the root logger keeps ``loglevel``.
    """
    worker = faust.Worker(app, loglevel=loglevel, quiet=True, redirect_stdouts=False)
    worker.spinner = None
    # Garbage collection: Python's default thresholds run a full collection over every live object
    # (Faust's, aiokafka's, the cached user records) every few seconds on a busy worker: 6% of a
    # benchmark run. Objects alive at start-up are frozen out of it, and collections run less often.
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)
    return worker
