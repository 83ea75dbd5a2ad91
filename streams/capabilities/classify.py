"""What an event means for usage: which configured core actions it is and which feature it uses.

Sessions (core actions done and features used in a session), usage (daily counts per user) and
engagement must agree on this, so all ask one :class:`Classifier` built from ``[usage]``. Only
configured names come out of it, which is what keeps metric labels bounded.

Every activity event is classified by each of them, so results are remembered: per event name
when no rule for that name reads a property (most names: heartbeats, page views), else per name
and the values of the properties its rules read (a bounded cache). Both are exact: a result
depends on nothing else, and equal values (``==``, which is all the rules compare) give equal
results.
"""

from __future__ import annotations

from typing import Any

from streams.config import CLASSIFY_CACHE_MAX, CoreAction, FeatureRule, UsageConfig
from streams.core.contract import Event

Classification = tuple[int, int]
#: Neither a core action nor a feature (any event name no rule mentions).
NOTHING: Classification = (0, -1)


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
        reads: dict[str, list[str]] = {}
        for index, action in enumerate(usage.core_actions):
            self._actions.setdefault(action.event_name, []).append((1 << index, action))
            reads.setdefault(action.event_name, []).extend(action.where)
        self._rules: dict[str, list[FeatureRule]] = {}
        for rule in usage.feature_rules:
            self._rules.setdefault(rule.event, []).append(rule)
            reads.setdefault(rule.event, []).extend([] if rule.feature else [rule.property])
        self._reads: dict[str, tuple[str, ...]] = {
            name: tuple(dict.fromkeys(props)) for name, props in reads.items() if props}
        """Names whose result depends on properties -> the properties their rules read."""
        self._fixed: dict[str, Classification] = {
            name: self._compute(name, {}) for name in reads if name not in self._reads}
        """Names whose result depends on the name alone -> the result."""
        self._cache: dict[tuple[str, tuple[Any, ...]], Classification] = {}

    def classify(self, event: Event) -> Classification:
        """(core-action mask, feature index or -1) of an event; remembered on the event, since
        sessions, usage and engagement each ask."""
        known = event.classified
        if known is not None and known[0] is self:
            return known[1]
        result = self._classify(event)
        event.classified = (self, result)
        return result

    def _classify(self, event: Event) -> Classification:
        name = event.name
        reads = self._reads.get(name)
        if reads is None:
            return self._fixed.get(name, NOTHING)
        properties = event.properties
        key = (name, tuple(map(properties.get, reads)))
        cache = self._cache
        try:
            result = cache.get(key)
        except TypeError:  # an unhashable property value (a list, an object): not remembered
            return self._compute(name, properties)
        if result is None:
            result = self._compute(name, properties)
            if len(cache) >= CLASSIFY_CACHE_MAX:
                cache.clear()
            cache[key] = result
        return result

    def _compute(self, name: str, properties: dict[str, Any]) -> Classification:
        mask = 0
        for bit, action in self._actions.get(name, ()):
            if not action.where or _matches(action.where, properties):
                mask |= bit
        feature = -1
        for rule in self._rules.get(name, ()):
            value = rule.feature or properties.get(rule.property)
            index = self._feature_index.get(value) if isinstance(value, str) else None
            if index is not None:
                feature = index
                break
        return mask, feature

    def core_mask(self, event: Event) -> int:
        """Bit i is set when the event counts as core action i (an event may count as several)."""
        return self.classify(event)[0]

    def feature(self, event: Event) -> int:
        """Index of the feature the event uses, or -1 (the first matching rule wins)."""
        return self.classify(event)[1]

    def action_names(self, mask: int) -> list[str]:
        return [a.name for i, a in enumerate(self.core_actions) if mask >> i & 1] if mask else []

    def feature_names(self, mask: int) -> list[str]:
        return [f for i, f in enumerate(self.features) if mask >> i & 1] if mask else []
