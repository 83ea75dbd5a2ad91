"""The worker's processors: one per assigned partition, created after recovery, flushed before commits."""

from __future__ import annotations

import time
from collections import Counter
from typing import Any, Iterable, Sequence

from streams.config import Settings
from streams.core.capability import Capability, Sink
from streams.core.contract import Decoder
from streams.core.processor import PartitionProcessor
from streams.core.routing import HomePartitions
from streams.core.userstore import UserStore


class Runtime:
    """Routes messages to partition processors and keeps the worker's counters."""

    def __init__(self, settings: Settings, store: UserStore, sink: Sink,
                 capabilities: Sequence[Capability] = (), slice_s: float | None = None) -> None:
        self.settings = settings
        self.slice_s = slice_s
        """Longest synchronous step of timer work (None: none is sliced; the worker slices, see
        :meth:`work`; tests and in-process tools run each step to its end)."""
        self.store = store
        self.sink = sink
        self.capabilities = list(capabilities)
        self.decoder = Decoder(settings)
        self.home = HomePartitions(settings.partitions, settings.rekey_cache_users)
        self.processors: dict[int, PartitionProcessor] = {}
        self.outcomes: Counter[str] = Counter()
        self.dead_letter_reasons: Counter[str] = Counter()
        self.flushes = 0
        self.rebalances = 0
        self._last_flush = time.monotonic()
        self.busy = False
        """Some partition has due timers not fired yet (see :meth:`work`): the worker finishes
        them before it hands on the next event (handling one would finish them in one step)."""

    def _count(self, kind: str, value: str | None) -> None:
        if kind == "dead_letter_reason" and value is not None:
            self.dead_letter_reasons[value] += 1

    def processor(self, partition: int) -> PartitionProcessor:
        """The partition's processor; the first call rebuilds its figures from recovered records."""
        proc = self.processors.get(partition)
        if proc is None:
            proc = PartitionProcessor(partition, self.settings, self.store, self.sink,
                                      self.capabilities, self.decoder, self.home, self._count, self.slice_s)
            proc.restore(time.time() * 1000)
            self.processors[partition] = proc
        return proc

    def handle(self, partition: int, key: bytes | None, value: bytes | None, offset: int,
               received_ms: int) -> str:
        proc = self.processors.get(partition) or self.processor(partition)
        outcome = proc.process(key, value, offset, received_ms, time.time() * 1000)
        self.outcomes[outcome] += 1
        if proc.backlog:
            self.busy = True
        return outcome

    def work(self, slice_s: float | None = None) -> bool:
        """Fire pending due timers for at most ``slice_s`` (default: the runtime's slice; None
        and no slice: all); True while work remains. The worker calls it between turns of the
        event loop until it returns False, so a day's close never blocks the loop for long."""
        budget = self.slice_s if slice_s is None else slice_s
        deadline = None if budget is None else time.perf_counter() + budget
        for proc in list(self.processors.values()):
            if proc.backlog and proc.work(deadline):
                return True
        self.busy = False
        return False

    def flush(self) -> int:
        """Queue every dirty user record for the store and changelog (before offsets are committed)."""
        self.flushes += 1
        self._last_flush = time.monotonic()
        return self.store.flush()

    def flush_some(self, limit: int) -> int:
        """Write up to ``limit`` dirty records (a slice of a flush; see ``UserStore.flush_some``)."""
        return self.store.flush_some(limit)

    def tick(self, assigned: Iterable[int] = ()) -> None:
        """Sweep quiet partitions; create processors for assigned partitions that had no message yet."""
        for partition in assigned:
            self.processor(partition)
        now = time.time() * 1000
        for proc in list(self.processors.values()):
            proc.tick(now)
            if proc.backlog:
                self.busy = True
        # Sweeps change records without any offset to commit; persist them on the same cadence.
        if time.monotonic() - self._last_flush >= self.settings.commit_interval_s and self.store.dirty_count():
            self.flush()

    def revoke(self, partitions: Iterable[int]) -> None:
        """Hand partitions over: flush, then forget their processors and cached records."""
        self.flush()
        for partition in partitions:
            if self.processors.pop(partition, None) is not None:
                self.store.drop_partition(partition)
        self.rebalances += 1

    def figures(self) -> dict[str, Any]:
        """The worker's partition figures summed (additive: the fleet total is the sum over workers)."""
        total: dict[str, Any] = {}
        for proc in self.processors.values():
            for name, value in proc.figures().items():
                if name in ("watermark_ms", "max_event_ms"):
                    continue
                if isinstance(value, (int, float)):
                    total[name] = total.get(name, 0) + value
        return total

    def watermarks(self) -> dict[int, int]:
        return {p: proc.watermark.value for p, proc in self.processors.items()}
