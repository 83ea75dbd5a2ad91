"""``[engagement]``: the 0-100 engagement score (weights, cadence presets, peers, thresholds)."""

from __future__ import annotations

from dataclasses import dataclass

from streams.config.checks import ConfigError, _increasing, _positive, _share
from streams.config.usage import CADENCE_DAYS

#: A user's usage is judged on the recent week against the 28 days (four weeks) before it.
RECENT_DAYS = 7
BASELINE_WEEKS = 4
BASELINE_DAYS = RECENT_DAYS * BASELINE_WEEKS
#: Score measures, risk bands, account health bands and signal types, in report order.
SCORE_MEASURES = ("recency", "frequency", "depth", "core_actions", "trend")
#: Peer groups smaller than this (in one partition, on one day) are judged against all the
#: partition's users instead: a percentile among three peers says little.
MIN_PEERS = 5


@dataclass(frozen=True)
class CadencePreset:
    """What a fully engaged user does in a week, for one kind of product (daily or weekly use)."""

    gap_days: float
    """Days between active days that are normal (a user silent for longer starts losing recency)."""
    active_days: float
    """Active days per week that earn full frequency marks."""
    visits: float
    """Sessions per week that earn full frequency marks."""
    active_minutes: float
    """Active minutes per week (idle excluded, see docs/sessions-and-usage.md#sessions-active-time-core-actions-and-feature-usage) that earn full depth marks."""
    core_actions: float
    """Core actions per week (weighted) that earn full core-action marks."""
    inactive_span_days: float
    """Days beyond the normal gap over which recency falls from full marks to none."""
    window_days: int = RECENT_DAYS
    """Frequency, depth and core actions are weekly means over this many days (7 or 14): a weekly
    user's score should not swing with every visit that falls on one side of a 7-day window."""

    def __post_init__(self) -> None:
        _positive("engagement cadence", gap_days=self.gap_days, active_days=self.active_days,
                  visits=self.visits, active_minutes=self.active_minutes, core_actions=self.core_actions,
                  inactive_span_days=self.inactive_span_days)
        if self.window_days not in (RECENT_DAYS, 2 * RECENT_DAYS):
            raise ConfigError(f"engagement cadence window_days: must be 7 or 14, got {self.window_days!r}")


@dataclass(frozen=True)
class EngagementConfig:
    """``[engagement]``: the 0-100 engagement score (weights, cadence, peers, thresholds)."""

    cadence: str = ""
    """``daily`` or ``weekly`` preset below; empty: the product's ``[usage].cadence``."""
    daily: CadencePreset = CadencePreset(gap_days=1.0, active_days=5.0, visits=7.0, active_minutes=120.0,
                                         core_actions=10.0, inactive_span_days=14.0)
    weekly: CadencePreset = CadencePreset(gap_days=7.0, active_days=1.0, visits=1.5, active_minutes=20.0,
                                          core_actions=2.0, inactive_span_days=28.0, window_days=14)
    weight_recency: float = 0.25
    weight_frequency: float = 0.20
    weight_depth: float = 0.15
    weight_core_actions: float = 0.25
    weight_trend: float = 0.15
    peer_weight: float = 0.3
    """Share of each measure judged against peers (percentile), the rest against cadence and history."""
    peer_segment: str = "plan"
    """Name of an ``[activity]`` segment dimension whose value groups peers; empty: all users."""
    breadth_share: float = 0.3
    """Share of the core-action marks given for breadth (distinct core actions in 28 days)."""
    thresholds: tuple[float, ...] = (25.0, 75.0)
    """Score levels: crossing one by more than half the hysteresis is an ``engagement_score`` signal
    (up at threshold + hysteresis / 2, down below threshold - hysteresis / 2)."""
    hysteresis: float = 10.0
    horizon_days: int = 60
    """Users are scored daily until this many days after their last activity (then they rest)."""
    settle_s: float = 0.0
    """A day is scored once the watermark passes its end plus this; 0: the session timeout plus a
    minute, so sessions of the day have closed and their active time is in."""

    def __post_init__(self) -> None:
        if self.cadence not in ("",) + tuple(CADENCE_DAYS):
            raise ConfigError(f"engagement.cadence: must be empty or one of {sorted(CADENCE_DAYS)}, "
                              f"got {self.cadence!r}")
        weights = self.weights
        if any(w < 0 for w in weights.values()) or abs(sum(weights.values()) - 1.0) > 1e-6:
            raise ConfigError(f"engagement.weight_*: must be non-negative and add up to 1, got {weights}")
        _share("engagement", peer_weight=self.peer_weight, breadth_share=self.breadth_share)
        _increasing("engagement", "thresholds", self.thresholds)
        if self.thresholds and self.thresholds[-1] >= 100:
            raise ConfigError("engagement.thresholds: must be below 100")
        if not 0 <= self.hysteresis < 50:
            raise ConfigError(f"engagement.hysteresis: must be between 0 and 50, got {self.hysteresis!r}")
        if not 7 <= self.horizon_days <= 365:
            raise ConfigError(f"engagement.horizon_days: must be between 7 and 365, got {self.horizon_days!r}")
        if self.settle_s < 0:
            raise ConfigError(f"engagement.settle_s: must not be negative, got {self.settle_s!r}")

    @property
    def weights(self) -> dict[str, float]:
        return {"recency": self.weight_recency, "frequency": self.weight_frequency,
                "depth": self.weight_depth, "core_actions": self.weight_core_actions,
                "trend": self.weight_trend}

    def preset(self, usage_cadence: str) -> CadencePreset:
        return self.daily if (self.cadence or usage_cadence) == "daily" else self.weekly

__all__ = ['RECENT_DAYS', 'BASELINE_WEEKS', 'BASELINE_DAYS', 'SCORE_MEASURES', 'MIN_PEERS', 'CadencePreset', 'EngagementConfig']
