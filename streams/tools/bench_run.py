"""One measured benchmark run, in its own process: a bare Faust agent, or the full pipeline.

Both modes run the same Faust configuration over the same pre-produced topic, each in a fresh
consumer group, so their ratio isolates what the pipeline adds to Faust's own per-event cost.
The clock starts at the first event handled and stops at the N-th: worker start-up and
consumer-group joins are not counted in either mode.
"""

from __future__ import annotations

import asyncio
import os
import resource
import signal
import time
from collections import Counter
from typing import Any

import faust
import orjson

from streams.config import Settings
from streams.runtime.app import build_app, faust_options
from streams.runtime.loop import LoopWatch
from streams.runtime.worker import faust_worker

MODES = ("bare", "pipeline")


class _Stopwatch:
    """Counts handled events; writes the result and stops the worker at the N-th."""

    def __init__(self, expected: int, result_path: str, mode: str) -> None:
        self.expected = expected
        self.result_path = result_path
        self.mode = mode
        self.count = 0
        self.first = 0.0
        self.handling = 0.0
        """Seconds spent in the pipeline's own code (``Runtime.handle``, ``work``, flushes)."""
        self.sent: list[Any] = []
        """Counts of records produced per topic (the pipeline's outputs, changelogs included)."""
        self.loop = LoopWatch()
        """The event loop's blocks while the events were handled (the pipeline's own probe)."""

    def tick(self, n: int = 1) -> None:
        if self.count == 0:
            self.first = time.perf_counter()
        self.count += n
        if self.count >= self.expected:
            self.finish()

    def finish(self) -> None:
        elapsed = time.perf_counter() - self.first
        peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        with open(self.result_path, "wb") as fh:
            fh.write(orjson.dumps({"mode": self.mode, "events": self.count, "seconds": elapsed,
                                   "events_per_s": self.count / elapsed if elapsed else 0.0,
                                   "peak_rss_mb": peak_kb / 1024, "sent": dict(sum(map(Counter, self.sent), Counter())),
                                   "handle_us": self.handling / self.count * 1e6 if self.count else 0.0,
                                   "loop_block_ms": self.loop.longest_s * 1000,
                                   "loop_block_cpu_ms": self.loop.longest_cpu_s * 1000}))
        self.expected = 1 << 62
        os.kill(os.getpid(), signal.SIGTERM)


def _bare_app(settings: Settings, watch: _Stopwatch) -> faust.App:
    """A Faust agent that only decodes and counts: the baseline."""
    app = faust.App(settings.app_id, **faust_options(settings))
    topic = app.topic(settings.events_topic, key_type=bytes, value_type=bytes, key_serializer="raw",
                      value_serializer="raw", partitions=settings.partitions)
    counts: dict[str, int] = {}

    @app.agent(topic, name="bare")
    async def bare(stream: faust.StreamT) -> None:
        loads = orjson.loads
        async for event in stream.events():
            doc = loads(event.message.value)
            kind = doc.get("type", "") if isinstance(doc, dict) else ""
            counts[kind] = counts.get(kind, 0) + 1
            watch.tick()

    @app.task
    async def probe_loop() -> None:
        await watch.loop.run()

    return app


def _pipeline_app(settings: Settings, watch: _Stopwatch) -> faust.App:
    """The worker's app with every capability switched on; timing wraps the runtime's own steps
    (events, sliced timer work, flushes): the pipeline's own microseconds per event."""
    app, runtime = build_app(settings)
    clock = time.perf_counter
    handle, work, flush, flush_some = runtime.handle, runtime.work, runtime.flush, runtime.flush_some

    def counted(*args: Any) -> str:
        started = clock()
        outcome = handle(*args)
        watch.handling += clock() - started
        watch.tick()
        return outcome

    def timed(step: Any) -> Any:
        def run(*args: Any) -> Any:
            started = clock()
            out = step(*args)
            watch.handling += clock() - started
            return out
        return run

    runtime.handle = counted  # type: ignore[method-assign,assignment]
    runtime.work = timed(work)  # type: ignore[method-assign]
    runtime.flush = timed(flush)  # type: ignore[method-assign]
    runtime.flush_some = timed(flush_some)  # type: ignore[method-assign]
    watch.sent = [app.monitor.messages_sent_by_topic, app.engagement_outputs.sent]
    watch.loop = app.engagement_loop  # type: ignore[attr-defined]
    return app


def run_measured(settings: Settings, mode: str, expected: int, result_path: str) -> None:
    """Run one mode until ``expected`` events were handled; the result lands in ``result_path``."""
    from streams.runtime.topics import ensure_topics

    asyncio.run(ensure_topics(settings))
    watch = _Stopwatch(expected, result_path, mode)
    app = _bare_app(settings, watch) if mode == "bare" else _pipeline_app(settings, watch)
    faust_worker(app, "error").execute_from_commandline()
