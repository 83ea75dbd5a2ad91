"""The state benchmark measures what it says: every distinct user has a record, sizes add up."""

from __future__ import annotations

from pathlib import Path

import pytest

from streams.config import load_settings
from streams.core.contract import Decoder
from streams.tools.bench_state import Workload, measure


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


def test_rocksdb_store_opens_with_the_bounded_options_not_fausts_defaults(tmp_path: Path) -> None:
    from streams.tools.bench_state import _faust_table

    settings = load_settings(env={}, overrides={"store": "rocksdb://", "rocksdb_block_cache_mb": 8,
                                                "rocksdb_write_buffer_mb": 4})
    options = _faust_table(settings, str(tmp_path)).data.rocksdb_options
    assert (options.block_cache_size, options.write_buffer_size) == (8 << 20, 4 << 20)
    assert options.max_write_buffer_number * options.write_buffer_size + options.block_cache_size < 64 << 20
