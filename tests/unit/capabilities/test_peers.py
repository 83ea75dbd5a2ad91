"""Peer percentiles from bucket counts against a plain mid-rank over the peers' latest values."""

from __future__ import annotations

import random

import pytest

from streams.capabilities.peers import ALL, PeerRanks, PeerScale, log_bucket
from streams.config import MIN_PEERS

DAY = 20_600


def mid_rank(values: list[float], own: float) -> float:
    """Peers below plus half the ties (the user's own value among them), over the group size."""
    return (sum(v < own for v in values) + sum(v == own for v in values) / 2) / len(values)


def test_buckets_keep_the_order_of_values_and_are_exact_where_promised() -> None:
    values = list(range(0, 5000)) + [10 ** 5, 10 ** 7, 10 ** 9]
    buckets = [log_bucket(v, 9) for v in values]
    assert buckets == sorted(buckets)  # monotone: never reverses an order
    assert buckets[:512] == list(range(512))  # exact below 512
    # above: 32 buckets per doubling, so values within a bucket differ by less than 1/32
    for v in (600, 1_000, 4_999):
        same = [w for w in values if log_bucket(w, 9) == log_bucket(v, 9)]
        assert (max(same) - min(same)) / min(same) < 1 / 32


def test_percentiles_equal_the_mid_rank_of_the_latest_values_within_the_group() -> None:
    rng = random.Random(8)
    scale = PeerScale(horizon_days=60, core_kinds=4)
    peers = PeerRanks(scale)
    latest: dict[int, tuple[str | None, list[int]]] = {}
    for step in range(3000):
        user = rng.randrange(400)
        group = rng.choice(("free", "team", "rare", None)) if user % 50 else "rare"
        if user in latest:  # a user's new values replace their previous ones
            peers.remove(*latest[user])
        if rng.random() < 0.05:  # leaves scope
            latest.pop(user, None)
            continue
        buckets = scale.buckets(DAY - rng.randrange(61), rng.randrange(15), rng.randrange(70), rng.randrange(400),
                                rng.randrange(250), rng.randrange(5), rng.choice((None, rng.random() * 1.5)))
        peers.add(group, buckets)
        latest[user] = (group, buckets)
        if step % 37:
            continue
        members = [b for g, b in latest.values() if g == group]
        if group is None or len(members) < MIN_PEERS:  # a small group is ranked among everyone
            members = [b for _, b in latest.values()]
        got = peers.percentiles(group, buckets, DAY)
        want = [mid_rank([m[i] for m in members], buckets[i]) for i in range(5)]
        assert got == pytest.approx(want)
    assert peers.groups[ALL].members == len(latest)
