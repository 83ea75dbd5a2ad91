"""``[usage]``: core actions, features and the expected visit cadence."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from streams.config.checks import ConfigError, _distinct_names

#: Distinct (event name, property values) classifications remembered (``streams.capabilities.classify``); the
#: cache starts over when full, so event properties of unbounded cardinality cannot grow it.
CLASSIFY_CACHE_MAX = 4096
#: Days of per-user daily counts kept for rolling windows (the longest window is 30 days).
USAGE_RETAIN_DAYS = 30
#: Rolling windows, in days, of the usage figures (1 = the day itself).
CORE_ACTION_WINDOWS = (1, 7, 28)
FEATURE_WINDOWS = (1, 28)
ACTIVE_WINDOWS = (1, 7, 28, 30)
VISIT_WINDOWS = (7, 30)
#: Expected cadence of visits -> days between visits a user is expected to keep.
CADENCE_DAYS = {"daily": 1, "weekly": 7}
#: Limits that keep the per-user bit masks and Prometheus label sets small.
MAX_CORE_ACTIONS = 16
MAX_FEATURES = 32

@dataclass(frozen=True)
class CoreAction:
    """A core action: activity events named ``event`` (default: ``name``) whose properties match
    ``where`` (property -> value, or a list of accepted values), worth ``weight`` each."""

    name: str
    event: str = ""
    where: dict[str, Any] = field(default_factory=dict)
    weight: float = 1.0

    @property
    def event_name(self) -> str:
        return self.event or self.name


@dataclass(frozen=True)
class FeatureRule:
    """Activity events named ``event`` use ``feature``, or the feature named by ``properties[property]``."""

    event: str
    property: str = ""
    feature: str = ""


@dataclass(frozen=True)
class UsageConfig:
    """``[usage]``: core actions, the feature mapping and the expected visit cadence."""

    core_actions: tuple[CoreAction, ...] = (
        CoreAction("report_created"), CoreAction("dashboard_shared"), CoreAction("invite_sent"),
        CoreAction("export_completed"))
    features: tuple[str, ...] = ("reports", "dashboards", "alerts", "exports", "api", "integrations")
    """The features reported on (Prometheus labels): mapped values outside this list are ignored."""
    feature_rules: tuple[FeatureRule, ...] = (FeatureRule("feature_used", property="feature"),)
    cadence: str = "weekly"
    """How often an engaged user is expected to visit: ``daily`` or ``weekly``."""

    def __post_init__(self) -> None:
        _distinct_names("usage.core_actions", [a.name for a in self.core_actions], MAX_CORE_ACTIONS)
        for action in self.core_actions:
            if not action.weight >= 0:
                raise ConfigError(f"usage.core_actions.{action.name}.weight: must not be negative")
        _distinct_names("usage.features", list(self.features), MAX_FEATURES)
        for rule in self.feature_rules:
            if not rule.event or bool(rule.property) == bool(rule.feature):
                raise ConfigError(f"usage.feature_rules: {rule!r} needs an event and exactly one of "
                                  "property or feature")
            if rule.feature and rule.feature not in self.features:
                raise ConfigError(f"usage.feature_rules: feature {rule.feature!r} is not in usage.features")
        if self.cadence not in CADENCE_DAYS:
            raise ConfigError(f"usage.cadence: must be one of {sorted(CADENCE_DAYS)}, got {self.cadence!r}")

__all__ = ['CLASSIFY_CACHE_MAX', 'USAGE_RETAIN_DAYS', 'CORE_ACTION_WINDOWS', 'FEATURE_WINDOWS', 'ACTIVE_WINDOWS', 'VISIT_WINDOWS', 'CADENCE_DAYS', 'MAX_CORE_ACTIONS', 'MAX_FEATURES', 'CoreAction', 'FeatureRule', 'UsageConfig']
