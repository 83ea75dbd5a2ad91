"""Ingest judgement on the hot path: outcomes, de-duplication, lateness, re-keying, recovery."""

from __future__ import annotations

from typing import Any

import orjson

from streams.config import MS_PER_MINUTE
from streams.core.contract import parse_time_ms
from streams.core.routing import HomePartitions
from streams.core.sourceclock import SourceClock
from streams.core.state import UserState
from tests.support.fakes import Loopback, unit_runtime, unit_settings

T0 = parse_time_ms("2026-11-02T10:00:00Z")
assert T0 is not None


def ev(event_id: str, user: str = "u1", minute: float = 0, **extra: Any) -> bytes:
    doc = {"event_id": event_id, "type": "track", "event": "clicked", "user_id": user,
           "timestamp": T0 + int(minute * MS_PER_MINUTE)}
    doc.update(extra)
    return orjson.dumps(doc)


def feed(runtime: Any, messages: list[tuple[bytes | None, bytes]], partition: int = 0, start: int = 0) -> list[str]:
    return [runtime.handle(partition, key, raw, start + i, T0 + 3_600_000) for i, (key, raw) in enumerate(messages)]


def test_every_message_gets_one_outcome_and_counts_add_up() -> None:
    runtime, _, sink = unit_runtime()
    messages = [
        (b"u1", ev("a")), (b"u1", ev("b", minute=1)), (b"u1", ev("a")),  # retry of a
        (b"u2", b"{oops"), (b"u2", orjson.dumps({"type": "track"})), (None, b""),
        (b"u1", ev("c", minute=-30)),  # older than the watermark (lateness 10 min)
    ]
    outcomes = feed(runtime, messages)
    assert outcomes == ["applied", "applied", "duplicate", "dead_letter", "dead_letter", "dead_letter", "late"]
    assert sum(runtime.outcomes.values()) == len(messages)
    dead = sink.values(runtime.settings.dead_letter_topic)
    assert [d["reason"] for d in dead] == ["invalid_json", "schema", "empty", "late"]
    assert dead[0]["payload"] == "{oops" and dead[0]["source"]["offset"] == 3
    assert runtime.dead_letter_reasons == {"invalid_json": 1, "schema": 1, "empty": 1, "late": 1}


def test_dead_letter_payload_is_truncated_but_sized() -> None:
    runtime, _, sink = unit_runtime(unit_settings(dead_letter_payload_bytes=100))
    raw = b"\xff" + b"x" * 500
    feed(runtime, [(None, raw)])
    (record,) = sink.values(runtime.settings.dead_letter_topic)
    assert record["truncated"] is True and record["payload_bytes"] == 501
    assert record["payload_encoding"] == "base64"


def test_redelivery_after_restart_is_skipped_by_offset() -> None:
    runtime, table, _ = unit_runtime()
    feed(runtime, [(b"u1", ev("a")), (b"u1", ev("b", minute=1))])
    runtime.flush()
    # A crash after the flush but before the offset commit: the restarted worker recovers the
    # table from the changelog and sees the same messages again at the same offsets.
    restarted, _, _ = unit_runtime(table=table.recovered())
    again = feed(restarted, [(b"u1", ev("a")), (b"u1", ev("b", minute=1)), (b"u1", ev("c", minute=2))])
    assert again == ["duplicate", "duplicate", "applied"]
    assert restarted.processor(0).figures()["events"] == 3
    assert restarted.processor(0).figures()["users"] == 1


def test_recovered_watermark_keeps_lateness_decisions() -> None:
    runtime, table, _ = unit_runtime()
    feed(runtime, [(b"u1", ev("a", minute=60))])
    runtime.flush()
    restarted, _, _ = unit_runtime(table=table.recovered())
    assert restarted.processor(0).watermark.value == T0 + 50 * MS_PER_MINUTE
    assert feed(restarted, [(b"u2", ev("x", user="u2", minute=45))], start=5) == ["late"]


def test_every_event_id_within_the_horizon_is_recognised_however_many_a_user_sends() -> None:
    runtime, _, _ = unit_runtime()
    burst = [(b"u1", ev(f"e{i}", minute=i / 200)) for i in range(1000)]  # 1,000 events in 5 minutes
    assert feed(runtime, burst) == ["applied"] * 1000
    retries = [burst[i] for i in range(0, 1000, 7)]
    assert feed(runtime, retries, start=1000) == ["duplicate"] * len(retries)
    assert runtime.processor(0).figures()["events"] == 1000


def test_fingerprints_older_than_the_horizon_are_dropped_at_flush() -> None:
    runtime, table, _ = unit_runtime()
    feed(runtime, [(b"u1", ev(f"e{i}", minute=i)) for i in range(5)])
    # Another user moves event time on by an hour: u1's ids are older than watermark - lateness.
    feed(runtime, [(b"u2", ev(f"later-{i}", user="u2", minute=65 + i)) for i in range(2)], start=5)
    runtime.flush()
    stored = {key: UserState.decode(blob) for _, key, blob in table.changelog}
    assert stored[b"u1"].recent == {} and len(stored[b"u2"].recent) == 2
    # A copy of an old id would be older than the watermark: late, never applied twice.
    assert feed(runtime, [(b"u1", ev("e0", minute=0))], start=7) == ["late"]


