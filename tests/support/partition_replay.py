"""Feeding a whole event list through the partitions' runtime as a worker would: timers fired in
slices before the next event, the re-key topic's markers delivered back, a commit, a crash and a
restart from the changelog (redelivery from the last commit), and at the end a close record on every
partition (``streams close``) so that every day up to the last is final."""

from __future__ import annotations

from typing import Any

import orjson

from streams.capabilities.registry import build_capabilities
from streams.config import Settings
from streams.core.contract import parse_time_ms
from streams.core.routing import HomePartitions
from streams.sim.simulator import SimulationConfig, simulate
from tests.support.fakes import FakeTable, Loopback, unit_runtime

RECEIVED_MS = 4_000_000_000_000


def workload(config: SimulationConfig) -> list[dict[str, Any]]:
    """The simulation's events, timestamps in epoch ms."""
    docs = []
    for doc in simulate(config):
        doc["timestamp"] = parse_time_ms(doc["timestamp"])
        docs.append(doc)
    return docs


class Worker:
    """A runtime driven as the worker drives it: timers in slices before the next event, commits,
    the re-key topic read back (:class:`~tests.support.fakes.Loopback`)."""

    def __init__(self, settings: Settings, table: FakeTable | None = None) -> None:
        self.runtime, self.table, self.sink = unit_runtime(settings, build_capabilities(settings), table)
        self.runtime.slice_s = 0.0
        self.loop = Loopback(self.runtime, self.sink)
        self.home = HomePartitions(settings.partitions, 10_000)

    def feed(self, docs: list[tuple[int, dict[str, Any]]]) -> None:
        for offset, doc in docs:
            self.drain()
            key = doc["user_id"].encode()
            self.loop.send(self.home(key), key, orjson.dumps(doc), RECEIVED_MS, offset)
        self.drain()

    def drain(self) -> None:
        while self.runtime.busy:
            self.runtime.work()

    def close(self, through_ms: int) -> None:
        """``streams close``: every day up to ``through_ms``'s is final."""
        self.loop.close(through_ms)
        self.drain()


def run(settings: Settings, docs: list[dict[str, Any]], commit: float = 0.45,
        crash: float | None = 0.60, through_ms: int | None = None) -> list[dict[str, Any]]:
    """Feed everything, with a commit after ``commit`` of the events and a crash after ``crash``
    (None: no crash), then close the stream through ``through_ms`` (default: the newest event);
    the signals of both lives (a repeated id must carry the same signal)."""
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
    workers[-1].close(max(d["timestamp"] for d in docs) if through_ms is None else through_ms)
    signals: dict[str, dict[str, Any]] = {}
    for worker in workers:
        for signal in worker.sink.values(settings.signals_topic):
            assert signals.setdefault(signal["id"], signal) == signal, "a repeated id carries the same signal"
    return list(signals.values())
