"""Sessionization and active time, unit level: a real Runtime over a fake table and sink, compared
with the batch reference of tests/sessionbatch.py."""

from __future__ import annotations

import itertools
import random
from typing import Any

import orjson
import pytest
from jsonschema import Draft202012Validator, FormatChecker

from streams.config import MS_PER_DAY, MS_PER_MINUTE, SCHEMAS_DIR, SESSION_SCHEMA_FILE, ConfigError
from streams.runtime.metrics import build_registry, describe
from tests.support import session_batch as sessionbatch
from tests.support.fakes import unit_settings
from tests.support.session_data import T0, Pipeline, canonical, doc, scenario

SCHEMA = Draft202012Validator(orjson.loads((SCHEMAS_DIR / SESSION_SCHEMA_FILE).read_bytes()),
                              format_checker=FormatChecker())


def compare(pipeline: Pipeline) -> list[dict[str, Any]]:
    """Assert the emitted sessions equal the reference over the accepted events; return them."""
    emitted = pipeline.sessions()
    expected = sessionbatch.sessions(pipeline.accepted, pipeline.settings)
    assert sorted(map(sessionbatch.comparable, emitted)) == sorted(map(sessionbatch.comparable, expected))
    return emitted


def test_worked_example_from_the_docs() -> None:
    """docs/sessions-and-usage.md#sessions-active-time-core-actions-and-feature-usage: 10:00 page, 10:02 ping, 10:10 feature, 10:40 (30 min gap: same session), 10:41."""
    p = Pipeline()
    p.feed([doc("a", 0, "reports", kind="page"), doc("b", 2, "page_ping"),
            doc("c", 10, "feature_used", properties={"feature": "reports"}),
            doc("d", 40, "report_created"), doc("e", 41, "page_ping")])
    p.sweep()
    (session,) = p.sessions()
    assert session["start"] == "2026-11-02T10:00:00.000Z" and session["end"] == "2026-11-02T10:41:00.000Z"
    assert session["duration_s"] == 41 * 60
    assert session["active_time_s"] == (2 + 5 + 5 + 1) * 60  # 2, 8 -> 5, 30 -> 5, 1 minutes
    assert session["event_count"] == 5
    assert (session["entry_event"], session["exit_event"]) == ("reports", "report_created")
    assert session["core_actions"] == {"report_created": 1} and session["features"] == ["reports"]
    assert session["closed_by"] == "inactivity"


@pytest.mark.parametrize("gap_ms, sessions", [(29 * MS_PER_MINUTE, 1), (30 * MS_PER_MINUTE, 1),
                                               (30 * MS_PER_MINUTE + 1, 2), (31 * MS_PER_MINUTE, 2)])
def test_a_gap_longer_than_the_timeout_starts_a_new_session(gap_ms: int, sessions: int) -> None:
    p = Pipeline()
    p.feed([doc("a", 0), doc("b", gap_ms / MS_PER_MINUTE)])
    p.sweep()
    assert len(compare(p)) == sessions


