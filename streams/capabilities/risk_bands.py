"""Bands and reasons of the learned churn risk: from a probability to one signal per meaningful change.

The cuts come from the partition's model (:class:`~streams.capabilities.risk_model.Cuts`): medium
and high each at the loosest probability that keeps their target precision in the recent labels,
never below the probability whose odds are ``medium_odds`` / ``high_odds`` times the product's
typical odds. Then, per user, hysteresis that an alerting system can live with:

* **up**: to high at once when the probability reaches the high cut; from low to medium only
  after ``confirm_days`` days at or above the medium cut (a user on their way to high goes there
  in one step, and a one-day dip does not make a signal);
* **down**: only after ``calm_days`` days below ``exit_ratio`` x the band's cut;
* judged on the days the user is (with new activity, or on the days asked for while they are
  silent); between two judgements the band holds.

Reasons come from the features that contributed most: each feature's contribution is the
probability minus what it would be were that feature at its typical value (the mean of the
recent labels), summed per reason code; the three largest above one point are given, with the
facts behind them in words.
"""

from __future__ import annotations

from typing import Any, Mapping, NamedTuple, Sequence

from streams.capabilities.risk_learning import FEATURES
from streams.capabilities.signals import reason
from streams.config import RiskConfig

LOW, MEDIUM, HIGH = 0, 1, 2
#: Silences (days) at which a silent user is judged again by the model: its inputs move in log steps.
SILENCE_STEPS = (1, 2, 3, 4, 5, 6, 7, 8, 10, 12, 14, 17, 20, 24, 28, 33, 40, 48, 57, 68)
MAX_REASONS = 3
MIN_REASON_POINTS = 1.0


class Cut(NamedTuple):
    medium: float
    high: float


class Hold(NamedTuple):
    """A user's band and the runs that can change it: since when they have been at or above the
    medium cut while low (``up``), since when below the band's exit (``down``)."""

    band: int
    up: int | None = None
    down: int | None = None


def cut_for(cuts: Any, config: RiskConfig) -> Cut | None:
    """The bands' probability cuts from the model's label counts (None: no labels yet)."""
    high = cuts.cut(config.high_precision, config.high_odds)
    medium = cuts.cut(config.medium_precision, config.medium_odds)
    if high is None or medium is None:
        return None
    return Cut(min(medium, high), high)


def step(hold: Hold, p: float, cut: Cut, day: int, config: RiskConfig, daily: bool) -> Hold:
    """The band after a judgement of ``day`` with probability ``p`` (events only ever raise it)."""
    target = HIGH if p >= cut.high else MEDIUM if p >= cut.medium else LOW
    band, up, down = hold
    if target == HIGH and band < HIGH:
        return Hold(HIGH)
    if not daily:
        return hold
    if band == LOW and target == MEDIUM:
        up = day if up is None else up
        if day - up + 1 >= config.confirm_days:
            return Hold(MEDIUM)
    else:
        up = None
    if band > LOW:
        exit_cut = (cut.high if band == HIGH else cut.medium) * config.exit_ratio
        if p < exit_cut:
            down = day if down is None else down
            if day - down + 1 >= config.calm_days:
                return Hold(target if target < band else band - 1)
        else:
            down = None
    return Hold(band, up, down)


def next_day(hold: Hold, day: int, last_active: int | None, config: RiskConfig) -> int | None:
    """The next day the band can change if the user sends nothing: a run completes, or the silence
    reaches its next step (the probability moves with it)."""
    days = []
    if hold.up is not None:
        days.append(hold.up + config.confirm_days - 1)
    if hold.down is not None:
        days.append(hold.down + config.calm_days - 1)
    if last_active is not None:
        silence = day - last_active
        following = next((s for s in SILENCE_STEPS if s > silence), None)
        if following is not None:
            days.append(last_active + following)
    later = [d for d in days if d > day]
    return min(later) if later else None


def model_reasons(contributions: Sequence[float], facts: Mapping[str, Any], silence_open: int,
                  config: RiskConfig) -> list[dict[str, Any]]:
    """The reasons behind a probability, most important first (points: probability points)."""
    by_code: dict[str, float] = {}
    for feature, value in zip(FEATURES, contributions):
        if feature.reason is not None:
            by_code[feature.reason] = by_code.get(feature.reason, 0.0) + value
    ranked = sorted(((100 * v, code) for code, v in by_code.items() if 100 * v >= MIN_REASON_POINTS), reverse=True)
    return [reason(code, describe(code, facts, silence_open, config), points) for points, code in ranked[:MAX_REASONS]]


def describe(code: str, facts: Mapping[str, Any], silence_open: int, config: RiskConfig) -> str:
    """A reason in words, from the facts it rests on."""
    recent = facts.get("recent") or [0, 0, 0, 0]
    base = facts.get("weekly_baseline")

    def before(i: int) -> str:
        return f", against {base[i]:.1f} a week before" if base else ""

    if code == "inactive_days":
        recency = facts.get("recency_days")
        silence = facts["history_days"] if recency is None else recency
        gap = facts.get("gap_days")
        usual = f"usually active every {gap:.1f} days" if gap else f"first seen {facts['history_days']} days ago"
        shared = f"{silence_open} of them while the account was active, " if silence_open < silence else ""
        return f"no activity for {silence} days ({shared}{usual})"
    if code == "activity_drop":
        return f"active on {recent[0]:g} of the last 7 days{before(0)}"
    if code == "active_time_drop":
        return f"{recent[2]:g} active minutes in the last 7 days{before(2)}"
    if code == "core_action_drop":
        return f"{recent[3]:g} core actions in the last 7 days{before(3)}"
    if code == "negative_event":
        n = facts.get("negative_events") or 0
        return f"{n} cancel or downgrade intent{'s' if n != 1 else ''} in the last {config.negative_days} days"
    if code == "escalations":
        n = facts.get("escalations") or 0
        return f"{n} support escalation{'s' if n != 1 else ''} in the last {config.escalation_days} days"
    score = facts.get("score")
    return f"engagement score {score if score is not None else '-'}, low against the user's peers"
