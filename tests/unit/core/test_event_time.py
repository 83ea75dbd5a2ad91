"""Event time across partitions, in one process: the same events give the same outputs whatever
partitioner placed them, however late the re-key topic delivers, however far some clocks run ahead,
and those outputs equal the batch references (activity, sessions)."""

from __future__ import annotations

import random
import zlib
from typing import Any, Callable

import orjson
import pytest

from streams.capabilities.registry import build_capabilities
from streams.capabilities.snapshots import add_figures
from streams.config import MS_PER_DAY, MS_PER_HOUR, SegmentDimension
from streams.core.contract import parse_time_ms
from streams.core.routing import HomePartitions
from streams.core.sourceclock import SourceClock
from tests.support import session_batch
from tests.support.activity_batch import LocalDays, SegmentSpec, batch_figures, batch_transitions, generate, normalized
from tests.support.evidence import ReferenceWatermark
from tests.support.fakes import Loopback, unit_runtime, unit_settings

PARTITIONS = 4
START = parse_time_ms("2026-05-04T00:00:00Z")
assert START is not None
LATENESS_MS = 600_000
PLAN = SegmentDimension("plan", "traits", values=("free", "team", "business"))
PLAN_SPEC = SegmentSpec("plan", "traits", ("free", "team", "business"))
#: Where a producer puts an event: (key, partition) for the event's user and its position.
Placement = Callable[[str, int], tuple[bytes | None, int]]
MURMUR2 = HomePartitions(PARTITIONS, 10_000)
PLACEMENTS: dict[str, Placement] = {
    # Kafka's Java client (and aiokafka): murmur2 of the key.
    "murmur2": lambda user, i: (user.encode(), MURMUR2(user.encode())),
    # librdkafka's default (confluent-kafka, Go, .NET, Node, C): CRC32 of the key.
    "consistent_random": lambda user, i: (user.encode(), zlib.crc32(user.encode()) % PARTITIONS),
    # No key: round robin.
    "unkeyed": lambda user, i: (None, i % PARTITIONS),
}


def stream(seed: int, outliers: float = 0.0) -> tuple[list[dict[str, Any]], set[str]]:
    """A month of 240 users' events in arrival order (out of order within the lateness, retries),
    with a share of them stamped hours to days ahead (device clocks): (events, their ids)."""
    events = generate(seed=seed, users=240, days=30, start_ms=START, lateness_ms=LATENESS_MS, late_share=0.0)
    rng = random.Random(seed)
    shift: dict[str, int] = {}  # by event id: a retry carries the same wrong time as its original
    docs = []
    for doc in events.arrivals:
        event_id = doc["event_id"]
        if event_id not in shift:
            wrong = doc["type"] != "identify" and rng.random() < outliers
            shift[event_id] = rng.randrange(2 * MS_PER_HOUR, 6 * MS_PER_DAY) if wrong else 0
        docs.append(dict(doc, timestamp=doc["timestamp"] + shift[event_id]))
    return docs, {event_id for event_id, by in shift.items() if by}


def replay(docs: list[dict[str, Any]], placement: Placement, pump_every: int, through: int) -> dict[str, Any]:
    """Every event through a four-partition runtime with every capability; the re-key topic is
    delivered after every ``pump_every`` events (the rest of the time it lags); then the stream is
    closed through ``through``. Returns every output, canonical."""
    # Every partition reports every day from the first one (``start_date``, as documented), not
    # from the first day its watermark happened to show.
    settings = unit_settings(partitions=PARTITIONS, allowed_lateness_s=LATENESS_MS / 1000,
                             activity={"segments": (PLAN,), "provisional_interval_s": 0.0, "start_date": "2026-05-04"})
    runtime, _, sink = unit_runtime(settings, build_capabilities(settings))
    loop = Loopback(runtime, sink)
    for i, doc in enumerate(docs):
        key, partition = placement(doc["user_id"], i)
        offset = loop.offsets.get(partition, 0)
        loop.offsets[partition] = offset + 1
        runtime.handle(partition, key, orjson.dumps(doc), offset, doc["timestamp"] + 60_000)
        if i % pump_every == 0:
            loop.pump()
    loop.pump()
    loop.close(through)
    canonical = lambda d: orjson.dumps(d, option=orjson.OPT_SORT_KEYS)  # noqa: E731
    out: dict[str, Any] = {"outcomes": {k: v for k, v in runtime.outcomes.items() if k != "rekeyed"},
                           "late": runtime.dead_letter_reasons.get("late", 0)}
    # A session's ``segments`` are the user's values when it closes: a value set later the same
    # day can be known by then or not (the one output field that is not a function of event time).
    out["sessions"] = sorted(canonical({k: v for k, v in d.items() if k != "segments"})
                             for d in sink.values(settings.sessions_topic))
    out["signals"] = sorted(canonical(d) for d in sink.values(settings.signals_topic))
    # A partial notes the watermark it was published at (a diagnostic: not summed into anything).
    out["finals"] = sorted(canonical({k: v for k, v in d.items() if k != "watermark"})
                           for d in sink.values(settings.partials_topic) if d["final"])
    out["users"] = {p: proc.figures()["users"] for p, proc in runtime.processors.items()}
    return out


