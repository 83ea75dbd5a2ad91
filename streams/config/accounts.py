"""``[accounts]``: seats, license utilization and the account health score and bands."""

from __future__ import annotations

from dataclasses import dataclass

from streams.config.checks import ConfigError, _positive, _share
from streams.config.engagement import BASELINE_DAYS, RECENT_DAYS

HEALTH_BANDS = ("red", "yellow", "green")


@dataclass(frozen=True)
class AccountsConfig:
    """``[accounts]``: seats, license utilization and the account health score and bands."""

    seats_trait: str = "seats"
    """Group trait holding the seats an account pays for (the newest group event wins)."""
    active_days: int = 30
    """An active seat is an account user active within this many days."""
    utilization_healthy: float = 0.5
    """License utilization below this is reason ``low_license_utilization`` (Totango's healthy line)."""
    utilization_target: float = 0.8
    """Utilization that earns full utilization marks."""
    weight_utilization: float = 0.3
    weight_engagement: float = 0.35
    weight_trend: float = 0.2
    weight_escalations: float = 0.15
    escalations_per_seat: float = 0.5
    """Escalations per active seat in 28 days that leave no escalation marks."""
    green: float = 70.0
    red: float = 40.0
    """Health at or above ``green`` is green, below ``red`` red, yellow between ..."""
    hysteresis: float = 5.0
    """... and a band is left only when health moves this far past its boundary."""
    onboarding_days: int = 14
    """A new account's band is signalled from its first day plus this many days (a replay or a
    launch makes every account new at once; their first days say little)."""
    trend_days: int = 7
    trend_step: float = 5.0
    """The trend arrow compares health with ``trend_days`` earlier: up / down beyond this step."""

    def __post_init__(self) -> None:
        if not self.seats_trait:
            raise ConfigError("accounts.seats_trait: must not be empty")
        if not 1 <= self.active_days <= BASELINE_DAYS + RECENT_DAYS:
            raise ConfigError(f"accounts.active_days: must be between 1 and {BASELINE_DAYS + RECENT_DAYS}")
        _share("accounts", utilization_healthy=self.utilization_healthy)
        _positive("accounts", utilization_target=self.utilization_target,
                  escalations_per_seat=self.escalations_per_seat)
        weights = (self.weight_utilization, self.weight_engagement, self.weight_trend, self.weight_escalations)
        if any(w < 0 for w in weights) or abs(sum(weights) - 1.0) > 1e-6:
            raise ConfigError(f"accounts.weight_*: must be non-negative and add up to 1, got {list(weights)}")
        if not 0 < self.red < self.green < 100:
            raise ConfigError(f"accounts: need 0 < red < green < 100, got red={self.red}, green={self.green}")
        if not 0 <= self.hysteresis < (self.green - self.red) / 2:
            raise ConfigError("accounts.hysteresis: must be non-negative and below half the yellow band")
        if self.trend_days < 1 or self.onboarding_days < 0:
            raise ConfigError(f"accounts: trend_days must be >= 1 and onboarding_days >= 0, got "
                              f"{self.trend_days!r} and {self.onboarding_days!r}")

__all__ = ['HEALTH_BANDS', 'AccountsConfig']
