"""The ``up`` command: the embedded broker and one worker, for your own events.

The demo brings its own simulated product; ``up`` brings nothing but the pipeline, so what a
person produces is all there is. It prints where everything is and the commands to use it, then
waits; Ctrl-C (or SIGTERM) stops the worker and the broker, in that order, and removes their
temporary files.
"""

from __future__ import annotations

import asyncio
import tempfile
import time
from pathlib import Path

from rich.console import Console

from streams.config import Settings
from streams.local.broker import EmbeddedBroker, free_port, port_is_free
from streams.local.signals import stop_on_signals
from streams.local.worker_process import WorkerProcess
from streams.runtime.topics import ensure_topics

#: Where a Kafka client looks first, and the worker's usual web port: taken when free.
KAFKA_PORT = 9092
WEB_PORT = 6066
console = Console(highlight=False)


def _port(asked: int | None, usual: int) -> int:
    if asked is not None:
        return asked
    return usual if port_is_free(usual) else free_port()


def instructions(settings: Settings, worker_url: str) -> str:
    """What the person sees once everything answers: addresses, then the commands to try."""
    env = f"export ENGAGEMENT_BOOTSTRAP={settings.bootstrap} ENGAGEMENT_WORKER_URL={worker_url}"
    return "\n".join([
        "[bold green]engagement-streams is up[/] (Ctrl-C stops the worker and the broker)",
        f"  Kafka bootstrap   [bold]{settings.bootstrap}[/]  (embedded broker, in memory: stopping it loses every topic)",
        f"  metrics           {worker_url}/metrics",
        f"  one user          {worker_url}/users/<user_id>",
        f"  topics            {settings.events_topic} (in) -> {settings.signals_topic}, {settings.sessions_topic}, "
        f"{settings.metrics_topic}, {settings.dead_letter_topic}",
        "",
        "In another terminal:",
        f"  {env}",
        "  streams produce events.jsonl        # JSON lines; or 'streams produce -' and type them, Ctrl-D sends",
        "  streams tail --what signals         # also: sessions, metrics, dead-letters, events",
        "  streams user <user_id>              # lifecycle, active days, session, score, churn risk, account",
        "  streams report                      # an HTML report of the day snapshots so far",
    ])


def run_up(settings: Settings, port: int | None = None, web_port: int | None = None,
           loglevel: str = "warning") -> None:
    """Start the broker and a worker, print how to use them, and wait for Ctrl-C."""
    try:
        with stop_on_signals(), tempfile.TemporaryDirectory(prefix="streams-up-") as tmp, \
                EmbeddedBroker(port=_port(port, KAFKA_PORT), log_path=Path(tmp) / "broker.log") as broker:
            running = settings.with_overrides(bootstrap=broker.bootstrap, local=True, data_dir=str(Path(tmp) / "data"),
                                              web_port=_port(web_port, WEB_PORT))
            asyncio.run(ensure_topics(running))
            log = Path(tmp) / "worker.log"
            console.print(f"broker on {broker.bootstrap}; starting a worker (log: {log}) ...", soft_wrap=True)
            with WorkerProcess(running, log_path=log, loglevel=loglevel, keep_port=True) as worker:
                worker.wait_ready(timeout=90)
                console.print(instructions(running, worker.url), soft_wrap=True)
                try:
                    while worker.alive():
                        time.sleep(0.5)
                    tail = log.read_text(errors="replace").strip().splitlines()[-5:]
                    raise RuntimeError("the worker exited: " + " | ".join(tail))
                except KeyboardInterrupt:
                    console.print("stopping the worker and the broker ...")
        console.print("stopped.")
    except KeyboardInterrupt:
        console.print("stopped.")
