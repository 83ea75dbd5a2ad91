"""Randomized event sets for the activity tests, and the independent batch answer for them.

The batch side is plain Python over the whole event set at once, written from the definitions
in docs/active-users.md#active-users-stickiness-and-lifecycle and sharing no code with the streaming implementation (not even the day
arithmetic): sets of active days per user, then every figure of every day by direct counting.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Callable, Iterable
from zoneinfo import ZoneInfo

from tests.support.evidence import ReferenceWatermark

DAY_MS = 86_400_000
STATES = ("new", "returning", "resurrected", "dormant")
PLANS = ("free", "team", "business", "enterprise")
PLATFORMS = ("web", "ios", "android")
COUNTRIES = ("DE", "US", "FR", "BR")


@dataclass
class EventSet:
    """Events in arrival order; which of them the pipeline must apply (the rest are late or repeats)."""

    arrivals: list[dict[str, Any]] = field(default_factory=list)
    accepted: list[dict[str, Any]] = field(default_factory=list)
    late: int = 0
    duplicates: int = 0


def generate(seed: int, users: int, days: int, start_ms: int, lateness_ms: int,
             late_share: float = 0.01, duplicate_share: float = 0.03,
             home: Callable[[str], int] = lambda user: 0) -> EventSet:
    """Users with varied habits (daily, weekly, a burst then a comeback after weeks, one-off),
    segment values that change (plan by identify, platform and country by context), events
    arriving out of order by up to 90% of the lateness, duplicates soon after their original,
    and late events (older than the watermark of their user's partition, ``home``, at arrival, by
    the rule of docs/contract.md: :class:`~tests.support.evidence.ReferenceWatermark`)."""
    rng = random.Random(seed)
    docs: list[dict[str, Any]] = []
    serial = 0
    used_ts: set[tuple[str, int]] = set()
    for u in range(users):
        user = f"user-{seed}-{u}"
        habit = rng.choice(("daily", "weekly", "comeback", "once", "random"))
        active: set[int] = set()
        if habit == "daily":
            first = rng.randrange(days)
            active = {d for d in range(first, days) if rng.random() < 0.8}
        elif habit == "weekly":
            first = rng.randrange(days)
            active = {d for d in range(first, days, rng.choice((5, 7, 9)))}
        elif habit == "comeback":
            first = rng.randrange(max(1, days // 3))
            gap = rng.randrange(13, 22)
            active = {first, first + 1, first + 2} | {d for d in range(first + 2 + gap, days) if rng.random() < 0.3}
        elif habit == "once":
            active = {rng.randrange(days)}
        else:
            active = {d for d in range(days) if rng.random() < 0.15}
        active = {d for d in active if 0 <= d < days}
        plan = rng.choice(PLANS)
        platform = rng.choice(PLATFORMS)
        country = rng.choice(COUNTRIES)
        account = f"acct-{u % 7}"
        for day in sorted(active):
            if rng.random() < 0.1:
                plan = rng.choice(PLANS)
                docs.append(_doc(user, account, "identify", start_ms, day, rng, used_ts, serial,
                                 traits={"plan": plan}))
                serial += 1
            if rng.random() < 0.1:
                platform = rng.choice(PLATFORMS)
            for _ in range(rng.randint(1, 3)):
                kind = rng.choice(("track", "page", "screen"))
                docs.append(_doc(user, account, kind, start_ms, day, rng, used_ts, serial,
                                 context={"platform": platform, "country": country}))
                serial += 1
        if not active and rng.random() < 0.5:  # identified but never active: not a user of any figure
            docs.append(_doc(user, account, "identify", start_ms, rng.randrange(days), rng, used_ts, serial,
                             traits={"plan": plan}))
            serial += 1
    # Arrival order: event time plus a delay below the lateness, so none of these is late.
    arrivals = sorted(((doc["timestamp"] + rng.random() * 0.9 * lateness_ms, doc) for doc in docs),
                      key=lambda pair: pair[0])
    out = EventSet()
    watermarks: dict[int, ReferenceWatermark] = {}
    for _, doc in arrivals:
        out.arrivals.append(doc)
        out.accepted.append(doc)
        partition = home(doc["user_id"])
        watermark = watermarks.setdefault(partition, ReferenceWatermark(lateness_ms))
        watermark.observe(doc["user_id"], doc["timestamp"])
        if rng.random() < duplicate_share:  # a retry: same event id, right behind the original
            out.arrivals.append(dict(doc))
            watermark.observe(doc["user_id"], doc["timestamp"])
            out.duplicates += 1
        if rng.random() < late_share and watermark.value is not None:
            late = dict(doc, event_id=f"late-{serial}",
                        timestamp=watermark.value - rng.randrange(1, 3 * 3600_000))
            serial += 1
            out.arrivals.append(late)
            out.late += 1
    return out


def _doc(user: str, account: str, kind: str, start_ms: int, day: int, rng: random.Random,
         used: set[tuple[str, int]], serial: int, **extra: Any) -> dict[str, Any]:
    while True:  # distinct event times per user: "latest observation of a day" is unambiguous
        ts = start_ms + day * DAY_MS + rng.randrange(DAY_MS)
        if (user, ts) not in used:
            used.add((user, ts))
            break
    doc: dict[str, Any] = {"event_id": f"ev-{serial}", "type": kind, "user_id": user, "account_id": account,
                           "timestamp": ts}
    if kind == "track":
        doc["event"] = "clicked"
    doc.update(extra)
    return doc


class LocalDays:
    """Local calendar dates by zoneinfo, as ISO strings (independent of streams.core.calendar)."""

    def __init__(self, tz: str) -> None:
        self.tz = ZoneInfo(tz)

    def date(self, ts_ms: int) -> str:
        return datetime.fromtimestamp(ts_ms / 1000, timezone.utc).astimezone(self.tz).date().isoformat()


def _ordinal(iso: str) -> int:
    return datetime.fromisoformat(iso).toordinal()


def _iso(ordinal: int) -> str:
    return datetime.fromordinal(ordinal).date().isoformat()


@dataclass
class SegmentSpec:
    name: str
    source: str  # "traits" (identify only) or "context"
    values: tuple[str, ...] = ()  # configured values; empty: first ``cap`` seen (one partition only)
    cap: int = 20


def batch_figures(accepted: Iterable[dict[str, Any]], tz: str, dormant_days: int,
                  segments: list[SegmentSpec], first: str, last: str) -> dict[str, dict[str, Any]]:
    """Every day's figures from ``first`` to ``last`` (ISO dates), overall and per segment value."""
    days_of = LocalDays(tz)
    accepted = list(accepted)
    active: dict[str, set[int]] = {}
    observations: dict[tuple[str, str], list[tuple[int, str]]] = {}
    admitted: dict[str, list[str]] = {s.name: [] for s in segments}
    for doc in accepted:
        user = doc["user_id"]
        if doc["type"] in ("track", "page", "screen"):
            active.setdefault(user, set()).add(_ordinal(days_of.date(doc["timestamp"])))
        for spec in segments:
            source = doc.get("traits") if spec.source == "traits" and doc["type"] == "identify" else \
                doc.get("context") if spec.source == "context" else None
            if not source or spec.name not in source:
                continue
            value = str(source[spec.name])
            if spec.values:
                label = value if value in spec.values else "other"
            else:
                if value not in admitted[spec.name] and len(admitted[spec.name]) < spec.cap:
                    admitted[spec.name].append(value)
                label = value if value in admitted[spec.name] else "other"
            observations.setdefault((user, spec.name), []).append((doc["timestamp"], label))
    D = dormant_days

    def last_on_or_before(days: set[int], d: int) -> int | None:
        earlier = [a for a in days if a <= d]
        return max(earlier) if earlier else None

    def klass(days: set[int], x: int) -> str:
        if x == min(days):
            return "new"
        prev = last_on_or_before(days, x - 1)
        return "returning" if prev is not None and x - prev <= D else "resurrected"

    def state(days: set[int], d: int) -> str | None:
        if d < min(days):
            return None
        L = last_on_or_before(days, d)
        assert L is not None
        return "dormant" if d - L >= D else klass(days, L)

    def label(user: str, spec: SegmentSpec, d: int) -> str:
        best: tuple[int, str] | None = None
        for ts, value in observations.get((user, spec.name), []):
            if _ordinal(days_of.date(ts)) <= d and (best is None or ts > best[0]):
                best = (ts, value)
        return best[1] if best else "unknown"

    out: dict[str, dict[str, Any]] = {}
    for d in range(_ordinal(first), _ordinal(last) + 1):
        overall = empty()
        segs: dict[str, dict[str, dict[str, Any]]] = {s.name: {} for s in segments}
        for user, days in active.items():
            st = state(days, d)
            if st is None:
                continue
            groups = [overall] + [segs[s.name].setdefault(label(user, s, d), empty()) for s in segments]
            L = last_on_or_before(days, d)
            for g in groups:
                g["users"] += 1
                g["lifecycle"][st] += 1
                if L is not None and d - L < 30:
                    g["mau"] += 1
                if L is not None and d - L < 7:
                    g["wau"] += 1
                if d in days:
                    g["dau"] += 1
                    g["daily"][klass(days, d)] += 1
                elif L is not None and d - L == D:
                    g["daily"]["dormant"] += 1
        if segments:
            overall["segments"] = {name: {v: g for v, g in values.items() if nonzero(g)}
                                   for name, values in segs.items()}
        out[_iso(d)] = overall
    return out