def test_a_session_never_exceeds_the_maximum_length() -> None:
    p = Pipeline(sessions={"max_length_s": 3600.0})
    p.feed([doc(f"e{i}", 20 * i) for i in range(10)])  # every 20 minutes for 3 hours
    p.sweep()
    emitted = sorted(compare(p), key=lambda s: s["start_ms"])
    assert [(s["start_ms"] - T0) // MS_PER_MINUTE for s in emitted] == [0, 80, 160]
    assert [s["closed_by"] for s in emitted] == ["max_length", "max_length", "inactivity"]
    assert all(s["duration_s"] <= 3600 for s in emitted)


def test_out_of_order_within_the_lateness_extends_and_merges() -> None:
    """Two runs 40 minutes apart are separate sessions until a late event bridges them."""
    p = Pipeline(allowed_lateness_s=3600)
    assert p.feed([doc("a", 0), doc("b", 5), doc("d", 45), doc("e", 50), doc("c", 25)]) == ["applied"] * 5
    p.sweep()
    (session,) = compare(p)
    assert session["event_count"] == 5 and session["duration_s"] == 50 * 60
    # Every delivery order of the same events gives the same sessions (each is within the lateness).
    events = [doc("a", 0), doc("b", 5), doc("c", 25), doc("d", 45), doc("e", 50, "report_created")]
    results = set()
    for order in itertools.permutations(events):
        q = Pipeline(allowed_lateness_s=3600)
        assert q.feed(list(order)) == ["applied"] * 5
        q.sweep()
        results.add(tuple(sorted(map(sessionbatch.comparable, compare(q)))))
    assert len(results) == 1


def test_silent_users_are_closed_by_the_sweep_not_by_their_next_event() -> None:
    p = Pipeline()
    p.feed([doc("a", 0), doc("b", 1)])
    assert p.sessions() == []
    assert p.runtime.processor(0).figures()["sessions_in_progress"] == 1
    p.sweep(days=0.01)  # 14 minutes of idle advance: not yet past last + 30 min + lateness
    assert p.sessions() == []
    p.sweep()
    assert len(p.sessions()) == 1
    assert p.runtime.processor(0).figures()["sessions_in_progress"] == 0


def test_randomized_streams_equal_the_batch_reference_and_validate() -> None:
    stream, _, retries = scenario(seed=3, users=60, start_ms=T0)
    p = Pipeline(sessions={"max_length_s": 2 * 3600.0})
    outcomes = p.feed(stream)
    assert outcomes.count("duplicate") == retries and outcomes.count("late") == 5
    p.sweep()
    emitted = compare(p)
    assert len(emitted) > 300
    assert {s["closed_by"] for s in emitted} == {"inactivity", "max_length"}
    for session in emitted:
        SCHEMA.validate(session)
    assert len({s["session_id"] for s in emitted}) == len(emitted)
    assert p.runtime.processor(0).figures()["sessions_in_progress"] == 0
    # Nothing of the sessions capability is left in the records once every day is final.
    p.runtime.flush()
    assert not any("s" in state.ext for _, state in p.runtime.store.items(0))


def test_restart_mid_stream_emits_the_same_sessions_as_an_uninterrupted_run() -> None:
    stream, _, _ = scenario(seed=5, users=40, start_ms=T0)
    clean = Pipeline()
    clean.feed(stream)
    clean.sweep()

    first = Pipeline()
    cut = len(stream) // 2
    first.feed(stream[:cut])
    first.runtime.flush()
    before = {canonical(s) for s in first.sessions()}
    restarted = Pipeline(table=first.table.recovered())
    restarted.offset = cut
    restarted.feed(stream[cut:])
    restarted.sweep()
    after = {canonical(s) for s in restarted.sessions()}
    assert before | after == {canonical(s) for s in clean.sessions()}
    assert not before & after
    # The per-day session figures are rebuilt from the records: the final ones agree too.
    merged = {**first.partials("sessions_day"), **restarted.partials("sessions_day")}
    assert merged == clean.partials("sessions_day")


def test_sessions_day_snapshot_and_prometheus_histograms() -> None:
    p = Pipeline()
    p.feed([doc("a", 0), doc("b", 3), doc("c", 120), doc("d", 200, user="u2")])
    p.sweep()
    day = p.partials("sessions_day")["2026-11-02"]
    assert day["sessions"] == 3
    assert day["duration_ms_sum"] == 3 * MS_PER_MINUTE and day["active_time_ms_sum"] == 3 * MS_PER_MINUTE
    assert day["duration_seconds_buckets"]["60"] == 2 and day["duration_seconds_buckets"]["300"] == 3
    assert day["duration_seconds_buckets"]["+Inf"] == 3
    samples = describe(build_registry(p.runtime))
    assert samples[("engagement_session_duration_seconds_count", ())] == 3
    assert samples[("engagement_session_duration_seconds_bucket", (("le", "60.0"),))] == 2
    assert samples[("engagement_session_active_time_seconds_sum", ())] == 180
    assert samples[("engagement_sessions_open", ())] == 0
    # Counters never go down when the partition is handed over, nor double when it comes back.
    registry = build_registry(p.runtime)
    p.runtime.revoke([0])
    assert describe(registry)[("engagement_session_duration_seconds_count", ())] == 3
    p.runtime.processor(0)
    assert describe(registry)[("engagement_session_duration_seconds_count", ())] == 3


def test_bad_session_settings_name_the_key() -> None:
    with pytest.raises(ConfigError, match="sessions.inactivity_timeout_s"):
        unit_settings(sessions={"inactivity_timeout_s": 0})
    with pytest.raises(ConfigError, match="sessions.duration_buckets_s"):
        unit_settings(sessions={"duration_buckets_s": [60, 30]})
    with pytest.raises(ConfigError, match="unknown setting"):
        unit_settings(sessions={"timeout": 5})


def test_random_order_property() -> None:
    """Many small random scenarios, each in a random delivery order within the lateness."""
    rng = random.Random(17)
    for seed in range(20):
        stream, _, _ = scenario(seed=100 + seed, users=6, start_ms=T0 + rng.randint(0, MS_PER_DAY),
                                events_per_user=(2, 25), too_late=0, retries=0.1)
        p = Pipeline(sessions={"max_length_s": 3600.0, "idle_threshold_s": 120.0})
        p.feed(stream)
        p.sweep()
        compare(p)


def test_other_capabilities_are_told_when_sessions_start_and_close() -> None:
    from streams.core.capability import PartitionCapability

    heard: list[tuple[str, dict[str, Any]]] = []

    class Listener(PartitionCapability):
        def on_notice(self, key: bytes, state: Any, kind: str, payload: Any) -> None:
            if kind.startswith("session_"):
                heard.append((kind, dict(payload)))

    class Capability:
        name = "listener"

        def for_partition(self, ctx: Any) -> Listener:
            return Listener(ctx)

    p = Pipeline()
    p.runtime.capabilities.append(Capability())
    p.feed([doc("a", 0), doc("b", 2), doc("c", 3, "page_ping")])
    p.sweep()
    assert [kind for kind, _ in heard] == ["session_started", "session_closed"]
    assert heard[0][1] == {"start_ms": T0}
    closed = heard[1][1]
    assert (closed["start_ms"], closed["end_ms"]) == (T0, T0 + 3 * MS_PER_MINUTE)
    assert (closed["duration_ms"], closed["active_ms"], closed["events"]) == (3 * MS_PER_MINUTE,) * 2 + (3,)
