"""Labels of the risk model's snapshots, and its features' fixed one-byte scale."""

from __future__ import annotations

import math

import pytest

from streams.capabilities.risk_learning import FEATURES, Pending, dequantize, features, phase, quantize, resolve

H, S = 7, 30


def test_labels_of_a_snapshot() -> None:
    """Snapshot on day 100: the horizon ends on day 107, the silence that decides runs 107..136."""
    snap = Pending(100, b"")
    assert resolve(snap, 103, 103, 0, H, S) is None  # active within the horizon: not known yet
    assert resolve(snap, 108, 108, 0, H, S) == 0     # still there after the horizon
    assert resolve(snap, 135, 104, 29, H, S) is None  # 29 silent days so far
    assert resolve(snap, 136, 104, 30, H, S) == 1     # 30 days, the account open on them
    assert resolve(snap, 136, 104, 6, H, S) == -1     # the account was closed but 6 of them: no label
    assert resolve(snap, 101, 100, 0, H, S, churned=True) == 1


def test_features_on_their_scale() -> None:
    facts = {"history_days": 40, "recency_days": 6, "gap_days": 2.0, "recent": [1, 1, 12, 2],
             "weekly_baseline": [4.0, 5.0, 80.0, 8.0], "negative_events": 0, "escalations": 5, "score": 37}
    x = features(facts, silence_open=3)
    expected = [math.log1p(6), math.log1p(3), 0, math.log1p(3), math.log1p(1), math.log1p(4), 0.25,
                math.log1p(40), math.log1p(12), math.log1p(2), 0, 3.0, 0.37]  # escalations capped at 3
    assert x == pytest.approx(expected, abs=max(f.top for f in FEATURES) / 255 / 2 + 1e-9)
    assert dequantize(quantize(x)) == x
    new = features({"history_days": 3, "recency_days": None, "gap_days": None, "recent": None,
                    "weekly_baseline": None, "score": None}, silence_open=0)
    assert new[0] == pytest.approx(math.log1p(3), abs=0.01) and new[2] == 1.0 and new[6] == pytest.approx(1.0, abs=0.01)


def test_phases_spread_users_over_the_period() -> None:
    days = [phase(f"user-{i}".encode(), 37) for i in range(3700)]
    assert min(days) == 0 and max(days) == 36 and all(60 < days.count(d) < 140 for d in range(37))
