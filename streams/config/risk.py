"""``[risk]``: churn-risk points per reason, band thresholds with hysteresis, onboarding."""

from __future__ import annotations

from dataclasses import dataclass

from streams.config.checks import ConfigError, _positive
from streams.config.engagement import RECENT_DAYS

RISK_BANDS = ("low", "medium", "high")
#: Reason codes of churn-risk and account-health signals (docs/health-and-risk.md#engagement-score-churn-risk-and-account-health).
RISK_REASONS = ("inactive_days", "activity_drop", "core_action_drop", "active_time_drop", "escalations",
                "negative_event", "low_license_utilization", "low_engagement")

@dataclass(frozen=True)
class RiskConfig:
    """``[risk]``: churn-risk points per reason, band thresholds with hysteresis, onboarding."""

    medium: float = 30.0
    high: float = 55.0
    """A user enters a band when the risk points reach its threshold ..."""
    medium_exit: float = 20.0
    high_exit: float = 45.0
    """... and leaves it only when they fall below its exit threshold (hysteresis: no flapping)."""
    drop_points: float = 60.0
    """Points of a full usage drop (activity_drop, active_time_drop, core_action_drop together)."""
    drop_z_start: float = 0.25
    drop_z_full: float = 1.5
    """The drop is measured in baseline spreads: the recent week is ``z`` week-to-week spreads of the
    user's own baseline below its weekly mean. Points start at ``drop_z_start`` and are full at
    ``drop_z_full``."""
    drop_spread_floor: float = 0.45
    """The spread used is at least this share of the weekly mean (four weeks estimate it roughly)."""
    drop_weight_activity: float = 0.4
    drop_weight_active_time: float = 0.2
    drop_weight_core_actions: float = 0.4
    habit_active_days: float = 2.5
    """Usage drops are judged only for users with a habit: at least this many active days per
    baseline week. Weekly users are judged by inactivity, which is robust for them."""
    min_active_minutes: float = 20.0
    min_core_actions: float = 2.0
    """A measure joins the drop only with at least this much per baseline week."""
    drop_anchor_days: int = 2
    """The recent week ends at most this many days after the last active day: a user who stops
    entirely is judged by ``inactive_days`` (vacations are sudden, churn is gradual)."""
    inactive_medium_days: float = 5.0
    inactive_medium_gaps: float = 2.5
    inactive_high_days: float = 28.0
    inactive_high_gaps: float = 4.0
    """Silence reaches medium after max(days, gaps x the user's normal gap between active days),
    and grows linearly to high at max(high days, high gaps x gap)."""
    negative_events: tuple[str, ...] = ("cancel_intent", "downgrade_clicked")
    negative_points: float = 60.0
    negative_days: int = 14
    escalation_events: tuple[str, ...] = ("support_ticket_opened",)
    escalation_points: float = 30.0
    escalation_max_points: float = 40.0
    escalation_days: int = 28
    onboarding_days: int = 14
    """Users seen for at most this many days are onboarding: no drop rules, and medium at most
    (a cancel or downgrade intent aside)."""
    onboarding_inactive_days: float = 7.0
    """Users without a baseline yet (about three weeks) have no normal gap: their silence counts
    from this many days (and grows to high at ``inactive_high_days``)."""
    calm_days: int = 7
    """A band is left downwards only after this many daily assessments in a row below its exit
    threshold: a user who dips to medium every few days stays medium instead of flapping."""
    mode: str = "auto"
    """``auto``: the rules decide until the partition's model has learned from ``min_labels``
    churned and ``min_labels`` staying users, then the model's probability does; ``rules``: the
    rules always (the model still learns)."""
    churn_events: tuple[str, ...] = ()
    """Events that mean the user has churned (``subscription_cancelled``, ``account_closed``, ...):
    a label at once. Without them, labels come from long silences only."""
    churn_silence_days: int = 30
    """A user silent this long while their account is open has churned (a label, after the fact)."""
    predict_days: int = 7
    """The model's horizon: the probability that the user will have stopped within this many days."""
    min_labels: int = 100
    """Labels of each kind (churned, stayed) a partition's model needs before it decides."""
    medium_precision: float = 0.4
    high_precision: float = 0.7
    medium_odds: float = 1.0
    high_odds: float = 3.0
    """Model bands: a band's probability cut is the loosest at which the users above it churned
    at its precision in the recent labels, and never below the probability whose odds are ``odds``
    times the product's typical odds (medium: more at risk than the typical user; high: three
    times the typical odds)."""
    exit_ratio: float = 0.85
    """Model bands are left only below ``exit_ratio`` x their cut (and after ``calm_days``)."""
    confirm_days: int = 7
    """Model bands: a user enters medium (from low) after this many days at or above its cut (as
    long as leaving a band takes, ``calm_days``); high at once, so a user on their way to high within
    the week goes there in one step: one signal per meaningful change."""
    model_memory: int = 5000
    """Labels the model remembers (older ones weigh less, by a factor of 1 - 1/memory a label)."""
    trace_topic: str = ""
    """A topic that receives every judgement's current risk (``user_id``, ``day``, ``risk``,
    ``band``, ``mode``), for backtests and offline analysis; empty: none (the default: an alerting
    system wants changes, not judgements)."""

    def __post_init__(self) -> None:
        _positive("risk", medium=self.medium, high=self.high, drop_points=self.drop_points,
                  drop_z_full=self.drop_z_full, habit_active_days=self.habit_active_days,
                  inactive_medium_days=self.inactive_medium_days, inactive_high_days=self.inactive_high_days,
                  negative_days=self.negative_days, escalation_days=self.escalation_days,
                  onboarding_inactive_days=self.onboarding_inactive_days)
        if not 0 <= self.medium_exit <= self.medium < self.high or not self.medium_exit <= self.high_exit <= self.high:
            raise ConfigError("risk: thresholds must satisfy 0 <= medium_exit <= medium < high and "
                              f"medium_exit <= high_exit <= high, got {self.medium_exit}, {self.medium}, "
                              f"{self.high_exit}, {self.high}")
        if not 0 <= self.drop_z_start < self.drop_z_full:
            raise ConfigError(f"risk.drop_z_start: must be >= 0 and below drop_z_full, got {self.drop_z_start!r}")
        if self.inactive_high_days <= self.inactive_medium_days:
            raise ConfigError("risk.inactive_high_days: must be greater than inactive_medium_days")
        if not 0 <= self.drop_anchor_days <= RECENT_DAYS:
            raise ConfigError(f"risk.drop_anchor_days: must be between 0 and {RECENT_DAYS}")
        if self.mode not in ("auto", "rules"):
            raise ConfigError(f"risk.mode: must be auto or rules, got {self.mode!r}")
        for name in ("churn_silence_days", "predict_days", "min_labels", "confirm_days", "model_memory"):
            if getattr(self, name) < 1:
                raise ConfigError(f"risk.{name}: must be at least 1, got {getattr(self, name)!r}")
        for name in ("medium_precision", "high_precision", "exit_ratio"):
            if not 0 < getattr(self, name) <= 1:
                raise ConfigError(f"risk.{name}: must be above 0 and at most 1, got {getattr(self, name)!r}")
        if not 0 < self.medium_odds <= self.high_odds:
            raise ConfigError(f"risk: odds must satisfy 0 < medium_odds <= high_odds, got {self.medium_odds!r} "
                              f"and {self.high_odds!r}")
        if self.onboarding_days < 0 or self.calm_days < 1:
            raise ConfigError(f"risk: onboarding_days must be >= 0 and calm_days >= 1, got "
                              f"{self.onboarding_days!r} and {self.calm_days!r}")

    @property
    def drop_weights(self) -> tuple[float, float, float]:
        """(activity, active time, core actions)."""
        return (self.drop_weight_activity, self.drop_weight_active_time, self.drop_weight_core_actions)

__all__ = ['RISK_BANDS', 'RISK_REASONS', 'RiskConfig']
