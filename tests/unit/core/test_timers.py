"""Event-time timers: due order with ties in scheduling order, resumable firing, packed storage;
and the processor's timer work in slices gives exactly what firing everything at once gives."""

from __future__ import annotations

import heapq
import random
from typing import Any

import orjson

from streams.capabilities.registry import build_capabilities
from streams.core.timers import Timers
from streams.sim.simulator import SimulationConfig, simulate
from tests.support.fakes import unit_runtime, unit_settings


def test_timers_fire_in_due_order_with_ties_in_scheduling_order_like_a_heap() -> None:
    rng = random.Random(4)
    timers, heap, seq = Timers(), [], 0
    for _ in range(2000):
        due, key, owner, tag = rng.randrange(50), f"user-{rng.randrange(300)}".encode(), rng.randrange(3), \
            rng.choice(("a", "b", "session"))
        timers.schedule(due, key, owner, tag)
        seq += 1
        heapq.heappush(heap, (due, seq, key, owner, tag))
    assert len(timers) == 2000
    fired = []
    for watermark in (-1, 10, 10, 49):  # nothing due at -1; 10 twice: nothing new the second time
        while (timer := timers.pop(watermark)) is not None:
            fired.append(timer)
    assert fired == [(due, key, owner, tag) for due, _, key, owner, tag in sorted(heap)]
    assert len(timers) == 0 and timers.next_due() is None


def test_firing_can_stop_anywhere_and_timers_scheduled_for_the_due_time_being_fired_join_it() -> None:
    timers = Timers()
    for i in range(5):
        timers.schedule(100, b"k%d" % i, 0, "t")
    timers.schedule(200, b"later", 1, "t")
    first = timers.pop(150)
    assert first == (100, b"k0", 0, "t")
    timers.schedule(100, b"joined", 2, "u")  # while 100 is being fired: fires in the same pass
    rest = []
    while (timer := timers.pop(150)) is not None:
        rest.append(timer[1])
    assert rest == [b"k1", b"k2", b"k3", b"k4", b"joined"]
    assert timers.next_due() == 200 and timers.pop(199) is None and timers.pop(200) == (200, b"later", 1, "t")


def test_a_timer_costs_its_key_and_four_bytes() -> None:
    timers = Timers()
    for i in range(10_000):
        timers.schedule(86_400_000 * (i % 3), b"user-%06d" % i, 4, "engagement:day")
    assert timers.nbytes() == 10_000 * (4 + len(b"user-000000"))


RECEIVED_MS = 4_000_000_000_000  # broker time: after every simulated event


def _docs() -> list[dict[str, Any]]:
    return list(simulate(SimulationConfig(users=150, days=24, seed=5)))


def _outputs(sink: Any) -> list[tuple[str, bytes | None, bytes, int | None]]:
    return sorted(sink.sent, key=lambda r: (r[0], r[1] or b"", r[2]))


def test_timer_work_in_slices_gives_the_same_outputs_and_records_as_all_at_once() -> None:
    """The worker fires due timers a slice at a time (16 at least per call) between turns of the
    event loop; everything an event makes due fires before the next event either way."""
    settings = unit_settings(partitions=1, allowed_lateness_s=60)
    docs = _docs()
    whole, whole_table, whole_sink = unit_runtime(settings, build_capabilities(settings))
    sliced, sliced_table, sliced_sink = unit_runtime(settings, build_capabilities(settings))
    sliced.slice_s = 0.0
    slices = 0
    assert whole.slice_s is None
    for offset, doc in enumerate(docs):
        raw = orjson.dumps(doc)
        whole.handle(0, doc["user_id"].encode(), raw, offset, RECEIVED_MS)
        while sliced.busy:  # what the ingest agent does before handing on the next event
            sliced.work()
            slices += 1
        sliced.handle(0, doc["user_id"].encode(), raw, offset, RECEIVED_MS)
    while sliced.work():
        slices += 1
    assert slices > 100  # the day closes were really cut into slices
    whole.flush()
    sliced.flush()
    assert dict(whole.outcomes) == dict(sliced.outcomes) == {"applied": len(docs)}
    assert _outputs(whole_sink) == _outputs(sliced_sink)
    assert dict(whole_table.data.data) == dict(sliced_table.data.data)
