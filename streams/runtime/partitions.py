"""The worker's processors: one per assigned partition, created after recovery, flushed before commits.

Besides routing messages, the runtime keeps the partitions it owns aligned in event time (Flink's
watermark alignment): after each batch it names the partitions whose source watermark runs more
than ``max_partition_skew_s`` ahead of the slowest busy partition (its own partitions as they are
now, the others as their latest markers say), and the app pauses reading their events until the
others catch up. This is flow control only: it bounds how much of the "future" waits in users'
records and buffers; what is computed does not depend on it.
"""

from __future__ import annotations

import time
from collections import Counter
from typing import Any, Iterable, Sequence

from streams.config import Settings
from streams.core.capability import Capability, Sink
from streams.core.contract import Decoder
from streams.core.eventtime import NO_TIME
from streams.core.processor import PartitionProcessor
from streams.core.routing import HomePartitions
from streams.core.userstore import UserStore


class Runtime:
    """Routes messages to partition processors and keeps the worker's counters."""

    def __init__(self, settings: Settings, store: UserStore, sink: Sink,
                 capabilities: Sequence[Capability] = ()) -> None:
        self.settings = settings
        self.store = store
        self.sink = sink
        self.capabilities = list(capabilities)
        self.decoder = Decoder(settings)
        self.home = HomePartitions(settings.partitions, settings.rekey_cache_users)
        self.processors: dict[int, PartitionProcessor] = {}
        self.outcomes: Counter[str] = Counter()
        self.dead_letter_reasons: Counter[str] = Counter()
        self.ahead = 0
        """Events applied although stamped further ahead than the partition's users agree on."""
        self.closed = 0
        """Close records read (``streams close``)."""
        self.flushes = 0
        self.rebalances = 0
        self._last_flush = time.monotonic()

    def _count(self, kind: str, value: str | None) -> None:
        if kind == "dead_letter_reason" and value is not None:
            self.dead_letter_reasons[value] += 1
        elif kind == "ahead":
            self.ahead += 1

    def processor(self, partition: int) -> PartitionProcessor:
        """The partition's processor; the first call rebuilds its figures from recovered records."""
        proc = self.processors.get(partition)
        if proc is None:
            proc = PartitionProcessor(partition, self.settings, self.store, self.sink,
                                      self.capabilities, self.decoder, self.home, self._count)
            proc.restore(time.time() * 1000)
            self.processors[partition] = proc
        return proc

    def handle(self, partition: int, key: bytes | None, value: bytes | None, offset: int,
               received_ms: int) -> str:
        """A message of the events topic."""
        proc = self.processors.get(partition) or self.processor(partition)
        outcome = proc.process(key, value, offset, received_ms, time.time() * 1000)
        if outcome == "closed":
            self.closed += 1
        else:
            self.outcomes[outcome] += 1
        return outcome

    def handle_rekeyed(self, partition: int, key: bytes | None, value: bytes | None, offset: int) -> str | None:
        """A record of the re-key topic: a forwarded event (its outcome) or a marker (None)."""
        proc = self.processors.get(partition) or self.processor(partition)
        outcome = proc.process_rekeyed(key, value, offset)
        if outcome is not None:
            self.outcomes[outcome] += 1
        return outcome

    def end_batch(self) -> tuple[set[int], set[int]]:
        """After a batch: send the watermark markers that are due; return the partitions whose
        reading to pause and to resume."""
        for proc in self.processors.values():
            proc.send_marker()
        return self.align()

    def align(self) -> tuple[set[int], set[int]]:
        """(partitions to pause, partitions to resume), changes only: pause those more than
        ``max_partition_skew_s`` ahead of the slowest busy partition (a processor made after a
        rebalance starts unpaused, as the Kafka client does)."""
        known: dict[int, int] = {}
        for partition, proc in self.processors.items():
            for source, (value, idle) in enumerate(proc.inputs.state()):
                if source not in self.processors and not idle and value != NO_TIME:
                    known[source] = max(known.get(source, NO_TIME), value)
        for partition, proc in self.processors.items():
            if not proc.source.idle and proc.source.value != NO_TIME:
                known[partition] = proc.source.value
        pause: set[int] = set()
        resume: set[int] = set()
        if not known:
            return pause, resume
        floor = min(known.values()) + self.settings.max_partition_skew_ms
        for partition, proc in self.processors.items():
            ahead = proc.source.value > floor
            if ahead != proc.paused:
                (pause if ahead else resume).add(partition)
                proc.paused = ahead
                proc.source.touch(time.time() * 1000)
        return pause, resume

    def flush(self) -> int:
        """Queue every dirty user record for the store and changelog (before offsets are committed)."""
        self.flushes += 1
        self._last_flush = time.monotonic()
        for proc in self.processors.values():
            proc.checkpoint()
        return self.store.flush()

    def tick(self, assigned: Iterable[int] = ()) -> None:
        """Sweep quiet partitions; create processors for assigned partitions that had no message yet."""
        for partition in assigned:
            self.processor(partition)
        now = time.time() * 1000
        for proc in list(self.processors.values()):
            proc.tick(now)
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
