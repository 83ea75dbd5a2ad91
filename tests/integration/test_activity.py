"""Worker processes, four partitions, the embedded broker: every day's combined snapshot read from
the metrics topic equals the batch computation over the same events, and so do the signals."""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
import pytest

from streams.config import ActivityConfig, SegmentDimension, Settings
from streams.core.contract import parse_time_ms
from streams.core.routing import HomePartitions
from streams.tools.close import close_stream
from streams.tools.kafkaio import event_records, read_json, send_all
from tests.support.activity_batch import (
    EventSet,
    LocalDays,
    SegmentSpec,
    batch_figures,
    batch_transitions,
    generate,
    normalized,
    stickiness,
)
from tests.support.wait import wait_for

pytestmark = pytest.mark.integration
TZ = "Asia/Kolkata"  # UTC+05:30: midnight falls in the middle of a UTC hour
START = parse_time_ms("2026-09-01T00:00:00+05:30")
assert START is not None
DAY_MS = 86_400_000
LATENESS_S = 900
CLOSE_MS = START + 44 * DAY_MS
LAST = LocalDays(TZ).date(CLOSE_MS)
SEGMENTS = (SegmentDimension("plan", "traits", values=("free", "team", "business")),
            SegmentDimension("platform", "context"),
            SegmentDimension("country", "context", values=("DE", "US", "FR")))
SPECS = [SegmentSpec("plan", "traits", ("free", "team", "business")), SegmentSpec("platform", "context"),
         SegmentSpec("country", "context", ("DE", "US", "FR"))]


def activity_settings(make_settings: Any) -> Settings:
    activity = ActivityConfig(timezone=TZ, segments=SEGMENTS, provisional_interval_s=1.0, start_date="2026-09-01")
    return make_settings(partitions=4, allowed_lateness_s=LATENESS_S, activity=activity)


def owned(worker: Any) -> set[int]:
    return {int(p) for p in worker.figures()["partitions"]}


def snapshots(settings: Settings, final: bool = True) -> dict[str, dict[str, Any]]:
    """The activity_day snapshots on the metrics topic by day (the last one per day)."""
    found: dict[str, dict[str, Any]] = {}
    for snap in asyncio.run(read_json(settings, settings.metrics_topic, idle_timeout=2)):
        if snap["kind"] != "activity_day" or snap["final"] != final:
            continue
        if final:
            assert found.get(snap["period"], snap) == snap, "one final snapshot per day (repeats identical)"
        found[snap["period"]] = snap
    return found


def assert_equal_to_batch(settings: Settings, events: EventSet, last: str = LAST) -> None:
    expected = batch_figures(events.accepted, TZ, 14, SPECS, "2026-09-01", last)
    finals = wait_for(lambda: (lambda f: f if set(expected) <= set(f) else None)(snapshots(settings)),
                      timeout=120, interval=1, message="final snapshots of every day")
    assert sorted(finals) == sorted(expected)
    for day, want in expected.items():
        got = finals[day]["figures"]
        assert normalized(got) == want, f"figures differ on {day}"
        assert got["stickiness"] == stickiness(want)
        assert finals[day]["partitions_final"] == 4
    assert any(want["daily"]["resurrected"] for want in expected.values())
    assert any(want["segments"]["plan"].get("other") for want in expected.values())

    signals: dict[str, dict[str, Any]] = {}
    for signal in asyncio.run(read_json(settings, settings.signals_topic, idle_timeout=2)):
        if signal.get("type") != "lifecycle":
            continue  # other capabilities' signals share the topic
        assert signals.get(signal["id"], signal) == signal, "a repeated id carries the same signal"
        signals[signal["id"]] = signal
    got = {(s["user_id"], s["from"], s["to"], s["day"]) for s in signals.values()}
    assert got == batch_transitions(events.accepted, TZ, 14, last)


def test_snapshots_and_signals_equal_the_batch_computation(make_settings: Any, workers: Any) -> None:
    """Two workers in one group, out-of-order events, duplicates, late events, segments."""
    settings = activity_settings(make_settings)
    home = HomePartitions(settings.partitions, 10_000)
    events = generate(seed=29, users=160, days=35, start_ms=START, lateness_ms=LATENESS_S * 1000,
                      home=lambda user: home(user.encode()))
    first, second = workers(settings, "w1"), workers(settings, "w2")
    first.wait_ready(), second.wait_ready()
    wait_for(lambda: owned(first) | owned(second) == {0, 1, 2, 3} and owned(first) and owned(second)
             and not owned(first) & owned(second), timeout=90, message="two workers sharing four partitions")

    asyncio.run(send_all(settings, event_records(events.arrivals)))
    close_stream(settings, CLOSE_MS)
    assert_equal_to_batch(settings, events)

    late_ids = {orjson.loads(d["payload"])["event_id"]
                for d in asyncio.run(read_json(settings, settings.dead_letter_topic, idle_timeout=2))
                if d["reason"] == "late"}
    assert len(late_ids) == events.late > 0
    assert snapshots(settings, final=False), "open days are published provisionally too"


def test_a_killed_worker_resumes_figures_and_combined_days_exactly(make_settings: Any, workers: Any) -> None:
    """The stream is closed through day 20 and the worker killed once that day is final; the
    restarted worker rebuilds the activity figures from the recovered records and the rollup's
    days from its table, takes the rest of the stream, and the finals still equal the batch."""
    settings = activity_settings(make_settings)
    home = HomePartitions(settings.partitions, 10_000)
    events = generate(seed=31, users=120, days=35, start_ms=START, lateness_ms=LATENESS_S * 1000,
                      home=lambda user: home(user.encode()))
    days = LocalDays(TZ)
    middle = START + 20 * DAY_MS
    # Events of day 20 come before the cut (arrivals are at most 0.9 x the lateness late), so
    # closing through day 20 there makes none of the rest late.
    cut = next(i for i, doc in enumerate(events.arrivals) if doc["timestamp"] >= middle + DAY_MS + 3_600_000)
    worker = workers(settings, "before").wait_ready(partitions=4)
    asyncio.run(send_all(settings, event_records(events.arrivals[:cut])))
    close_stream(settings, middle)
    wait_for(lambda: days.date(middle) in snapshots(settings), timeout=90, interval=1,
             message="day 20 final in every partition")
    worker.kill()
    workers(settings, "after").wait_ready(partitions=4)
    asyncio.run(send_all(settings, event_records(events.arrivals[cut:])))
    close_stream(settings, CLOSE_MS)
    assert_equal_to_batch(settings, events)
