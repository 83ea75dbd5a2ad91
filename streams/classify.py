"""What an event means for usage: which configured core actions it is and which feature it uses.

Sessions (core actions done and features used in a session) and usage (daily counts per user)
must agree on this, so both ask one :class:`Classifier` built from ``[usage]``. Only configured
names come out of it, which is what keeps metric labels bounded.
"""

from __future__ import annotations

from typing import Any

from .config import CoreAction, FeatureRule, UsageConfig
from .contract import Event


def _matches(where: dict[str, Any], properties: dict[str, Any]) -> bool:
    for prop, wanted in where.items():
        value = properties.get(prop)
        if isinstance(wanted, (list, tuple)):
            if value not in wanted:
                return False
        elif value != wanted:
            return False
    return True


class Classifier:
    """Core-action bit mask and feature index of activity events, from the usage settings."""

    def __init__(self, usage: UsageConfig) -> None:
        self.core_actions: tuple[CoreAction, ...] = usage.core_actions
        self.features: tuple[str, ...] = usage.features
        self._feature_index = {name: i for i, name in enumerate(usage.features)}
        self._actions: dict[str, list[tuple[int, CoreAction]]] = {}
        for index, action in enumerate(usage.core_actions):
            self._actions.setdefault(action.event_name, []).append((1 << index, action))
        self._rules: dict[str, list[FeatureRule]] = {}
        for rule in usage.feature_rules:
            self._rules.setdefault(rule.event, []).append(rule)

    def core_mask(self, event: Event) -> int:
        """Bit i is set when the event counts as core action i (an event may count as several)."""
        candidates = self._actions.get(event.name)
        if not candidates:
            return 0
        mask = 0
        for bit, action in candidates:
            if not action.where or _matches(action.where, event.properties):
                mask |= bit
        return mask

    def feature(self, event: Event) -> int:
        """Index of the feature the event uses, or -1 (the first matching rule wins)."""
        rules = self._rules.get(event.name)
        if not rules:
            return -1
        for rule in rules:
            name = rule.feature or event.properties.get(rule.property)
            index = self._feature_index.get(name) if isinstance(name, str) else None
            if index is not None:
                return index
        return -1

    def action_names(self, mask: int) -> list[str]:
        return [a.name for i, a in enumerate(self.core_actions) if mask >> i & 1]

    def feature_names(self, mask: int) -> list[str]:
        return [f for i, f in enumerate(self.features) if mask >> i & 1]
