"""A real worker process on the embedded broker: outcomes, dead letters and crash recovery, exactly."""

from __future__ import annotations

import asyncio
import random
from collections import Counter
from typing import Any

import orjson
import pytest

from streams.config import MS_PER_MINUTE, RESERVED_KEY_PREFIX, Settings
from streams.core.contract import parse_time_ms
from streams.core.state import UserState
from streams.tools.close import close_stream
from streams.tools.kafkaio import consume, read_json, send_all
from tests.support.wait import wait_for

pytestmark = pytest.mark.integration
T0 = parse_time_ms("2026-10-01T08:00:00Z")
assert T0 is not None


def good(event_id: str, user: str, minute: float) -> dict[str, Any]:
    return {"event_id": event_id, "type": "track", "event": "clicked", "user_id": user,
            "timestamp": T0 + int(minute * MS_PER_MINUTE)}


def totals(worker: Any) -> dict[str, int]:
    doc = worker.figures()
    parts = doc["partitions"].values()
    return {"users": sum(p["users"] for p in parts), "events": sum(p["events"] for p in parts),
            "outcomes": doc["outcomes"]}


def changelog_state(settings: Settings) -> dict[str, UserState]:
    """The latest record per user in the state table's changelog: what any restart recovers."""
    async def read() -> dict[str, UserState]:
        latest: dict[str, UserState] = {}
        async for record in consume(settings, f"{settings.app_id}-users-changelog", idle_timeout=3):
            if record.key and record.value and not record.key.startswith(RESERVED_KEY_PREFIX):
                latest[record.key.decode()] = UserState.decode(record.value)
        return latest
    return asyncio.run(read())


def test_valid_duplicate_and_malformed_events_end_in_exactly_one_place(make_settings: Any, workers: Any) -> None:
    settings = make_settings()
    valid = [good(f"e{i}", f"user-{i % 5}", i) for i in range(20)]
    # Retries within the lateness are duplicates; one older than its partition's watermark
    # (user-3 reached minute 18, lateness 10 minutes) is late, whether or not it was applied before.
    retries = [valid[17], valid[17], valid[3]]
    bad: list[tuple[bytes | None, bytes, str]] = [
        (b"user-1", b"{\"event_id\": ", "invalid_json"),
        (b"user-1", orjson.dumps({**good("w1", "user-1", 1), "user_id": 17}), "schema"),  # wrong type
        (b"user-2", orjson.dumps({k: v for k, v in good("w2", "user-2", 2).items() if k != "event_id"}), "schema"),
        (None, orjson.dumps({k: v for k, v in good("w3", "x", 3).items() if k != "user_id"}), "schema"),  # no identity
        (b"user-3", orjson.dumps({**good("w4", "user-3", 4), "properties": {"blob": "x" * 40_000}}), "too_large"),
        (b"user-3", orjson.dumps({**good("w5", "user-3", 5), "timestamp": "1901-01-01T00:00:00Z"}), "bad_timestamp"),
        (b"user-4", orjson.dumps({**good("w6", "user-4", 6), "timestamp": 9_999_999_999_999}), "bad_timestamp"),
        (b"user-4", b"", "empty"),
    ]
    records = [(d["user_id"].encode(), orjson.dumps(d)) for d in valid + retries] + [(k, v) for k, v, _ in bad]
    # Late: far older than everything else, sent after the watermark has moved on.
    late = good("late-1", "user-0", -120)
    asyncio.run(send_all(settings, records))
    worker = workers(settings).wait_ready(partitions=settings.partitions)
    wait_for(lambda: totals(worker)["outcomes"].get("applied") == len(valid), message="valid events applied")
    asyncio.run(send_all(settings, [(b"user-0", orjson.dumps(late))]))
    wait_for(lambda: totals(worker)["outcomes"].get("late") == 2, message="late events counted")
    # A partition without events holds every watermark back until it turns idle: close the stream.
    close_stream(settings)
    wait_for(lambda: totals(worker)["users"] == 5, message="every accepted event reached the capabilities")

    result = totals(worker)
    assert result["events"] == 20
    assert result["outcomes"] == {"applied": 20, "duplicate": 2, "dead_letter": len(bad), "late": 2}
    assert sum(result["outcomes"].values()) == len(records) + 1

    dead = wait_for(lambda: (lambda d: d if len(d) == len(bad) + 2 else None)(
        asyncio.run(read_json(settings, settings.dead_letter_topic, idle_timeout=2))), message="dead letters")
    assert Counter(d["reason"] for d in dead) == Counter([r for _, _, r in bad] + ["late", "late"])
    by_reason = {d["reason"]: d for d in dead}
    assert by_reason["invalid_json"]["payload"] == '{"event_id": '
    assert by_reason["too_large"]["truncated"] is True
    assert by_reason["too_large"]["payload_bytes"] > 40_000
    assert len(by_reason["too_large"]["payload"]) == settings.dead_letter_payload_bytes
    assert all(d["source"]["topic"] == settings.events_topic and d["message"] for d in dead)

    metrics = worker.get("/metrics").decode()
    assert 'engagement_events_total{outcome="applied"} 20.0' in metrics
    assert 'engagement_dead_letters_total{reason="bad_timestamp"} 2.0' in metrics


@pytest.mark.parametrize("store", ["memory://", "rocksdb://"])
def test_sigkill_mid_stream_then_restart_counts_exactly(make_settings: Any, workers: Any, store: str) -> None:
    rng = random.Random(11)
    users = [f"user-{i}" for i in range(400)]
    events = [good(f"ev-{i}", rng.choice(users), i / 25) for i in range(20_000)]
    retried = rng.sample(events, 1_000)  # producer retries: same event_id, later offsets
    stream = events + retried
    rng.shuffle(stream)  # out of order, still within the lateness: spread is < 10 minutes per 500 events
    stream.sort(key=lambda d: d["timestamp"] // (5 * MS_PER_MINUTE))
    expected_events = Counter(d["user_id"] for d in events)

    settings = make_settings(allowed_lateness_s=3600, store=store)
    asyncio.run(send_all(settings, ((d["user_id"].encode(), orjson.dumps(d)) for d in stream)))

    first = workers(settings, name="crashing").wait_ready(partitions=settings.partitions)
    wait_for(lambda: totals(first)["events"] > len(events) // 3, message="a third of the stream applied")
    first.kill()

    second = workers(settings, name="restarted").wait_ready(partitions=settings.partitions, timeout=90)
    wait_for(lambda: totals(second)["events"] == len(events), timeout=120,
             message=f"all {len(events)} distinct events applied after restart")
    final = totals(second)
    assert final["users"] == len(expected_events)
    assert final["outcomes"].get("late", 0) == 0
    assert final["outcomes"].get("dead_letter", 0) == 0

    # The durable state (what the next restart would recover) is exact per user, not only in total.
    second.stop()
    recovered = changelog_state(settings)
    assert {user: state.events for user, state in recovered.items()} == dict(expected_events)

    # An uninterrupted run over the same topic (its own group and table) agrees.
    clean_settings = settings.with_overrides(app_id=settings.app_id + "-clean")
    clean = workers(clean_settings, name="uninterrupted").wait_ready(partitions=settings.partitions)
    wait_for(lambda: totals(clean)["events"] == len(events), timeout=120, message="uninterrupted run done")
    assert totals(clean)["users"] == final["users"]
