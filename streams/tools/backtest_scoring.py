"""How well churn-risk signals predicted churn: the backtest's definitions, as pure functions.

Given the ``churn_risk`` signals of a replay and labels (``user_id -> churned_at``, the time of
the churner's last event):

* a user is **flagged** when they have at least one signal to ``high``;
* a flag is **correct** when the user is a churner and was flagged at or before ``churned_at``
  (a flag raised after the user left says nothing new);
* a churner is **caught** when the first high signal within the ``window_days`` before
  ``churned_at`` came at least ``lead_days`` before it (a true positive: early enough to act);
* precision = correct flagged users / flagged users; recall = caught churners / churners;
  F1 = 2 P R / (P + R), from these two;
* lead time = days from that first high signal to ``churned_at``; the median over caught churners
  is reported, and over every churner flagged before churning.

Flags more than ``window_days`` before the churn do not count as warnings of it (a user who was
at risk two months earlier and recovered was not warned about this churn).
"""

from __future__ import annotations

import csv
import statistics
from dataclasses import asdict, dataclass, field
from typing import IO, Any, Iterable, Mapping

from streams.config import MS_PER_DAY
from streams.core.contract import parse_time_ms


@dataclass
class ChurnScore:
    """The backtest's figures (see the module docstring for the definitions)."""

    churners: int = 0
    flagged: int = 0
    correct: int = 0
    caught: int = 0
    late: int = 0
    """Churners flagged within the window, but less than ``lead_days`` before churning."""
    missed: int = 0
    precision: float = 0.0
    recall: float = 0.0
    f1: float = 0.0
    median_lead_days: float | None = None
    median_lead_days_all: float | None = None
    lead_days: float = 7.0
    window_days: float = 35.0
    false_positives: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def high_flags(signals: Iterable[Mapping[str, Any]]) -> dict[str, list[int]]:
    """Event times (ms, sorted) of every user's signals to ``high`` (churn risk only)."""
    out: dict[str, list[int]] = {}
    for sig in signals:
        if sig.get("type") == "churn_risk" and sig.get("to") == "high" and sig.get("user_id"):
            out.setdefault(sig["user_id"], []).append(int(sig["event_time_ms"]))
    for times in out.values():
        times.sort()
    return out


def score_flags(flags: Mapping[str, list[int]], labels: Mapping[str, int], lead_days: float = 7.0,
                window_days: float = 35.0) -> ChurnScore:
    """Precision, recall, F1 and lead times of high flags against churn labels."""
    lead_ms, window_ms = lead_days * MS_PER_DAY, window_days * MS_PER_DAY
    score = ChurnScore(churners=len(labels), flagged=len(flags), lead_days=lead_days, window_days=window_days)
    caught_leads: list[float] = []
    all_leads: list[float] = []
    for user, churned in labels.items():
        warned = [t for t in flags.get(user, ()) if churned - window_ms <= t <= churned]
        if not warned:
            score.missed += 1
            continue
        lead = (churned - warned[0]) / MS_PER_DAY
        all_leads.append(lead)
        if churned - warned[0] >= lead_ms:
            score.caught += 1
            caught_leads.append(lead)
        else:
            score.late += 1
    for user, times in flags.items():
        churn_time = labels.get(user)
        if churn_time is not None and times[0] <= churn_time:
            score.correct += 1
        else:
            score.false_positives.append(user)
    score.false_positives.sort()
    score.precision = score.correct / score.flagged if score.flagged else 0.0
    score.recall = score.caught / score.churners if score.churners else 0.0
    total = score.precision + score.recall
    score.f1 = 2 * score.precision * score.recall / total if total else 0.0
    score.median_lead_days = statistics.median(caught_leads) if caught_leads else None
    score.median_lead_days_all = statistics.median(all_leads) if all_leads else None
    return score


def read_labels(source: IO[str]) -> dict[str, int]:
    """``user_id,churned_at`` rows (a header row is optional; churned_at RFC 3339 or epoch ms)."""
    labels: dict[str, int] = {}
    for number, row in enumerate(csv.reader(source), start=1):
        if not row or not row[0].strip() or row[0].startswith("#"):
            continue
        if len(row) < 2:
            raise ValueError(f"labels line {number}: expected user_id,churned_at, got {row!r}")
        user, when = row[0].strip(), row[1].strip()
        ms = parse_time_ms(int(when)) if when.isdigit() else parse_time_ms(when)
        if ms is None:
            if number == 1:
                continue  # the header
            raise ValueError(f"labels line {number}: churned_at {when!r} is not RFC 3339 with an offset or epoch ms")
        labels[user] = ms
    return labels
