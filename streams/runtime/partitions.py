"""The worker's processors: one per assigned partition, created after recovery, flushed before commits.

Besides routing messages, the runtime keeps the partitions it owns aligned in event time (Flink's
watermark alignment): a partition whose source watermark runs more than ``max_partition_skew_s``
ahead of the slowest busy partition (its own partitions as they are now, the others as their
latest markers say) is *held*: its next messages wait, unread by the pipeline and not yet
acknowledged to Kafka (so a crash loses none of them), until the others catch up; and the app
stops fetching more of them. This is flow control only: it bounds how much of the "future"
waits in memory and in users' records, never what is computed.

For partitions it owns both of, the runtime also tells a partition the other's source watermark
as it is now, when nothing the other sent it is still in flight (see :mod:`streams.core.rekey`):
on one worker, partitions then wait for each other only as long as they really must.
"""

from __future__ import annotations

import time
from collections import Counter, deque
from typing import Any, Iterable, Sequence

from streams.config import Settings
from streams.core.capability import Capability, Sink
from streams.core.contract import Decoder
from streams.core.eventtime import NO_TIME
from streams.core.processor import PartitionProcessor
from streams.core.routing import HomePartitions
from streams.core.userstore import UserStore

#: A message held back while its partition runs ahead: key, value, offset, Kafka timestamp, and
#: the caller's token for it (the app acknowledges it to Faust once handled).
Held = tuple[bytes | None, bytes | None, int, int, Any]
NO_LIMIT = 2**62
#: A tick this many intervals after the previous one means the worker was not running meanwhile.
STALL_TICKS = 3


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
        self.held: dict[int, deque[Held]] = {}
        """Messages of partitions running ahead, waiting in arrival order."""
        self.handed_over: set[int] = set()
        """Partitions revoked and not assigned again: their messages still in flight (a batch taken
        before the rebalance) are left to the next owner, which reads them again from the last
        commit. Handling one would bring back a processor of a partition this worker no longer
        reads, whose stale event time would hold the others back for ever."""
        self.outcomes: Counter[str] = Counter()
        self.dead_letter_reasons: Counter[str] = Counter()
        self.ahead = 0
        """Events kept although stamped further ahead than the partition's users agree on."""
        self.closed = 0
        """Close records read (``streams close``)."""
        self.flushes = 0
        self.rebalances = 0
        self._last_flush = time.monotonic()
        self._limit = NO_LIMIT
        """``limit()`` as of the last batch (looked up per message)."""
        self._last_tick = time.time() * 1000
        self._batch: dict[int, list[Any]] = {}
        """Per partition handled in the open batch: its source clock before the batch's first message."""
        self.busy = False
        """Some partition has due timers not fired yet (see :meth:`work`): the worker finishes
        them before it hands on the next event (handling one would finish them in one step)."""

    def _count(self, kind: str, value: str | None) -> None:
        if kind == "dead_letter_reason" and value is not None:
            self.dead_letter_reasons[value] += 1
        elif kind == "ahead":
            self.ahead += 1

    def processor(self, partition: int) -> PartitionProcessor:
        """The partition's processor; the first call rebuilds its figures from recovered records."""
        proc = self.processors.get(partition)
        if proc is None:
            proc = PartitionProcessor(partition, self.settings, self.store, self.sink, self.capabilities,
                                      self.decoder, self.home, self._count, self.fresh_input, self.slice_s)
            self.processors[partition] = proc
            proc.restore(time.time() * 1000)
        return proc

    def fresh_input(self, home: PartitionProcessor, source: int) -> tuple[int, bool] | None:
        """``source``'s source watermark as it is now, when this worker owns it and ``home`` has
        taken every event ``source`` ever forwarded to it (None: wait for its next marker).

        Sound because an event is forwarded only when on time at its source: any event forwarded
        later is no older than the source watermark now. ``forwarded`` is restored with the source
        clock, so after a restart events forwarded before it, still on the way, are waited for."""
        proc = self.processors.get(source)
        if proc is None:
            return None
        if home.progress.get(source, -1) >= proc.source.forwarded.get(home.partition, -1):
            return proc.source.value, proc.source.idle
        return None

    # --- messages --------------------------------------------------------------------------
    def handle(self, partition: int, key: bytes | None, value: bytes | None, offset: int,
               received_ms: int) -> str:
        """A message of the events topic."""
        proc = self.processors.get(partition) or self.processor(partition)
        outcome = proc.process(key, value, offset, received_ms, time.time() * 1000)
        if outcome == "closed":
            self.closed += 1
        else:
            self.outcomes[outcome] += 1
        if proc.backlog:
            self.busy = True
        return outcome

    def offer(self, partition: int, key: bytes | None, value: bytes | None, offset: int, received_ms: int,
              token: Any) -> bool:
        """A message of the events topic: handled now (True), or held while its partition runs
        ahead (False: ``token`` comes back from :meth:`release` once it is handled), or left
        unhandled and unacknowledged because its partition was handed over (False, for good:
        its owner, this worker again or another, reads it again from the last commit)."""
        if partition in self.handed_over:
            return False  # not ours (for now): never acknowledged, read again from the last commit
        held = self.held.get(partition)
        if held is None:
            proc = self.processors.get(partition) or self.processor(partition)
            if proc.source.value <= self._limit:
                if partition not in self._batch:
                    self._batch[partition] = proc.source.snapshot()
                self.handle(partition, key, value, offset, received_ms)
                return True
            held = self.held[partition] = deque()
        held.append((key, value, offset, received_ms, token))
        return False

    def handle_rekeyed(self, partition: int, key: bytes | None, value: bytes | None, offset: int) -> str | None:
        """A record of the re-key topic: a forwarded event (its outcome) or a marker (None)."""
        if partition in self.handed_over:
            return None
        proc = self.processors.get(partition) or self.processor(partition)
        outcome = proc.process_rekeyed(key, value, offset)
        if outcome is not None:
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

    def begin_batch(self) -> None:
        """A batch of the events topic starts: its messages are acknowledged together at its end."""
        self._batch.clear()

    def batch_done(self) -> None:
        """The batch is about to be acknowledged (no commit can fall in between)."""
        self._batch.clear()

    # --- alignment -------------------------------------------------------------------------
    def limit(self) -> int:
        """How far a partition's source watermark may run before its messages are held: the
        slowest busy partition's (own ones as they are, others as marked) plus the skew allowed."""
        floor = None
        for partition, proc in self.processors.items():
            source = proc.source
            if not source.idle and source.value != NO_TIME and (floor is None or source.value < floor):
                floor = source.value
            marks, idle = proc.inputs.marks, proc.inputs.idle
            for other, value in enumerate(marks):
                if other not in self.processors and not idle[other] and value != NO_TIME \
                        and (floor is None or value < floor):
                    floor = value
        return NO_LIMIT if floor is None else floor + self.settings.max_partition_skew_ms

    def end_batch(self) -> tuple[set[int], set[int], list[Any]]:
        """After a batch: send the watermark markers that are due, bring every partition's
        watermark up to date, handle held messages whose partition may go on; returns the
        partitions to stop and to restart fetching, and the tokens of the held messages handled."""
        for proc in self.processors.values():
            proc.send_marker()
        for proc in list(self.processors.values()):
            proc.refresh()
            if proc.backlog:
                self.busy = True
        released = self.release()
        return (*self.align(), released)

    def release(self) -> list[Any]:
        """Handle held messages of partitions no longer ahead (the slowest first), in order."""
        done: list[Any] = []
        progress = True
        while progress and self.held:
            progress = False
            order = sorted(self.held, key=lambda p: self.processors[p].source.value)
            for partition in order:
                held = self.held[partition]
                proc = self.processors[partition]
                limit = self._limit = self.limit()
                while held and proc.source.value <= limit:
                    key, value, offset, received_ms, token = held.popleft()
                    self.handle(partition, key, value, offset, received_ms)
                    done.append(token)
                    progress = True
                if not held:
                    del self.held[partition]
        return done

    def align(self) -> tuple[set[int], set[int]]:
        """(partitions to pause, partitions to resume), changes only: stop fetching the events of
        partitions running ahead (a processor made after a rebalance starts unpaused, as the
        Kafka client does)."""
        limit = self._limit = self.limit()
        pause: set[int] = set()
        resume: set[int] = set()
        for partition, proc in self.processors.items():
            ahead = partition in self.held or proc.source.value > limit
            if ahead != proc.paused:
                (pause if ahead else resume).add(partition)
                proc.paused = ahead
                proc.source.touch(time.time() * 1000)
        return pause, resume

    # --- commits, idleness, rebalances ------------------------------------------------------
    def flush(self) -> int:
        """Queue every dirty user record for the store and changelog (before offsets are committed)."""
        self.flushes += 1
        self._last_flush = time.monotonic()
        for partition, proc in self.processors.items():
            # Mid-batch (a commit while timers are drained), the batch's messages are handled but
            # not acknowledged: the commit stops before them, and so does the clock it records.
            proc.checkpoint(self._batch.get(partition))
        return self.store.flush()

    def flush_some(self, limit: int) -> int:
        """Write up to ``limit`` dirty records (a slice of a flush; see ``UserStore.flush_some``)."""
        return self.store.flush_some(limit)

    def tick(self, assigned: Iterable[int] = ()) -> tuple[set[int], set[int], list[Any]]:
        """Sweep quiet partitions; create processors for assigned partitions that had no message
        yet; then what ``end_batch`` does."""
        for partition in assigned:
            self.processor(partition)
        now = time.time() * 1000
        stalled = now - self._last_tick > STALL_TICKS * self.settings.tick_interval_s * 1000
        self._last_tick = now
        for proc in list(self.processors.values()):
            if stalled:
                # The worker itself did not run (stopped, starved of CPU): a partition was not
                # quiet meanwhile, it was not read. Its idle time starts again.
                proc.source.touch(now)
            proc.tick(now)
            if proc.backlog:
                self.busy = True
        result = self.end_batch()
        # Sweeps change records without any offset to commit; persist them on the same cadence.
        if time.monotonic() - self._last_flush >= self.settings.commit_interval_s and self.store.dirty_count():
            self.flush()
        return result

    def revoke(self, partitions: Iterable[int]) -> None:
        """Hand partitions over: flush, then forget their processors, held messages (never
        acknowledged: the next owner reads them) and cached records."""
        self.flush()
        for partition in partitions:
            self.handed_over.add(partition)
            self.held.pop(partition, None)
            if self.processors.pop(partition, None) is not None:
                self.store.drop_partition(partition)
        self.rebalances += 1

    def assign(self, partitions: Iterable[int]) -> None:
        """Partitions assigned (again) to this worker: their messages are ours."""
        self.handed_over.difference_update(partitions)

    # --- figures ---------------------------------------------------------------------------
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
