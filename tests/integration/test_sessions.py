"""Two worker processes, four partitions, the embedded broker: every session on the sessions topic,
and every day's combined usage and session snapshots on the metrics topic, equal the batch
reference over the same accepted events."""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Any

import orjson
import pytest
from jsonschema import Draft202012Validator, FormatChecker

from streams.config import (
    SCHEMAS_DIR,
    SESSION_SCHEMA_FILE,
    ActivityConfig,
    SegmentDimension,
    SessionsConfig,
)
from streams.core.calendar import DayClock
from streams.tools.close import close_stream
from streams.tools.kafkaio import event_records, read_json, send_all
from tests.support import session_batch as sessionbatch
from tests.support.session_data import T0, scenario
from tests.support.wait import wait_for

pytestmark = pytest.mark.integration
CLOCK = DayClock("UTC")
DERIVED = ("engagement", "visits_per_active_user", "expected_visits_per_active_user", "cadence_ratio",
           "on_cadence_share_7d")


def owned(worker: Any) -> set[int]:
    return {int(p) for p in worker.figures()["partitions"]}


def metric_sum(workers: list[Any], name: str) -> float:
    total = 0.0
    for worker in workers:
        for line in worker.get("/metrics").decode().splitlines():
            if line.startswith(name + " "):
                total += float(line.split()[-1])
    return total


def test_sessions_and_usage_equal_the_batch_reference(make_settings: Any, workers: Any) -> None:
    start_day = CLOCK.label(CLOCK.day(T0))
    settings = make_settings(partitions=4, allowed_lateness_s=600,
                             sessions=SessionsConfig(max_length_s=7200.0),
                             activity=ActivityConfig(start_date=start_day, provisional_interval_s=0.0))
    stream, plans, retries = scenario(seed=23, users=120, start_ms=T0)

    first, second = workers(settings, "w1"), workers(settings, "w2")
    first.wait_ready(), second.wait_ready()
    wait_for(lambda: owned(first) | owned(second) == {0, 1, 2, 3} and owned(first) and owned(second)
             and not owned(first) & owned(second), timeout=90, message="two workers sharing four partitions")

    asyncio.run(send_all(settings, event_records(stream)))
    # Close the stream two days after the last event: every session is over, every day final.
    last_day = CLOCK.day(max(d["timestamp"] for d in stream)) + 2
    close_stream(settings, CLOCK.start(last_day))

    both = [first, second]
    sent = len(stream)
    wait_for(lambda: sum(sum(w.figures()["outcomes"].values()) for w in both) == sent
             and sum(w.figures()["closed"] for w in both) == settings.partitions, timeout=60,
             message=f"all {sent} messages judged, the close read")
    late = {orjson.loads(d["payload"])["event_id"]
            for d in asyncio.run(read_json(settings, settings.dead_letter_topic, idle_timeout=1)) if d["reason"] == "late"}
    assert sum(w.figures()["outcomes"].get("late", 0) for w in both) == len(late)
    unique = {d["event_id"]: d for d in stream}
    accepted = [d for i, d in unique.items() if i not in late]
    expected = sessionbatch.sessions(accepted, settings)

    def emitted() -> list[dict[str, Any]] | None:
        found = asyncio.run(read_json(settings, settings.sessions_topic, idle_timeout=1))
        return found if len(found) >= len(expected) else None

    sessions = wait_for(emitted, timeout=90, interval=1, message=f"{len(expected)} sessions")
    assert sorted(map(sessionbatch.comparable, sessions)) == sorted(map(sessionbatch.comparable, expected))
    schema = Draft202012Validator(orjson.loads((SCHEMAS_DIR / SESSION_SCHEMA_FILE).read_bytes()),
                                  format_checker=FormatChecker())
    for session in sessions:
        schema.validate(session)
        assert session["segments"]["plan"] == plans.get(session["user_id"], "unknown")
    assert len({s["session_id"] for s in sessions}) == len(sessions)
    assert {s["closed_by"] for s in sessions} == {"inactivity", "max_length"}

    days = range(CLOCK.day(T0), last_day + 1)

    def finals(kind: str, upto: int) -> dict[str, dict[str, Any]] | None:
        found: dict[str, dict[str, Any]] = {}
        for snap in asyncio.run(read_json(settings, settings.metrics_topic, idle_timeout=1)):
            if snap["kind"] == kind and snap["final"]:
                assert found.get(snap["period"], snap) == snap, "one final snapshot per day"
                found[snap["period"]] = snap
        return found if all(CLOCK.label(d) in found for d in range(days[0], upto + 1)) else None

    usage = wait_for(lambda: finals("usage_day", last_day), timeout=90, interval=1, message="final usage days")
    reference = sessionbatch.usage_days(accepted, settings, days, plans)
    for day in days:
        snap = usage[CLOCK.label(day)]
        assert snap["partitions_final"] == 4
        figures, want = dict(snap["figures"]), reference[day]
        for name in DERIVED:
            figures.pop(name)
        for feature in figures["features"].values():
            feature.pop("adoption")
        plan = figures.pop("segments")["plan"]
        for seg in plan.values():
            seg.pop("engagement")
        assert plan == want.pop("segments_plan"), day
        assert figures == want, day
        active, total = want["active_users"]["30d"], want["users_total"]
        assert snap["figures"]["engagement"] == (active / total) * (want["visits"]["30d"] / active if active else 0)
    assert max(reference[d]["active_users"]["1d"] for d in days) > 30

    session_days = wait_for(lambda: finals("sessions_day", last_day), timeout=60, interval=1,
                            message="final session days")
    by_day = Counter(CLOCK.label(CLOCK.day(s["end_ms"])) for s in expected)
    durations: Counter[str] = Counter()
    for s in expected:
        durations[CLOCK.label(CLOCK.day(s["end_ms"]))] += s["end_ms"] - s["start_ms"]
    for period, snap in session_days.items():
        assert snap["figures"]["sessions"] == by_day.get(period, 0), period
        assert snap["figures"]["duration_ms_sum"] == durations.get(period, 0), period

    assert metric_sum(both, "engagement_session_duration_seconds_count") == len(sessions)
    assert metric_sum(both, "engagement_sessions_open") == 0
    assert sum(w.figures()["outcomes"].get("duplicate", 0) for w in both) == retries


