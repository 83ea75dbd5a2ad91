"""Feeding a whole event list through the partitions' runtime as a worker would: timers fired in
slices before the next event, a commit, a crash and a restart from the changelog (redelivery from
the last commit), and one event per partition at the end so that every watermark passes it."""

from __future__ import annotations

from typing import Any

import orjson

from streams.capabilities.registry import build_capabilities
from streams.config import Settings
from streams.core.contract import parse_time_ms
from streams.core.routing import HomePartitions
from streams.sim.simulator import SimulationConfig, simulate
from tests.support.fakes import FakeTable, unit_runtime

RECEIVED_MS = 4_000_000_000_000
CLOCK = "__clock"


def workload(config: SimulationConfig) -> list[dict[str, Any]]:
    """The simulation's events, timestamps in epoch ms."""
    docs = []
    for doc in simulate(config):
        doc["timestamp"] = parse_time_ms(doc["timestamp"])
        docs.append(doc)
    return docs


def clock_docs(settings: Settings, at_ms: int) -> list[dict[str, Any]]:
    """One event per partition at ``at_ms``, from users of that partition: every watermark passes it."""
    home = HomePartitions(settings.partitions, 100)
    found: dict[int, str] = {}
    n = 0
    while len(found) < settings.partitions:
        user = f"{CLOCK}-{n}"
        found.setdefault(home(user.encode()), user)
        n += 1
    return [{"event_id": f"{user}-end", "type": "page", "event": "home", "user_id": user, "timestamp": at_ms}
            for user in found.values()]


class Worker:
    """A runtime driven as the worker drives it: timers in slices before the next event, commits."""

    def __init__(self, settings: Settings, table: FakeTable | None = None) -> None:
        self.runtime, self.table, self.sink = unit_runtime(settings, build_capabilities(settings), table)
        self.runtime.slice_s = 0.0
        self.home = HomePartitions(settings.partitions, 10_000)

    def feed(self, docs: list[tuple[int, dict[str, Any]]]) -> None:
        runtime = self.runtime
        for offset, doc in docs:
            while runtime.busy:
                runtime.work()
            key = doc["user_id"].encode()
            runtime.handle(self.home(key), key, orjson.dumps(doc), offset, RECEIVED_MS)
        while runtime.work():
            pass


def run(settings: Settings, docs: list[dict[str, Any]], commit: float = 0.45,
        crash: float | None = 0.60) -> list[dict[str, Any]]:
    """Feed everything, with a commit after ``commit`` of the events and a crash after ``crash``
    (None: no crash); the signals of both lives (a repeated id must carry the same signal)."""
    home = HomePartitions(settings.partitions, 10_000)
    offsets = [0] * settings.partitions
    numbered = []
    for doc in docs:  # offsets per partition, as Kafka would number them
        p = home(doc["user_id"].encode())
        numbered.append((offsets[p], doc))
        offsets[p] += 1
    first = Worker(settings)
    at = int(len(numbered) * commit)
    first.feed(numbered[:at])
    first.runtime.flush()
    if crash is None:
        first.feed(numbered[at:])
        workers = [first]
    else:
        first.feed(numbered[at:int(len(numbered) * crash)])
        second = Worker(settings, first.table.recovered())
        second.feed(numbered[at:])  # redelivered from the last commit
        workers = [first, second]
    signals: dict[str, dict[str, Any]] = {}
    for worker in workers:
        for signal in worker.sink.values(settings.signals_topic):
            assert signals.setdefault(signal["id"], signal) == signal, "a repeated id carries the same signal"
    return [s for s in signals.values() if not s["user_id"].startswith(CLOCK)]
