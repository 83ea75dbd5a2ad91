"""Keeping the worker's event loop responsive: long work in slices, and the loop's blocks measured.

Everything a worker does runs on one asyncio loop: consuming, heartbeats to the group
coordinator, commits, the web server. A synchronous step that runs for seconds (a day's close
judging a million users, flushing their records before a commit) stops all of it, and a group
may evict a worker whose heartbeats stop. So:

* timers due at the watermark are fired in slices (:meth:`streams.runtime.partitions.Runtime.work`,
  ``LOOP_SLICE_S`` each) by :func:`drain`, which yields to the loop between slices; the ingest
  agent drains before it hands the next event on, so every due timer still fires before the
  next event is applied (the same order as firing them all at once);
* before a commit, dirty records are written in slices (:func:`flush_sliced`), and only the
  rest, records dirtied meanwhile, in the synchronous pre-commit flush;
* :class:`LoopWatch` measures how long the loop was blocked: a probe task asks to wake every
  ``LOOP_PROBE_S`` and records how late it woke. A step of ``B`` seconds makes the probe late by
  up to ``B`` (by ``B`` minus up to one probe interval), so the largest lateness is the longest
  block to within ``LOOP_PROBE_S``. Exported as the histogram ``engagement_loop_block_seconds``.
"""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING, Iterator

from prometheus_client.core import GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector

from streams.config import FLUSH_SLICE_RECORDS, LOOP_BLOCK_BUCKETS_S, LOOP_PROBE_S, LOOP_SLICE_S, METRIC_PREFIX

if TYPE_CHECKING:
    from streams.runtime.partitions import Runtime


async def drain(runtime: "Runtime") -> None:
    """Finish the runtime's due timers a slice at a time, letting the loop run in between."""
    while runtime.work():
        await asyncio.sleep(0)


class BatchSlices:
    """When the ingest agent lets the loop run between two events of a batch.

    A batch holds up to ``INGEST_BATCH_EVENTS`` events and is handled in one loop (its data stays
    in the CPU caches); on a sparse product nearly every event opens a user's day, and a batch
    of such events runs for longer than a slice. So every ``slice_s`` of handling the agent
    finishes the due timers and yields (:meth:`pause`), as it does when an event makes timers due.
    """

    __slots__ = ("slice_s", "until")

    def __init__(self, slice_s: float = LOOP_SLICE_S) -> None:
        self.slice_s = slice_s
        self.until = time.perf_counter() + slice_s

    def due(self) -> bool:
        """Whether the current slice is used up (checked before each event)."""
        return time.perf_counter() >= self.until

    async def pause(self, runtime: "Runtime") -> None:
        """Finish the due timers in slices, yield once more, start a new slice."""
        await drain(runtime)
        await asyncio.sleep(0)
        self.until = time.perf_counter() + self.slice_s


async def flush_sliced(runtime: "Runtime", keep: int = FLUSH_SLICE_RECORDS) -> None:
    """Write dirty records in slices until at most ``keep`` remain (the synchronous pre-commit
    flush writes those). Bounded: events handled meanwhile dirty records too, so it stops after
    as many slices as were needed at the start, plus a few."""
    rounds = runtime.store.dirty_count() // FLUSH_SLICE_RECORDS + 4
    while rounds and runtime.store.dirty_count() > keep:
        runtime.flush_some(FLUSH_SLICE_RECORDS)
        rounds -= 1
        await asyncio.sleep(0)


class LoopWatch(Collector):
    """How late a probe task wakes, as a histogram of the event loop's blocked time."""

    def __init__(self, interval_s: float = LOOP_PROBE_S) -> None:
        self.interval_s = interval_s
        self.bounds = LOOP_BLOCK_BUCKETS_S
        self.counts = [0] * (len(self.bounds) + 1)
        self.sum_s = 0.0
        self.longest_s = 0.0
        """The largest lateness seen since start (what the benchmarks report)."""
        self.longest_cpu_s = 0.0
        """The most CPU time the loop's thread used within one probe cycle: the longest block as
        the pipeline's own code made it, without the time the process waited for a CPU (on a
        loaded machine the lateness also counts other processes' turns; on a quiet one the two agree)."""

    def observe(self, seconds: float) -> None:
        self.sum_s += seconds
        if seconds > self.longest_s:
            self.longest_s = seconds
        for index, bound in enumerate(self.bounds):
            if seconds <= bound:
                self.counts[index] += 1
                return
        self.counts[-1] += 1

    async def run(self) -> None:
        """Probe until cancelled."""
        interval, clock, cpu = self.interval_s, time.perf_counter, time.thread_time
        while True:
            asked, asked_cpu = clock(), cpu()
            await asyncio.sleep(interval)
            self.observe(max(0.0, clock() - asked - interval))
            busy = cpu() - asked_cpu
            if busy > self.longest_cpu_s:
                self.longest_cpu_s = busy

    def collect(self) -> Iterator[Metric]:
        cumulative, buckets = 0, []
        for bound, count in zip((*map(str, self.bounds), "+Inf"), self.counts):
            cumulative += count
            buckets.append((bound, cumulative))
        yield HistogramMetricFamily(
            f"{METRIC_PREFIX}_loop_block_seconds", "How long the worker's event loop was blocked, "
            f"measured as the lateness of a probe asking to wake every {self.interval_s:g} s "
            "(a synchronous step of B seconds makes it up to B late).", buckets=buckets, sum_value=self.sum_s)
        yield GaugeMetricFamily(f"{METRIC_PREFIX}_loop_block_max_seconds", "The longest the event loop "
                                "was blocked since the worker started (probe lateness).", value=self.longest_s)