def test_sigkill_mid_stream_then_restart_emits_every_session_once_by_id(make_settings: Any, workers: Any) -> None:
    """A crash repeats work since the last commit; repeated sessions carry the same id and content,
    and the de-duplicated set equals the reference."""
    # Segment labels with configured values have fixed codes. (With first-seen admission a crash
    # can re-admit values in another order: see the report on activity's label codes.)
    plan = SegmentDimension("plan", "traits", values=("free", "team", "business"))
    settings = make_settings(partitions=4, allowed_lateness_s=600,
                             activity=ActivityConfig(segments=(plan, SegmentDimension("platform", "context"))))
    stream, _, _ = scenario(seed=31, users=500, start_ms=T0, too_late=0)
    asyncio.run(send_all(settings, event_records(stream)))

    def applied(worker: Any) -> int:
        return worker.figures()["outcomes"].get("applied", 0)

    crashing = workers(settings, "crashing").wait_ready(partitions=settings.partitions)
    wait_for(lambda: applied(crashing) > len(stream) // 3, timeout=90, message="a third of the stream applied")
    crashing.kill()
    restarted = workers(settings, "restarted").wait_ready(partitions=settings.partitions, timeout=90)

    close_stream(settings, max(d["timestamp"] for d in stream))
    expected = sessionbatch.sessions(list({d["event_id"]: d for d in stream}.values()), settings)

    def by_id() -> dict[str, dict[str, Any]] | None:
        found: dict[str, dict[str, Any]] = {}
        for session in asyncio.run(read_json(settings, settings.sessions_topic, idle_timeout=1)):
            assert found.get(session["session_id"], session) == session, "a repeated id repeats the session"
            found[session["session_id"]] = session
        return found if len(found) >= len(expected) else None

    sessions = wait_for(by_id, timeout=120, interval=1, message=f"{len(expected)} distinct sessions")
    assert sorted(map(sessionbatch.comparable, sessions.values())) == sorted(map(sessionbatch.comparable, expected))
    assert restarted.figures()["outcomes"].get("late", 0) == 0
