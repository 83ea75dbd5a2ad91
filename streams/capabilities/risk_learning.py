"""What the churn-risk model learns from: features from the state the pipeline keeps, and labels the
product itself produces, one snapshot per user at a time.

**Features** (:func:`features`), from a judgement's facts (the engagement capability's notice) and
the user's account's open days (:mod:`streams.capabilities.account_days`): how long the user has
been silent, against their own cadence and in days their account was open; how often they came in the last week and in the weeks before, and the trend between the
two; their tenure; active minutes and core actions of the last week; negative intents and
escalations; their engagement score (which ranks them against their peers). Each is kept in one
byte on a fixed scale (:data:`FEATURES`), so a snapshot costs a user's record a few bytes, and the
model sees the same values whether it judges or learns. How busy the account is right now is not
a feature: labels of silences the account shared are left out (see below), so the model would
learn that a quiet account means less churn, and lower every silent user's risk when a course or
a team winds down (on kdd2015 it cost AUC and sent churners from high back to low).

**Labels.** A user churned when they stopped: a configured churn event (``churn_events``), or,
after the fact, a silence of ``churn_silence_days`` while their account was open. The model
predicts, at a judgement, whether the user will have stopped within ``horizon_days``. To learn it,
each user carries at most one snapshot (the features of one judgement) until its label is known:

* a snapshot is taken on the user's own phase days (every ``horizon_days + churn_silence_days``
  days, from a hash of the user id, so snapshots spread over days and do not depend on whether the
  user happens to be active), only while the user is still around (silent for less than
  ``churn_silence_days``);
* it is **negative** once the user is active on a day ``horizon_days`` or more after it (still
  there after the horizon);
* it is **positive** on a churn event, or once ``churn_silence_days`` have passed since the end of
  the horizon without the user, provided their account was open on at least ``horizon_days`` of
  those days; a silence the account shared (a holiday, the weeks before a start, the end of a
  course) gives no label at all (:func:`resolve`).
"""

from __future__ import annotations

import math
import zlib
from typing import Any, Mapping, NamedTuple, Sequence


class Feature(NamedTuple):
    name: str
    top: float
    """The value stored as 255 (one byte, fixed scale; larger values are capped)."""
    reason: str | None
    """The reason code it speaks for (None: context, never a reason on its own)."""


FEATURES: tuple[Feature, ...] = (
    Feature("silence", 5.0, "inactive_days"),            # log1p(days since last active)
    Feature("silence_vs_cadence", 3.0, "inactive_days"),  # log1p(days / own normal gap), 0 without one
    Feature("no_cadence", 1.0, None),                    # 1 when the user has no normal gap yet
    Feature("silence_open", 5.0, "inactive_days"),       # log1p(open days of the account since last active)
    Feature("active_days", 2.1, "activity_drop"),        # log1p(active days in the last 7)
    Feature("usual_days", 2.1, "activity_drop"),         # log1p(active days per baseline week)
    Feature("trend", 2.0, "activity_drop"),              # last 7 days / baseline week (1 without baseline)
    Feature("tenure", 5.0, None),                        # log1p(days since first seen), capped
    Feature("active_minutes", 8.0, "active_time_drop"),  # log1p(active minutes in the last 7 days)
    Feature("core_actions", 6.0, "core_action_drop"),    # log1p(core actions in the last 7 days)
    Feature("negative_events", 3.0, "negative_event"),
    Feature("escalations", 3.0, "escalations"),
    Feature("score", 1.0, "low_engagement"),             # engagement score / 100 (0.5 before the first)
)
SIZE = len(FEATURES)
TENURE_CAP_DAYS = 120


def quantize(values: Sequence[float]) -> bytes:
    """One byte per feature on its fixed scale."""
    return bytes(min(255, max(0, round(v / f.top * 255))) for v, f in zip(values, FEATURES))


def dequantize(data: bytes) -> list[float]:
    return [b * f.top / 255 for b, f in zip(data, FEATURES)]


def features(facts: Mapping[str, Any], silence_open: int) -> list[float]:
    """The model's features of one judgement (as the model sees them: through :func:`quantize`)."""
    history = facts["history_days"]
    recency = facts.get("recency_days")
    silence = history if recency is None else recency
    gap = facts.get("gap_days")
    recent = facts.get("recent") or [0, 0, 0, 0]
    base = facts.get("weekly_baseline")
    usual = base[0] if base else 0.0
    trend = 1.0 if not base or base[0] <= 0 else recent[0] / base[0]
    score = facts.get("score")
    values = [
        math.log1p(silence), math.log1p(silence / gap) if gap else 0.0, 0.0 if gap else 1.0,
        math.log1p(silence_open), math.log1p(recent[0]), math.log1p(usual), trend,
        math.log1p(min(history, TENURE_CAP_DAYS)), math.log1p(recent[2]), math.log1p(recent[3]),
        float(facts.get("negative_events") or 0), float(facts.get("escalations") or 0),
        0.5 if score is None else score / 100,
    ]
    return dequantize(quantize(values))


def phase(user: bytes, period: int) -> int:
    """The user's snapshot phase: snapshots on days ``d`` with ``d % period == phase``."""
    return zlib.crc32(user) % period


class Pending(NamedTuple):
    """A snapshot waiting for its label."""

    day: int
    data: bytes


def resolve(pending: Pending, day: int, last_active: int | None, open_days: int, horizon: int,
            silence: int, churned: bool = False) -> int | None:
    """The snapshot's label on ``day`` (1 churned, 0 stayed), -1 when it can never have one (the
    account shared the silence), None while it is not known yet.

    ``last_active`` is the user's last active day up to ``day``; ``open_days`` the days their
    account was open within ``pending.day + horizon .. day`` (asked only once the label is due).
    """
    start = pending.day + horizon
    if churned:
        return 1
    if last_active is not None and last_active >= start:
        return 0
    if day < start + silence - 1:
        return None
    return 1 if open_days >= horizon else -1


def label_window(pending: Pending, horizon: int) -> int:
    """First day of the silence that decides a snapshot's label."""
    return pending.day + horizon