def test_messages_outside_their_home_partition_are_forwarded_and_applied_there() -> None:
    settings = unit_settings(partitions=4)
    runtime, _, sink = unit_runtime(settings)
    loop = Loopback(runtime, sink)
    home = HomePartitions(4, 10)
    wrong = next(p for p in range(4) if p != home(b"u1"))
    assert loop.send(wrong, b"u1", ev("a"), T0) == "rekeyed"
    assert loop.send(home(b"u1"), None, ev("b", minute=1), T0) == "applied"  # unkeyed, but already home
    assert loop.send(wrong, None, ev("a"), T0) == "rekeyed"  # a retry through another partition
    forwarded = [(k, p) for t, k, _, p in sink.sent if t == settings.rekey_topic and k is not None]
    assert forwarded == [(b"u1", home(b"u1")), (b"u1", home(b"u1"))]
    assert runtime.outcomes == {"rekeyed": 2, "applied": 2, "duplicate": 1}
    # Partitions without events hold the watermark back: the events wait in u1's record ...
    assert runtime.processor(home(b"u1")).figures()["events"] == 0
    loop.close(T0)  # ... until the stream is closed (or those partitions turn idle)
    assert runtime.processor(home(b"u1")).figures()["events"] == 2


def test_a_forwarded_event_is_recognised_after_a_crash_of_its_source_or_its_home() -> None:
    settings = unit_settings(partitions=2)
    home = HomePartitions(2, 10)
    user = next(f"u{i}" for i in range(100) if home(f"u{i}".encode()) == 1)
    runtime, table, sink = unit_runtime(settings)
    loop = Loopback(runtime, sink)
    loop.send(0, user.encode(), ev("a", user=user), T0, offset=7)
    runtime.flush()
    # The source partition re-reads offset 7 after a crash and forwards it again; the home, after
    # its own restart, reads the re-key topic from where it committed: both are duplicates.
    restarted, _, sink2 = unit_runtime(settings, table=table.recovered())
    again = [(k, v, p) for t, k, v, p in sink.sent if t == settings.rekey_topic and k is not None]
    assert [restarted.handle_rekeyed(p, k, v, 0) for k, v, p in again] == ["duplicate"]
    loop2 = Loopback(restarted, sink2)
    assert loop2.send(0, user.encode(), ev("a", user=user), T0, offset=7) == "rekeyed"
    assert restarted.outcomes == {"duplicate": 2, "rekeyed": 1}
    loop2.close(T0)
    assert restarted.processor(1).figures()["events"] == 1


def test_flush_writes_each_dirty_user_once_then_the_partition_clock() -> None:
    from streams.core.processor import clock_key

    runtime, table, _ = unit_runtime()
    feed(runtime, [(f"u{i % 3}".encode(), ev(f"e{i}", user=f"u{i % 3}", minute=i / 10)) for i in range(30)])
    assert runtime.flush() == 4
    assert [key for _, key, _ in table.changelog][-1] == clock_key(0)
    assert runtime.flush() == 0  # nothing changed: not even the clock is written again
    decoded = {key: UserState.decode(blob).events for _, key, blob in table.changelog[:3]}
    assert decoded == {b"u0": 10, b"u1": 10, b"u2": 10}


