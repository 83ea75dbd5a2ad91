"""The decoded-record cache: bounded, yet hot users are never decoded again with the default size."""

from __future__ import annotations

import pytest

from streams.config import RESERVED_KEY_PREFIX, load_settings
from streams.core.state import UserState
from streams.core.userstore import UserStore
from tests.support.fakes import FakeTable


def test_hot_users_are_not_decoded_per_event_while_cold_users_stream_through(monkeypatch: pytest.MonkeyPatch) -> None:
    cache_users = load_settings(env={}).state_cache_users
    table = FakeTable()
    blob = UserState().encode()
    cold = [f"cold-{i}".encode() for i in range(60_000)]
    for key in cold:  # users recovered from the changelog: only their encoded records are in memory
        table.data.data[key] = blob
        table.data._key_partition[key] = 0
    store = UserStore(table, cache_users)
    decoded: list[int] = []
    real = UserState.decode.__func__  # type: ignore[attr-defined]
    monkeypatch.setattr(UserState, "decode", classmethod(lambda cls, b: decoded.append(1) or real(cls, b)))

    hot = [f"hot-{i}".encode() for i in range(5_000)]
    for key in hot:
        assert store.get(0, key) is None
        store.mark_dirty(0, key, UserState())
    store.flush()
    cold_seen = iter(cold)
    for _ in range(20):  # one flush interval: every hot user once, 3,000 cold users once each
        for key in hot:
            state = store.get(0, key)
            assert state is not None
            store.mark_dirty(0, key, state)
        for _ in range(3_000):
            key = next(cold_seen)
            state = store.get(0, key)
            assert state is not None
            store.mark_dirty(0, key, state)
        store.flush()
    assert len(decoded) == 20 * 3_000  # cold users only: each decoded once, hot users never
    assert len(store._cache) <= cache_users


def test_a_flush_in_slices_writes_each_dirty_record_once_partition_tables_first() -> None:
    table = FakeTable()
    store = UserStore(table, 100)
    users = [f"u{i}".encode() for i in range(25)]
    for key in users[:10]:
        store.mark_dirty(0, key, UserState())
    store.mark_dirty(0, RESERVED_KEY_PREFIX + b"codes", UserState())  # marked after some users
    for key in users[10:]:
        store.mark_dirty(1, key, UserState())
    assert store.flush_some(4) == 4  # the partition table goes first
    assert [key for _, key, _ in table.changelog] == [RESERVED_KEY_PREFIX + b"codes", *users[:3]]
    while store.dirty_count():
        assert store.flush_some(4) <= 4
    assert store.flush() == 0
    written = [key for _, key, _ in table.changelog]
    assert sorted(written) == sorted([RESERVED_KEY_PREFIX + b"codes", *users]) and len(set(written)) == 26
    assert [p for p, key, _ in table.changelog if key in users[10:]] == [1] * 15
