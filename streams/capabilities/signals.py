"""Signals: the messages alerting systems act on (churn risk, engagement score, account health).

One message per change, never one per event, each with an id derived from what changed and when
(so a replay after a crash re-emits the same id and consumers de-duplicate on it). Every signal on
``settings.signals_topic`` (lifecycle ones from :mod:`streams.capabilities.activity` too) follows
``schemas/signal.schema.json``; docs/health-and-risk.md#engagement-score-churn-risk-and-account-health describes the fields.

The counter of emitted signals lives here so that the three capabilities that emit them report
one Prometheus family with bounded labels (type and level).
"""

from __future__ import annotations

import hashlib
from collections import Counter
from typing import Any

from prometheus_client.core import CounterMetricFamily

from streams.config import HEALTH_BANDS, METRIC_PREFIX, RISK_BANDS
from streams.core.eventtime import iso_ms

#: Levels per signal type (the ``level`` label): the band entered, or the score's direction.
LEVELS = {"churn_risk": RISK_BANDS, "engagement_score": ("up", "down"), "account_health": HEALTH_BANDS}


def signal_id(kind: str, *parts: Any) -> str:
    """Deterministic id: the same change of the same subject at the same time, the same id."""
    text = "|".join([kind, *(str(p) for p in parts)])
    return hashlib.blake2b(text.encode(), digest_size=16).hexdigest()


def signal(kind: str, sid: str, at_ms: int, day: str, user: str | None, account: str | None,
           **fields: Any) -> dict[str, Any]:
    """A signal document: the common envelope plus the type's own fields."""
    doc: dict[str, Any] = {"id": sid, "type": kind, "user_id": user, "account_id": account, "day": day,
                           "event_time": iso_ms(at_ms), "event_time_ms": at_ms}
    doc.update(fields)
    return doc


def reason(code: str, text: str, points: float | None = None) -> dict[str, Any]:
    """One reason: a code for machines, a sentence for people, and its weight (risk points)."""
    out: dict[str, Any] = {"code": code, "text": text}
    if points is not None:
        out["points"] = round(points, 1)
    return out


class SignalCounts:
    """Signals emitted by this worker, by type and level (a counter: never goes down)."""

    def __init__(self) -> None:
        self.counts: Counter[tuple[str, str]] = Counter()

    def add(self, kind: str, level: str) -> None:
        self.counts[(kind, level)] += 1

    def family(self) -> CounterMetricFamily:
        family = CounterMetricFamily(f"{METRIC_PREFIX}_signals", "Signals emitted by this worker (churn risk, "
                                     "engagement score, account health), by type and level.",
                                     labels=["type", "level"])
        for kind, levels in LEVELS.items():
            for level in levels:
                family.add_metric([kind, level], self.counts.get((kind, level), 0))
        return family