def test_user_state_round_trip() -> None:
    state = UserState()
    state.last_offset, state.first_ts, state.max_ts, state.events, state.account = 41, T0, T0 + 5, 7, "acct"
    state.remember(b"12345678", T0)
    state.remember(b"87654321", 10**15)  # past 2106: kept as the largest time a record holds
    state.ext["x"] = [1, {"y": 2}]
    again = UserState.decode(state.encode())
    assert (again.last_offset, again.first_ts, again.max_ts, again.events, again.account, again.recent, again.ext) == \
        (41, T0, T0 + 5, 7, "acct", {b"12345678": T0 // 1000, b"87654321": 2**32 - 1}, {"x": [1, {"y": 2}]})


def test_idle_partition_advances_with_wall_clock_only_after_idle_period() -> None:
    clock = SourceClock(lateness_ms=1000, idle_ms=30_000)
    clock.read(0, wall_ms=0.0)
    assert clock.observe(1, 10_000)
    assert clock.value == 9_000
    assert not clock.idle_check(wall_ms=29_000, paused=False) and not clock.idle
    assert clock.idle_check(wall_ms=40_000, paused=False) and clock.idle
    assert clock.value == 10_000 + 40_000 - 1000
    assert not clock.observe(2, 5_000)  # older events never move it back
    paused = SourceClock(lateness_ms=1000, idle_ms=30_000)
    paused.observe(1, 10_000)
    assert not paused.idle_check(wall_ms=90_000, paused=True) and not paused.idle  # waiting, not quiet
    closed = SourceClock(lateness_ms=1000, idle_ms=30_000)
    closed.observe(1, 10_000)
    assert closed.close(50_000) and closed.value == 50_000
    assert closed.idle_check(wall_ms=90_000, paused=False) and closed.value == 50_000  # idle, not advanced


def test_notices_reach_the_other_capabilities_only() -> None:
    from streams.core.capability import PartitionCapability

    heard: list[tuple[str, str, bytes]] = []

    class Speaker(PartitionCapability):
        def on_event(self, key: bytes, state: UserState, event: Any) -> None:
            self.ctx.notify(key, state, "said", {"name": event.name})

        def on_notice(self, key: bytes, state: UserState, kind: str, payload: Any) -> None:
            heard.append(("speaker", kind, key))

    class Listener(PartitionCapability):
        def on_notice(self, key: bytes, state: UserState, kind: str, payload: Any) -> None:
            heard.append(("listener", f"{kind}:{payload['name']}", key))

    class Cap:
        def __init__(self, name: str, cls: type) -> None:
            self.name, self.cls = name, cls

        def for_partition(self, ctx: Any) -> PartitionCapability:
            return self.cls(ctx)

    runtime, _, _ = unit_runtime(capabilities=[Cap("speaker", Speaker), Cap("listener", Listener)])  # type: ignore[list-item]
    feed(runtime, [(b"u1", ev("a"))])
    assert heard == [("listener", "said:clicked", b"u1")]


def test_no_input_crashes_the_processor_and_every_message_is_accounted_for() -> None:
    import random

    rng = random.Random(5)
    base = orjson.loads(ev("seed"))
    values: list[Any] = [None, True, 0, -1, 2**70, 1.5, "", "x" * 300, [], {}, [1], {"a": None}, "2026-13-45T99:00:00Z",
                         "\udcff", "2026-11-02T10:00:00+25:00"]
    messages: list[tuple[bytes | None, bytes | None]] = []
    for i in range(3000):
        choice = rng.random()
        if choice < 0.3:
            doc = dict(base, event_id=f"r{i}")
            for _ in range(rng.randint(1, 3)):
                doc[rng.choice([*base, "sent_at", "anonymous_id", "traits", "context"])] = rng.choice(values)
            try:
                raw: bytes | None = orjson.dumps(doc)
            except TypeError:
                raw = repr(doc).encode()
        elif choice < 0.5:
            raw = bytes(rng.getrandbits(8) for _ in range(rng.randint(0, 64)))
        elif choice < 0.6:
            raw = None
        else:
            raw = ev(f"ok{i}", user=f"u{rng.randrange(20)}", minute=rng.uniform(-20, 60))
        key = rng.choice([None, b"", b"u1", b"\xff\xfe", f"u{rng.randrange(20)}".encode()])
        messages.append((key, raw))
    runtime, _, sink = unit_runtime()
    outcomes = [runtime.handle(0, key, raw, i, T0) for i, (key, raw) in enumerate(messages)]
    assert sum(runtime.outcomes.values()) == len(messages)
    dead = len(sink.values(runtime.settings.dead_letter_topic))
    assert dead == outcomes.count("dead_letter") + outcomes.count("late")
    assert outcomes.count("applied") > 0 and outcomes.count("dead_letter") > 0


def test_flush_writes_partition_tables_before_the_users_that_refer_to_them() -> None:
    from streams.config import RESERVED_KEY_PREFIX
    from streams.core.userstore import UserStore
    from tests.support.fakes import FakeTable

    table = FakeTable()
    store = UserStore(table, 100)
    for name in (b"u1", RESERVED_KEY_PREFIX + b"codes", b"u2"):
        store.mark_dirty(0, name, UserState())
    store.flush()
    assert [key for _, key, _ in table.changelog] == [RESERVED_KEY_PREFIX + b"codes", b"u1", b"u2"]


def test_a_record_holding_only_parked_events_is_no_user_after_a_restart() -> None:
    """Events too far ahead wait in the record; a restart re-parks them and counts no user (and no
    capability restores anything) until they are applied."""
    from streams.capabilities.registry import build_capabilities

    settings = unit_settings(partitions=2)
    home = HomePartitions(2, 10)
    user = next(f"u{i}" for i in range(100) if home(f"u{i}".encode()) == 1)
    runtime, table, sink = unit_runtime(settings, build_capabilities(settings))
    Loopback(runtime, sink).send(1, user.encode(), ev("a", user=user), T0)  # partition 0 unknown yet: parked
    runtime.flush()
    restarted, _, sink2 = unit_runtime(settings, build_capabilities(settings), table.recovered())
    proc = restarted.processor(1)
    assert (proc.users, proc.events, len(proc.parked)) == (0, 0, 1)
    Loopback(restarted, sink2).close(T0)
    assert (proc.users, proc.events) == (1, 1)
    assert proc.figures()["usage_users_total"] == 1  # counted once, when applied
