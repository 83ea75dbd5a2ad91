"""The learned half of churn risk: a small logistic model per partition, learned online from the
labels the product itself produces, and the probability cuts of the bands.

Why a model of our own, and this one. The issue asks for a calibrated probability learned from
the product's own history, with state that survives restarts and is the same whatever the number
of workers, updated deterministically in event-time order. A logistic regression over a dozen
features is enough for that signal (what matters is which features and which labels); what makes
or breaks it online is convergence: plain stochastic gradient steps (what online-learning
libraries such as ``river`` do by default) need a learning rate and feature scaling fitted to the
product, and on a real log they stayed far from the batch fit (AUC 0.70 against 0.85 on kdd2015
in our trials). :class:`Logit` takes a second-order step per label instead (the Laplace /
extended-Kalman update of Bayesian logistic regression: one pass gives what a batch refit would,
without a learning rate), with a forgetting factor so that the model follows a product that
changes. It is a few lines of plain Python floats: deterministic bit for bit on every machine
(no BLAS summation order), cheap (O(features²) per label), and its state is a list of floats that
goes into the partition's state table like any record.

Each partition learns from its own users: users are spread over partitions by a hash of their id,
so every partition sees a uniform sample of them, and a partition's labels arrive in the order of
its events. The model, its label counts and its cuts are therefore a function of the partition's
events alone: the same however many workers share the partitions, and the same after a restart
(the state is written with the user records at each commit).

:class:`Cuts` turns probabilities into bands: it keeps, per probability bin, recent labels (decayed
counts) and from them the base rate and the precision above each cut. A band's cut is the
loosest probability that keeps the band's target precision, and never below the probability at
which a user's odds of churning are ``odds`` times the product's typical odds: where the product
churns so much that every cut reaches the target precision (a course where most learners drop
out), the odds keep the band for users markedly more at risk than the typical one.
"""

from __future__ import annotations

import math
from typing import Any, Sequence

#: Probability bins of the cuts' label counts.
BINS = 100
MAX_MARGIN = 30.0


def sigmoid(z: float) -> float:
    z = -MAX_MARGIN if z < -MAX_MARGIN else MAX_MARGIN if z > MAX_MARGIN else z
    return 1.0 / (1.0 + math.exp(-z))


def odds_point(base: float, ratio: float) -> float:
    """The probability whose odds are ``ratio`` times the odds of ``base``."""
    base = min(max(base, 1e-6), 1 - 1e-6)
    odds = ratio * base / (1 - base)
    return odds / (1 + odds)


class Logit:
    """Online Bayesian logistic regression (Laplace approximation), one Newton step per label.

    ``w`` holds a weight per feature and the intercept last; ``cov`` the posterior covariance
    (row-major, symmetric). A label ``y`` for features ``x`` updates, with ``p = sigmoid(w . x)``
    and ``s = p (1 - p)``::

        cov <- cov / forget                       (older labels weigh less)
        c   = cov x;   q = x . c
        cov <- cov - s c c' / (1 + s q)           (Sherman-Morrison: the Hessian gains s x x')
        w   <- w - (p - y) c / (1 + s q)          (the Newton step with the updated covariance)
    """

    __slots__ = ("size", "w", "cov", "forget")

    def __init__(self, features: int, prior_variance: float = 1.0, intercept_variance: float = 10.0,
                 memory: float = 5000.0) -> None:
        n = self.size = features + 1
        self.w = [0.0] * n
        self.cov = [0.0] * (n * n)
        for i in range(n):
            self.cov[i * n + i] = intercept_variance if i == n - 1 else prior_variance
        self.forget = 1.0 - 1.0 / memory if memory > 0 else 1.0

    def margin(self, x: Sequence[float]) -> float:
        w = self.w
        return w[-1] + sum(wi * xi for wi, xi in zip(w, x))

    def probability(self, x: Sequence[float]) -> float:
        return sigmoid(self.margin(x))

    def learn(self, x: Sequence[float], y: int) -> None:
        n = self.size
        xb = [*x, 1.0]
        p = sigmoid(self.margin(x))
        s = max(p * (1.0 - p), 1e-4)
        cov = self.cov
        if self.forget != 1.0:
            scale = 1.0 / self.forget
            cov = self.cov = [v * scale for v in cov]
        c = [sum(cov[i * n + j] * xb[j] for j in range(n)) for i in range(n)]
        q = sum(xi * ci for xi, ci in zip(xb, c))
        k = s / (1.0 + s * q)
        for i in range(n):
            ci = c[i] * k
            row = i * n
            for j in range(i, n):
                value = cov[row + j] - ci * c[j]
                cov[row + j] = value
                cov[j * n + i] = value
        step = (p - y) / (1.0 + s * q)
        self.w = [wi - step * ci for wi, ci in zip(self.w, c)]

    def dump(self) -> list[Any]:
        return [self.w, self.cov]

    def load(self, rec: Sequence[Any]) -> "Logit":
        w, cov = rec
        if len(w) == self.size and len(cov) == self.size * self.size:  # else: features changed, start over
            self.w, self.cov = [float(v) for v in w], [float(v) for v in cov]
        return self


