"""The decoded-record cache: bounded, yet hot users are never decoded again with the default size."""

from __future__ import annotations

import pytest

from streams.config import load_settings
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