def last_regular(docs: list[dict[str, Any]], ahead: set[str]) -> int:
    """The newest event time of the events stamped by a right clock: the stream is closed there."""
    return max(d["timestamp"] for d in docs if d["event_id"] not in ahead)


@pytest.fixture(scope="module")
def clocks_ahead() -> tuple[list[dict[str, Any]], set[str], dict[str, dict[str, Any]]]:
    docs, ahead = stream(seed=7, outliers=0.01)
    through = last_regular(docs, ahead)
    return docs, ahead, {f"{name}/{pump}": replay(docs, place, pump, through) for name, place in PLACEMENTS.items()
                         for pump in (1, 997)}


def test_every_partitioner_and_every_delivery_give_the_same_outputs(
        clocks_ahead: tuple[list[dict[str, Any]], set[str], dict[str, dict[str, Any]]]) -> None:
    docs, ahead, runs = clocks_ahead
    reference = runs["murmur2/1"]
    assert reference["late"] == 0 and len(ahead) > 15
    assert len(reference["sessions"]) > 1000 and len(reference["finals"]) > 100 and reference["signals"]
    for name, run in runs.items():
        assert run["outcomes"] == reference["outcomes"], name
        for part in ("sessions", "signals", "finals", "users"):
            assert run[part] == reference[part], f"{name}: {part}"


def test_outputs_equal_the_batch_references_with_clocks_running_ahead(
        clocks_ahead: tuple[list[dict[str, Any]], set[str], dict[str, dict[str, Any]]]) -> None:
    """Events stamped hours to days ahead are kept, at their own times: the day figures, lifecycle
    changes and sessions are those of a batch over the events as stamped."""
    docs, ahead, runs = clocks_ahead
    run = runs["unkeyed/997"]
    settings = unit_settings(partitions=PARTITIONS, allowed_lateness_s=LATENESS_MS / 1000)
    days = LocalDays("UTC")
    accepted = list({d["event_id"]: d for d in docs}.values())
    last = days.date(last_regular(docs, ahead))  # closed through this day: it and every one before are final
    sessions = [orjson.loads(s) for s in run["sessions"]]
    expected_sessions = [s for s in session_batch.sessions(accepted, settings) if days.date(s["end_ms"]) <= last]
    assert sorted(map(session_batch.comparable, sessions)) == sorted(map(session_batch.comparable, expected_sessions))
    finals: dict[str, dict[str, Any]] = {}
    for raw in run["finals"]:
        partial = orjson.loads(raw)
        if partial["kind"] == "activity_day":
            finals.setdefault(partial["period"], {})[partial["partition"]] = partial["figures"]
    first = min(days.date(d["timestamp"]) for d in accepted if d["type"] != "identify")
    expected = batch_figures(accepted, "UTC", 14, [PLAN_SPEC], first, last)
    assert sorted(finals) == sorted(expected)
    for day, want in expected.items():
        total: dict[str, Any] = {}
        for figures in finals[day].values():
            total = add_figures(total, figures)
        assert normalized(total) == want, day
    signals = [orjson.loads(s) for s in run["signals"]]
    got = {(s["user_id"], s["from"], s["to"], s["day"]) for s in signals if s["type"] == "lifecycle" and s["day"] <= last}
    assert got == batch_transitions(accepted, "UTC", 14, last)


def test_the_source_watermark_follows_what_users_agree_on() -> None:
    """Checked against a plain computation of the rule (tests/support/evidence.py) over random
    streams: every watermark value and every late judgement is the same."""
    rng = random.Random(3)
    for users in (1, 5, 40, 600):
        clock, reference = SourceClock(lateness_ms=1000, idle_ms=10**9), ReferenceWatermark(1000)
        now = 10**12
        for _ in range(3000):
            now += rng.randrange(0, 2000)
            user = f"u{rng.randrange(users)}"
            ts = now + (rng.randrange(10**7) if rng.random() < 0.01 else -rng.randrange(0, 3000))
            assert clock.is_late(ts) == reference.is_late(ts)
            if clock.is_late(ts):
                continue
            clock.observe(zlib.crc32(user.encode()), ts)
            reference.observe(user, ts)
            assert clock.value == reference.value


def test_a_fast_clock_moves_nothing_but_a_real_new_day_does() -> None:
    """One device sends 500 events stamped a week ahead: the watermark stays with the others.
    A day-granular log (every event of a day at 23:59:59): the next day's first events are a day
    ahead, and the watermark follows once 1 in 16 of the users shows the new day."""
    clock = SourceClock(lateness_ms=600_000, idle_ms=10**9)
    day = 20_000 * MS_PER_DAY
    for u in range(300):
        clock.observe(u, day + u * 1000)
    for _ in range(500):
        clock.observe(10**6, day + 7 * MS_PER_DAY)
    assert clock.value < day + 300 * 1000  # where the other users are, not a week ahead
    stamp = day + MS_PER_DAY - 1000  # 23:59:59
    kdd = SourceClock(lateness_ms=600_000, idle_ms=10**9)
    for u in range(256):
        kdd.observe(u, stamp)
    moved = [kdd.observe(u, stamp + MS_PER_DAY) for u in range(20)]
    assert moved.index(True) == 15  # the 16th user of the new day
    assert kdd.value == stamp + MS_PER_DAY - 600_000