class Cuts:
    """Decayed label counts per probability bin: the base rate, and the cuts of the bands."""

    __slots__ = ("positives", "negatives", "decay")

    def __init__(self, memory: float = 5000.0) -> None:
        self.positives = [0.0] * BINS
        self.negatives = [0.0] * BINS
        self.decay = 1.0 - 1.0 / memory if memory > 0 else 1.0

    def add(self, p: float, y: int) -> None:
        """A label ``y`` for a user the model gave probability ``p``."""
        if self.decay != 1.0:
            d = self.decay
            self.positives = [v * d for v in self.positives]
            self.negatives = [v * d for v in self.negatives]
        b = min(BINS - 1, max(0, int(p * BINS)))
        (self.positives if y else self.negatives)[b] += 1.0

    @property
    def base(self) -> float | None:
        total = sum(self.positives) + sum(self.negatives)
        return sum(self.positives) / total if total > 0 else None

    def precision_cut(self, target: float) -> float:
        """The loosest edge of a bin with labels whose users above it churn at ``target`` or more
        (1.0: none; empty bins below it are not taken on trust)."""
        tp = fp = 0.0
        cut = 1.0
        for b in range(BINS - 1, -1, -1):
            if not (self.positives[b] or self.negatives[b]):
                continue
            tp += self.positives[b]
            fp += self.negatives[b]
            if tp / (tp + fp) >= target:
                cut = b / BINS
        return cut

    def cut(self, precision: float, odds: float) -> float | None:
        """A band's cut: the target precision's, never below the odds point (None: no labels)."""
        base = self.base
        if base is None:
            return None
        return max(self.precision_cut(precision) if precision > 0 else 0.0, odds_point(base, odds))

    def dump(self) -> list[Any]:
        return [self.positives, self.negatives]

    def load(self, rec: Sequence[Any]) -> "Cuts":
        positives, negatives = rec
        if len(positives) == BINS and len(negatives) == BINS:
            self.positives, self.negatives = [float(v) for v in positives], [float(v) for v in negatives]
        return self


def contributions(logit: Logit, x: Sequence[float], centre: Sequence[float]) -> list[float]:
    """How many probability points each feature adds against a typical user (``centre``): the
    probability minus what it would be with that feature at the centre."""
    z = logit.margin(x)
    p = sigmoid(z)
    return [p - sigmoid(z - w * (xi - ci)) for w, xi, ci in zip(logit.w, x, centre)]


class PartitionModel:
    """One partition's model: the logit, the cuts, the label counts and the typical user's features
    (the centre the reasons are measured from), learned from each label in event-time order."""

    __slots__ = ("logit", "cuts", "centre", "positives", "negatives", "memory")

    def __init__(self, features: int, memory: float = 5000.0, prior_variance: float = 1.0) -> None:
        self.logit = Logit(features, prior_variance=prior_variance, memory=memory)
        self.cuts = Cuts(memory)
        self.centre = [0.0] * features
        self.positives = 0
        self.negatives = 0
        self.memory = memory

    def ready(self, min_labels: int) -> bool:
        """Enough labels of both kinds to trust the probability over the rules."""
        return self.positives >= min_labels and self.negatives >= min_labels

    def probability(self, x: Sequence[float]) -> float:
        return self.logit.probability(x)

    def learn(self, x: Sequence[float], y: int) -> None:
        """One label: judged first by the model as it stands (the cuts see out-of-sample
        probabilities), then learned from."""
        self.cuts.add(self.logit.probability(x), y)
        n = self.positives + self.negatives
        rate = 1.0 / min(n + 1, self.memory)
        self.centre = [c + rate * (xi - c) for c, xi in zip(self.centre, x)]
        self.logit.learn(x, y)
        if y:
            self.positives += 1
        else:
            self.negatives += 1

    def reasons(self, x: Sequence[float]) -> list[float]:
        return contributions(self.logit, x, self.centre)

    def dump(self) -> list[Any]:
        return [self.positives, self.negatives, self.logit.dump(), self.cuts.dump(), self.centre]

    def load(self, rec: Sequence[Any] | None) -> "PartitionModel":
        if not rec:
            return self
        positives, negatives, logit, cuts, centre = rec
        if len(centre) != len(self.centre):  # the features changed: start over
            return self
        self.positives, self.negatives = int(positives), int(negatives)
        self.logit.load(logit)
        self.cuts.load(cuts)
        self.centre = [float(v) for v in centre]
        return self
