"""The state benchmark measures what it says: every distinct user has a record, sizes add up."""

from __future__ import annotations

import pytest

from streams.benchstate import Workload, measure
from streams.config import load_settings
from streams.contract import Decoder


def test_workload_events_are_valid_ordered_and_cover_every_user() -> None:
    workload = Workload(users=400, days=6, seed=3)
    settings = load_settings(env={})
    decoder = Decoder(settings)
    users, last = set(), 0
    for day in range(6):
        for ts, key, raw in workload.day(day):
            event = decoder.decode(raw, ts + 1000)
            assert event.__class__.__name__ == "Event", event
            assert ts >= last and event.ts == ts and event.user.encode() == key
            last = ts
            users.add(key)
    assert len(users) == 400


@pytest.mark.parametrize("store", ["memory://", "rocksdb://"])
def test_measure_reports_every_user_and_the_real_record_sizes(store: str) -> None:
    settings = load_settings(env={}, overrides={"store": store})
    result = measure(settings, users=300, days=5, seed=3, capabilities="activity", progress=False)
    assert result["records"] == 300 and result["activated_users"] == 300
    assert result["events_per_user"] >= 1
    assert 0 < result["activity_slot_bytes_per_user"] < result["state_bytes_per_user"] <= 200
    assert result["capabilities"] == ["activity"]
    if store == "rocksdb://":
        assert result["disk_bytes"] > 0
