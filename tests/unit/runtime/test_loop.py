"""The event loop kept responsive: the probe measures a blocked loop, and the sliced drain, flush
and batch handling leave the loop free between their steps."""

from __future__ import annotations

import asyncio
import time

from prometheus_client import CollectorRegistry, generate_latest

from streams.core.state import UserState
from streams.core.userstore import UserStore
from streams.runtime.loop import BatchSlices, LoopWatch, flush_sliced
from streams.runtime.partitions import Runtime
from tests.support.fakes import FakeTable, ListSink, unit_settings


async def test_the_probe_measures_how_long_a_synchronous_step_blocked_the_loop() -> None:
    watch = LoopWatch(interval_s=0.002)
    probe = asyncio.ensure_future(watch.run())
    await asyncio.sleep(0.02)  # the probe runs on an idle loop: late by little
    idle = watch.longest_s
    time.sleep(0.12)  # a synchronous step of 120 ms, but waiting: no CPU used
    await asyncio.sleep(0.02)
    waited_cpu = watch.longest_cpu_s
    spin = time.thread_time() + 0.08
    while time.thread_time() < spin:  # a step that uses 80 ms of CPU
        pass
    await asyncio.sleep(0.02)
    probe.cancel()
    assert idle < 0.05
    assert 0.1 <= watch.longest_s < 0.3
    assert waited_cpu < 0.05 and 0.08 <= watch.longest_cpu_s < 0.2  # CPU time: the busy step only
    registry = CollectorRegistry()
    registry.register(watch)
    text = generate_latest(registry).decode()
    assert 'engagement_loop_block_seconds_bucket{le="0.1"}' in text
    over = sum(watch.counts[i] for i, bound in enumerate(watch.bounds) if bound > 0.1) + watch.counts[-1]
    assert over >= 1  # the block is in a bucket above 100 ms
    exported = [line for line in text.splitlines() if line.startswith("engagement_loop_block_max_seconds ")]
    assert len(exported) == 1 and float(exported[0].split()[1]) >= 0.1


async def test_a_sliced_flush_lets_the_loop_run_between_its_slices() -> None:
    settings = unit_settings()
    store = UserStore(FakeTable(), 100)
    runtime = Runtime(settings, store, ListSink())
    for i in range(9_000):
        store.mark_dirty(0, b"u%d" % i, UserState())
    turns = 0

    async def other_task() -> None:
        nonlocal turns
        while True:
            turns += 1
            await asyncio.sleep(0)

    task = asyncio.ensure_future(other_task())
    await flush_sliced(runtime, keep=0)
    task.cancel()
    assert store.dirty_count() == 0 and store.writes == 9_000
    assert turns >= 4  # 2,000 records a slice: the other task ran between the slices


async def test_a_long_batch_lets_the_loop_run_once_a_slice_is_used_up() -> None:
    runtime = Runtime(unit_settings(), UserStore(FakeTable(), 100), ListSink())
    ran = []
    slices = BatchSlices(slice_s=0.01)
    assert not slices.due()  # a fresh slice
    asyncio.get_running_loop().call_soon(ran.append, "other")
    time.sleep(0.012)  # handling events for longer than the slice
    assert slices.due() and not ran
    await slices.pause(runtime)
    assert ran == ["other"]  # the loop ran another task in the pause
    assert not slices.due()  # and a new slice started
