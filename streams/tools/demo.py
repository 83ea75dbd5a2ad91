"""The ``demo`` command: broker, topics, a worker and a simulated product, watched live.

The simulated timeline ends in the past: history is replayed as fast as the broker takes it,
then the product goes on "live" at ``speed`` simulated seconds per real second, so days roll
over, sessions close and churners go quiet within minutes. (Ending in the past keeps every
event within the contract's "not in the future" rule however fast the clock runs.)
"""

from __future__ import annotations

import asyncio
import contextlib
import tempfile
import time
from pathlib import Path
from typing import Any

import orjson
from rich.console import Console

from streams.config import MS_PER_DAY, Settings
from streams.local.broker import broker_for
from streams.local.signals import stop_on_signals
from streams.local.worker_process import WorkerProcess
from streams.runtime.topics import ensure_topics
from streams.sim.faults import with_malformed
from streams.sim.simulator import EventFeed, SimClock, SimulationConfig
from streams.tools.demo_view import DemoView
from streams.tools.kafkaio import Publisher, consume, event_records

console = Console()
LIVE_DAYS = 30
TICK_S = 0.5
#: Share of extra malformed messages, so the dead-letter path shows in the demo.
BAD_RATE = 0.002


def _timeline(history_days: int, users: int, seed: int) -> tuple[SimulationConfig, int]:
    """Simulation config and the end of its history: history then LIVE_DAYS, all before today."""
    today = int(time.time() * 1000) // MS_PER_DAY * MS_PER_DAY
    start = today - (history_days + LIVE_DAYS) * MS_PER_DAY
    return SimulationConfig(users=users, seed=seed, start_ms=start, days=history_days + LIVE_DAYS), \
        start + history_days * MS_PER_DAY


async def _signals(settings: Settings, view: DemoView) -> None:
    """Keep the newest signals for the view."""
    async for record in consume(settings, settings.signals_topic, from_end=False):
        with contextlib.suppress(orjson.JSONDecodeError):
            view.add_signal(orjson.loads(record.value))


async def _run(settings: Settings, worker: WorkerProcess, config: SimulationConfig, history_end: int,
               speed: float, duration: float | None, view: DemoView) -> None:
    signals = asyncio.create_task(_signals(settings, view))
    deadline = None if duration is None else time.monotonic() + duration
    try:
        async with Publisher(settings) as publisher:
            async def publish(docs: Any, sim_now: int) -> None:
                await publisher.send(with_malformed(event_records(docs), BAD_RATE, config.seed,
                                                    settings.max_event_bytes))
                view.update(worker, sim_now, publisher.sent)
                if not worker.alive():
                    raise RuntimeError(f"the worker exited (log: {worker.log_path})")

            feed = EventFeed(config)
            view.phase = "replaying history"
            chunk_end = config.start_ms
            while chunk_end < history_end and (deadline is None or time.monotonic() < deadline):
                chunk_end = min(history_end, chunk_end + MS_PER_DAY // 4)
                await publish(feed.until(chunk_end), chunk_end)
            clock = SimClock(history_end, speed)
            view.phase, view.speed = f"live at {speed:g}x", speed
            while deadline is None or time.monotonic() < deadline:
                now = clock.now_ms()
                await publish(feed.until(now), now)
                if feed.exhausted:
                    view.phase = "simulation finished (Ctrl-C to stop)"
                await asyncio.sleep(TICK_S)
    finally:
        signals.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await signals


def run_demo(settings: Settings, config_file: str | None, duration: float | None, users: int,
             history_days: int, speed: float, seed: int, live: bool) -> None:
    """Run everything, show it, and clean up every process started, also on Ctrl-C."""
    sim, history_end = _timeline(history_days, users, seed)
    with stop_on_signals(), broker_for(settings) as (running, broker), \
            tempfile.TemporaryDirectory(prefix="demo-") as tmp:
        asyncio.run(ensure_topics(running))
        log = Path(tmp) / "worker.log"
        worker = WorkerProcess(running, log_path=log, loglevel="info")
        console.print(f"broker [bold]{running.bootstrap}[/]; starting a worker ...")
        with worker:
            worker.wait_ready(timeout=90)
            pids = f"broker pid {broker.pid if broker else '-'}, worker pid {worker.proc.pid if worker.proc else '-'}"
            console.print(f"worker metrics: [bold]{worker.url}/metrics[/]  figures: {worker.url}/figures  "
                          f"one user: {worker.url}/users/<user_id>  "
                          f"({pids}; log {log})", soft_wrap=True)
            view = DemoView(running, users, live=live)
            try:
                with view:
                    asyncio.run(_run(running, worker, sim, history_end, speed, duration, view))
            except KeyboardInterrupt:
                console.print("stopping ...")
            view.print_summary(worker)
    console.print("demo stopped; broker and worker are gone.")
