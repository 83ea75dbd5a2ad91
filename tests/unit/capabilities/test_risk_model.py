"""The risk model's pieces against independent computations: the online Newton logistic
regression against a batch fit, the cuts against hand-counted labels."""

from __future__ import annotations

import math
import random

import msgpack
import pytest

from streams.capabilities.risk_model import Cuts, Logit, PartitionModel, contributions, odds_point


def _data(n: int, seed: int) -> list[tuple[list[float], int]]:
    """Labels drawn from a known logistic model: w = (1.5, -2.0), intercept -0.5."""
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        x = [rng.gauss(0, 1), rng.random()]
        z = 1.5 * x[0] - 2.0 * x[1] - 0.5
        out.append((x, 1 if rng.random() < 1 / (1 + math.exp(-z)) else 0))
    return out


def _batch_fit(data: list[tuple[list[float], int]], prior: list[float], steps: int = 30) -> list[float]:
    """Maximum a posteriori logistic regression by Newton's method (Gaussian prior), written
    from the textbook with a 3x3 Gauss-Jordan solve: shares nothing with the online version."""
    w = [0.0, 0.0, 0.0]
    for _ in range(steps):
        grad = [w[i] / prior[i] for i in range(3)]
        hess = [[(1 / prior[i] if i == j else 0.0) for j in range(3)] for i in range(3)]
        for x, y in data:
            xb = [x[0], x[1], 1.0]
            p = 1 / (1 + math.exp(-sum(a * b for a, b in zip(w, xb))))
            for i in range(3):
                grad[i] += (p - y) * xb[i]
                for j in range(3):
                    hess[i][j] += p * (1 - p) * xb[i] * xb[j]
        m = [row[:] + [g] for row, g in zip(hess, grad)]
        for i in range(3):
            pivot = m[i][i]
            m[i] = [v / pivot for v in m[i]]
            for k in range(3):
                if k != i:
                    f = m[k][i]
                    m[k] = [a - f * b for a, b in zip(m[k], m[i])]
        w = [w[i] - m[i][3] for i in range(3)]
    return w


def test_one_pass_of_newton_steps_lands_near_the_batch_fit() -> None:
    data = _data(3000, seed=1)
    online = Logit(2, prior_variance=1.0, intercept_variance=10.0, memory=0)
    for x, y in data:
        online.learn(x, y)
    batch = _batch_fit(data, prior=[1.0, 1.0, 10.0])
    assert online.w == pytest.approx(batch, abs=0.08)
    assert batch == pytest.approx([1.5, -2.0, -0.5], abs=0.25)  # and both near the truth


def test_forgetting_follows_a_change() -> None:
    """The truth flips sign halfway: with a memory of 500 labels the model follows it."""
    first, second = _data(3000, seed=2), [(x, 1 - y) for x, y in _data(3000, seed=3)]
    model = Logit(2, memory=500)
    for x, y in first + second:
        model.learn(x, y)
    assert model.w[0] < -1.0 and model.w[1] > 1.0


def test_state_round_trips_through_msgpack_and_stays_deterministic() -> None:
    data = _data(500, seed=4)
    a, b = PartitionModel(2, memory=1000), PartitionModel(2, memory=1000)
    for x, y in data[:250]:
        a.learn(x, y)
        b.learn(x, y)
    restored = PartitionModel(2, memory=1000).load(msgpack.unpackb(msgpack.packb(a.dump())))
    for x, y in data[250:]:
        restored.learn(x, y)
        b.learn(x, y)
    assert restored.dump() == b.dump()
    assert PartitionModel(3).load(a.dump()).positives == 0  # other features: starts over


def test_cuts_from_hand_counted_labels() -> None:
    """Bins 0.9: 8 churned, 2 stayed; 0.5: 2 churned, 8 stayed; 0.1: 0 churned, 20 stayed. Base
    rate 10/40. Precision above 0.9: 0.8; above 0.5: 10/20 = 0.5; above 0.1: 0.25."""
    cuts = Cuts(memory=0)
    for p, pos, neg in ((0.91, 8, 2), (0.55, 2, 8), (0.15, 0, 20)):
        for _ in range(pos):
            cuts.add(p, 1)
        for _ in range(neg):
            cuts.add(p, 0)
    assert cuts.base == 0.25
    assert (cuts.precision_cut(0.7), cuts.precision_cut(0.5), cuts.precision_cut(0.9)) == (0.91, 0.55, 1.0)
    # odds three times the base's (1/3 -> 1): 0.5, below the 0.7-precision cut
    assert odds_point(0.25, 3.0) == pytest.approx(0.5)
    assert cuts.cut(precision=0.7, odds=3.0) == 0.91
    assert cuts.cut(precision=0.2, odds=1.0) == pytest.approx(0.25)  # every cut is precise enough: the odds decide


def test_contributions_are_probability_points_against_the_centre() -> None:
    model = Logit(2)
    model.w = [2.0, -1.0, 0.0]
    x, centre = [1.0, 0.0], [0.0, 0.0]
    p = 1 / (1 + math.exp(-2.0))
    assert contributions(model, x, centre) == pytest.approx([p - 0.5, 0.0])