def batch_transitions(accepted: Iterable[dict[str, Any]], tz: str, dormant_days: int,
                      last: str) -> set[tuple[str, str | None, str, str]]:
    """(user, from, to, day) of every lifecycle change up to ``last``."""
    days_of = LocalDays(tz)
    active: dict[str, set[int]] = {}
    for doc in accepted:
        if doc["type"] in ("track", "page", "screen"):
            active.setdefault(doc["user_id"], set()).add(_ordinal(days_of.date(doc["timestamp"])))
    D = dormant_days
    out = set()
    for user, days in active.items():
        previous = None
        for d in range(min(days), _ordinal(last) + 1):
            L = max(a for a in days if a <= d)
            if d - L >= D:
                now = "dormant"
            elif L == min(days):
                now = "new"
            else:
                prev = max((a for a in days if a < L), default=None)
                now = "returning" if prev is not None and L - prev <= D else "resurrected"
            if now != previous:
                out.add((user, previous, now, _iso(d)))
            previous = now
    return out


def empty() -> dict[str, Any]:
    return {"dau": 0, "wau": 0, "mau": 0, "users": 0, "lifecycle": dict.fromkeys(STATES, 0),
            "daily": dict.fromkeys(STATES, 0)}


def nonzero(group: dict[str, Any]) -> bool:
    return any(v for k, v in group.items() if isinstance(v, int)) or \
        any(v for part in ("lifecycle", "daily") for v in group[part].values())


def normalized(figures: dict[str, Any]) -> dict[str, Any]:
    """Pipeline figures without derived ratios and empty segment groups (comparable with the batch)."""
    out = {k: v for k, v in figures.items() if k not in ("stickiness", "segments")}
    if "segments" in figures:
        out["segments"] = {name: {value: normalized(g) for value, g in values.items() if nonzero(g)}
                           for name, values in figures["segments"].items()}
    return out


def stickiness(group: dict[str, Any]) -> dict[str, float | None]:
    mau = group["mau"]
    return {"dau_mau": group["dau"] / mau if mau else None, "wau_mau": group["wau"] / mau if mau else None}
