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
from aiokafka import AIOKafkaProducer
from rich.console import Console

from .broker import broker_for
from .config import MS_PER_DAY, Settings
from .demoview import DemoView
from .kafkaio import consume
from .simulator import EventFeed, SimClock, SimulationConfig
from .topics import ensure_topics
from .workerproc import WorkerProcess

console = Console()
LIVE_DAYS = 30
TICK_S = 0.5
#: One message in this many is malformed on purpose, so the dead-letter path shows in the demo.
MALFORMED_EVERY = 500
MALFORMED = (b'{"event_id": "broken', b'{"type": "track", "event": "x", "user_id": "demo"}',
             b'{"event_id": "e", "type": "track", "event": "x", "user_id": "demo", "timestamp": "1801-01-01T00:00:00Z"}')


def _timeline(history_days: int, users: int, seed: int) -> tuple[SimulationConfig, int]:
    """Simulation config and the end of its history: history then LIVE_DAYS, all before today."""
    today = int(time.time() * 1000) // MS_PER_DAY * MS_PER_DAY
    start = today - (history_days + LIVE_DAYS) * MS_PER_DAY
    return SimulationConfig(users=users, seed=seed, start_ms=start, days=history_days + LIVE_DAYS), \
        start + history_days * MS_PER_DAY


class _Feeder:
    """Publishes simulated events (and the odd malformed message) keyed by user."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.producer = AIOKafkaProducer(linger_ms=5, max_batch_size=256 * 1024, **settings.kafka_client_options())
        self.sent = 0

    async def send(self, docs: Any) -> int:
        pending = []
        for doc in docs:
            self.sent += 1
            if self.sent % MALFORMED_EVERY == 0:
                raw = MALFORMED[(self.sent // MALFORMED_EVERY) % len(MALFORMED)]
                pending.append(await self.producer.send(self.settings.events_topic, raw, key=b"demo"))
            pending.append(await self.producer.send(self.settings.events_topic, orjson.dumps(doc),
                                                    key=doc["user_id"].encode()))
            if len(pending) >= 2000:
                await asyncio.gather(*pending)
                pending.clear()
        await asyncio.gather(*pending)
        return self.sent


async def _signals(settings: Settings, view: DemoView) -> None:
    """Keep the newest signals for the view."""
    async for record in consume(settings, settings.signals_topic, from_end=False):
        with contextlib.suppress(orjson.JSONDecodeError):
            view.add_signal(orjson.loads(record.value))


async def _run(settings: Settings, worker: WorkerProcess, config: SimulationConfig, history_end: int,
               speed: float, duration: float | None, view: DemoView) -> None:
    feeder = _Feeder(settings)
    await feeder.producer.start()
    signals = asyncio.create_task(_signals(settings, view))
    deadline = None if duration is None else time.monotonic() + duration
    try:
        feed = EventFeed(config)
        view.phase = "replaying history"
        chunk_end = config.start_ms
        while chunk_end < history_end and (deadline is None or time.monotonic() < deadline):
            chunk_end = min(history_end, chunk_end + MS_PER_DAY // 4)
            await feeder.send(feed.until(chunk_end))
            view.update(worker, chunk_end, feeder.sent)
            await asyncio.sleep(0)
        clock = SimClock(history_end, speed)
        view.phase = f"live at {speed:g}x"
        while deadline is None or time.monotonic() < deadline:
            now = clock.now_ms()
            await feeder.send(feed.until(now))
            view.update(worker, now, feeder.sent)
            if feed.exhausted:
                view.phase = "simulation finished (Ctrl-C to stop)"
            if not worker.alive():
                raise RuntimeError(f"the worker exited (log: {worker.log_path})")
            await asyncio.sleep(TICK_S)
    finally:
        signals.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await signals
        await feeder.producer.stop()


def run_demo(settings: Settings, config_file: str | None, duration: float | None, users: int,
             history_days: int, speed: float, seed: int, live: bool) -> None:
    """Run everything, show it, and clean up every process started, also on Ctrl-C."""
    sim, history_end = _timeline(history_days, users, seed)
    with broker_for(settings) as (running, broker), tempfile.TemporaryDirectory(prefix="demo-") as tmp:
        asyncio.run(ensure_topics(running))
        log = Path(tmp) / "worker.log"
        worker = WorkerProcess(running, log_path=log, loglevel="info")
        console.print(f"broker [bold]{running.bootstrap}[/]; starting a worker ...")
        with worker:
            worker.wait_ready(timeout=90)
            pids = f"broker pid {broker.pid if broker else '-'}, worker pid {worker.proc.pid if worker.proc else '-'}"
            console.print(f"worker metrics: [bold]{worker.url}/metrics[/]  figures: {worker.url}/figures  "
                          f"({pids}; log {log})", soft_wrap=True)
            view = DemoView(running, users, live=live)
            try:
                with view:
                    asyncio.run(_run(running, worker, sim, history_end, speed, duration, view))
            except KeyboardInterrupt:
                console.print("stopping ...")
            view.print_summary(worker)
    console.print("demo stopped; broker and worker are gone.")
