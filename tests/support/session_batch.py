"""The reference: sessions and usage figures computed in one batch from the accepted events.

Plain Python over the whole event list, written from the definitions in docs/sessions-and-usage.md#sessions-active-time-core-actions-and-feature-usage and
independent of the streaming code (no buffers, timers, difference arrays or watermarks): sort
each user's events, cut, count. The tests compare the pipeline's outputs with these, for equality.
"""

from __future__ import annotations

from collections import defaultdict
from itertools import pairwise
from typing import Any, Iterable

from streams.config import ACTIVITY_TYPES, MS_PER_DAY, Settings


def user_of(doc: dict[str, Any]) -> str:
    return doc.get("user_id") or doc["anonymous_id"]


def is_activity(doc: dict[str, Any]) -> bool:
    return doc["type"] in ACTIVITY_TYPES


def core_actions_of(doc: dict[str, Any], settings: Settings) -> list[str]:
    out = []
    props = doc.get("properties") or {}
    for action in settings.usage.core_actions:
        if doc.get("event") != (action.event or action.name):
            continue
        if all((props.get(k) in v) if isinstance(v, (list, tuple)) else props.get(k) == v
               for k, v in action.where.items()):
            out.append(action.name)
    return out


def feature_of(doc: dict[str, Any], settings: Settings) -> str | None:
    props = doc.get("properties") or {}
    for rule in settings.usage.feature_rules:
        if doc.get("event") != rule.event:
            continue
        name = rule.feature or props.get(rule.property)
        if name in settings.usage.features:
            return name
    return None


def sessions(events: Iterable[dict[str, Any]], settings: Settings) -> list[dict[str, Any]]:
    """Every session of the accepted events, in the shape of the session message (no segments/id)."""
    cfg = settings.sessions
    timeout, max_length, idle = cfg.timeout_ms, cfg.max_length_ms, cfg.idle_ms
    by_user: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for doc in events:
        if is_activity(doc):
            by_user[user_of(doc)].append(doc)
    out = []
    for user, docs in by_user.items():
        def label(doc: dict[str, Any]) -> str | None:
            name = doc.get("event")
            return None if not name or name == cfg.heartbeat_event else name

        docs.sort(key=lambda d: (d["timestamp"], label(d) or ""))
        runs: list[list[dict[str, Any]]] = []
        for doc in docs:
            if runs and doc["timestamp"] - runs[-1][-1]["timestamp"] <= timeout \
                    and doc["timestamp"] - runs[-1][0]["timestamp"] <= max_length:
                runs[-1].append(doc)
            else:
                runs.append([doc])
        for run in runs:
            times = [d["timestamp"] for d in run]
            named = [label(d) for d in run if label(d)]
            cores: dict[str, int] = {}
            for d in run:
                for name in core_actions_of(d, settings):
                    cores[name] = cores.get(name, 0) + 1
            used = {feature_of(d, settings) for d in run} - {None}
            start, end = times[0], times[-1]
            out.append({
                "user_id": user, "start_ms": start, "end_ms": end,
                "duration_s": (end - start) / 1000,
                "active_time_s": sum(min(b - a, idle) for a, b in pairwise(times)) / 1000,
                "event_count": len(run),
                "core_actions": {a.name: cores[a.name] for a in settings.usage.core_actions if a.name in cores},
                "core_action_count": sum(cores.values()),
                "features": [f for f in settings.usage.features if f in used],
                "entry_event": named[0] if named else None, "exit_event": named[-1] if named else None,
                "closed_by": "max_length" if end + timeout > start + max_length else "inactivity",
            })
    return out


def comparable(session: dict[str, Any]) -> tuple:
    """The fields the reference defines, as a sortable, hashable tuple."""
    keys = ("user_id", "start_ms", "end_ms", "duration_s", "active_time_s", "event_count", "core_action_count",
            "entry_event", "exit_event", "closed_by")
    return (*(session[k] for k in keys), tuple(sorted(session["core_actions"].items())), tuple(session["features"]))


def day(ms: int) -> int:
    return ms // MS_PER_DAY  # the tests run with the default (UTC) time zone


def usage_days(events: list[dict[str, Any]], settings: Settings, days: Iterable[int],
               plan_of: dict[str, str] | None = None) -> dict[int, dict[str, Any]]:
    """The usage snapshot figures of each day (windows ending on it), before the finisher."""
    cadence_need = 7 // {"daily": 1, "weekly": 7}[settings.usage.cadence]
    first_day: dict[str, int] = {}
    active: dict[str, set[int]] = defaultdict(set)
    core: dict[str, dict[str, list[int]]] = defaultdict(lambda: defaultdict(list))
    feature: dict[str, dict[str, list[int]]] = defaultdict(lambda: defaultdict(list))
    for doc in events:
        user, d = user_of(doc), day(doc["timestamp"])
        first_day[user] = min(first_day.get(user, d), d)
        if not is_activity(doc):
            continue
        active[user].add(d)
        for name in core_actions_of(doc, settings):
            core[name][user].append(d)
        name = feature_of(doc, settings)
        if name:
            feature[name][user].append(d)
    visits: dict[str, list[int]] = defaultdict(list)
    for s in sessions(events, settings):
        visits[s["user_id"]].append(day(s["start_ms"]))

    def within(days_: Iterable[int], d: int, width: int) -> list[int]:
        return [x for x in days_ if d - width < x <= d]

    out = {}
    for d in days:
        figures: dict[str, Any] = {
            "cadence": settings.usage.cadence,
            "users_total": sum(1 for f in first_day.values() if f <= d),
            "active_users": {f"{w}d": sum(1 for a in active.values() if within(a, d, w)) for w in (1, 7, 28, 30)},
            "on_cadence_users_7d": sum(1 for a in active.values() if len(within(a, d, 7)) >= max(cadence_need, 1)),
            "visits": {f"{w}d": sum(len(within(v, d, w)) for v in visits.values()) for w in (1, 7, 30)},
            "core_actions": {
                a.name: {"count": {f"{w}d": sum(len(within(x, d, w)) for x in core[a.name].values()) for w in (1, 7, 28)},
                         "users": {f"{w}d": sum(1 for x in core[a.name].values() if within(x, d, w)) for w in (1, 7, 28)}}
                for a in settings.usage.core_actions},
            "features": {
                f: {"uses": {f"{w}d": sum(len(within(x, d, w)) for x in feature[f].values()) for w in (1, 28)},
                    "users": {f"{w}d": sum(1 for x in feature[f].values() if within(x, d, w)) for w in (1, 28)}}
                for f in settings.usage.features},
        }
        figures["core_actions_weighted"] = {
            f"{w}d": sum(a.weight * figures["core_actions"][a.name]["count"][f"{w}d"] for a in settings.usage.core_actions)
            for w in (1, 7, 28)}
        if plan_of is not None:
            plans: dict[str, dict[str, int]] = {}
            for user, f in first_day.items():
                if f > d:
                    continue
                seg = plans.setdefault(plan_of.get(user, "unknown"),
                                       {"users_total": 0, "active_users_30d": 0, "visits_30d": 0})
                seg["users_total"] += 1
                seg["active_users_30d"] += 1 if within(active.get(user, ()), d, 30) else 0
                seg["visits_30d"] += len(within(visits.get(user, ()), d, 30))
            figures["segments_plan"] = plans
        out[d] = figures
    return out
