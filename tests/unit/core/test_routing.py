"""Home partitions: Kafka's murmur2 exactly, remembered for recent users only (bounded memory)."""

from __future__ import annotations

import random

import pytest
from aiokafka.partitioner import murmur2 as aiokafka_murmur2

from streams.core import routing
from streams.core.routing import HomePartitions, murmur2


def test_murmur2_equals_aiokafka_for_every_length_and_byte() -> None:
    rng = random.Random(5)
    keys = [bytes(rng.randrange(256) for _ in range(length)) for length in range(48) for _ in range(200)]
    keys += [f"u{i:07d}".encode() for i in range(2000)] + [b"", b"\xff" * 9, "ü-éß".encode()]
    assert [murmur2(k) for k in keys] == [aiokafka_murmur2(k) for k in keys]


def test_home_partition_is_kafkas_default_partition_through_evictions() -> None:
    home = HomePartitions(7, cache_size=50)
    rng = random.Random(9)
    keys = [f"user-{rng.randrange(400)}".encode() for _ in range(5000)]
    assert [home(k) for k in keys] == [(aiokafka_murmur2(k) & 0x7FFFFFFF) % 7 for k in keys]
    assert len(home) <= 100


def test_hot_users_are_never_hashed_again_while_cold_users_stream_past(monkeypatch: pytest.MonkeyPatch) -> None:
    hashed: list[bytes] = []
    real = routing.murmur2
    monkeypatch.setattr(routing, "murmur2", lambda key: hashed.append(key) or real(key))
    home = HomePartitions(4, cache_size=100)
    hot = [f"hot-{i}".encode() for i in range(30)]
    cold = (f"cold-{i}".encode() for i in range(10_000))
    for _ in range(200):  # each round: every hot user once, then 50 users never seen before
        for key in hot:
            home(key)
        for _ in range(50):
            home(next(cold))
    assert sorted(k for k in hashed if k.startswith(b"hot")) == sorted(hot)
    assert len(hashed) == len(hot) + 10_000
    assert len(home) <= 200
