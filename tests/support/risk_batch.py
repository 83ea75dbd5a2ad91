"""The reference: churn-risk bands assessed for every user on every day in scope, in one batch.

Plain Python over a user's whole event list, written from the definitions in
docs/health-and-risk.md#churn-risk (points per reason, bands with hysteresis and calm days,
onboarding) and docs/health-and-risk.md#engagement-score-0-100 (the windows, the user's normal
gap, the scope of ``horizon_days``), sharing no code with the streaming implementation: it assesses
every user on *every* day of their scope, which is exactly the sweep the pipeline no longer does.
The tests compare the pipeline's ``churn_risk`` signals with the changes found here.

Event time: every day ``d`` is assessed once its events are in, with the sessions that closed by
then (a session closes its inactivity timeout after its last event, or at its maximum length;
the day is judged the session timeout plus a minute after its end), so a session running past
midnight counts for its start day from the next day's assessment on. A cancel-intent or
escalation event is assessed at once, on the user's events up to it; these event assessments
are only modelled for configurations whose usage drop ignores active minutes (``drop_weight_active_time``
and ``drop_weight_core_actions`` 0): minutes of sessions still open at an event would need the
pipeline's watermark.
"""

from __future__ import annotations

import math
from collections import defaultdict
from typing import Any, Callable, Iterable

from streams.config import MS_PER_DAY, MS_PER_MINUTE, Settings
from streams.core.routing import HomePartitions
from tests.support.open_days_batch import OpenDays
from tests.support.session_batch import core_actions_of, is_activity, sessions, user_of

BANDS = ("low", "medium", "high")


def _day(ms: int) -> int:
    return ms // MS_PER_DAY  # the tests run in UTC


class UserDays:
    """One user's days: activity, core actions, sessions (with when they closed), marks."""

    def __init__(self) -> None:
        self.first_ms: int | None = None
        self.active: set[int] = set()
        self.cores: dict[int, int] = defaultdict(int)
        self.sessions: list[tuple[int, int, int]] = []
        """(start day, active minutes, time the session closed)."""
        self.negative: list[int] = []
        self.escalations: list[int] = []
        self.events: list[dict[str, Any]] = []


def _sums(u: UserDays, lo: int, hi: int, closed_by: int, cores_until: int | None = None) -> list[float]:
    """[active days, active minutes, core actions] over days lo..hi (sessions closed by ``closed_by``)."""
    days = sum(1 for a in u.active if lo <= a <= hi)
    minutes = sum(m for d, m, closed in u.sessions if lo <= d <= hi and closed < closed_by)
    cores = sum(n for d, n in u.cores.items() if lo <= d <= hi)
    return [days, minutes, cores]


class RiskReference:
    """Daily assessments of every user in scope, plus assessments at cancel intents and escalations."""

    def __init__(self, settings: Settings) -> None:
        self.s = settings
        self.r = settings.risk
        self.timeout = settings.sessions.timeout_ms
        self.settle = settings.sessions.timeout_ms + MS_PER_MINUTE
        self.horizon = settings.engagement.horizon_days

    # --- facts ---------------------------------------------------------------------------
    def users(self, events: Iterable[dict[str, Any]]) -> dict[str, UserDays]:
        events = list(events)
        out: dict[str, UserDays] = defaultdict(UserDays)
        for doc in events:
            u = out[user_of(doc)]
            u.first_ms = doc["timestamp"] if u.first_ms is None else min(u.first_ms, doc["timestamp"])
            u.events.append(doc)
            if not is_activity(doc):
                continue
            d = _day(doc["timestamp"])
            u.active.add(d)
            u.cores[d] += len(core_actions_of(doc, self.s))
            if doc.get("event") in self.r.negative_events:
                u.negative.append(d)
            elif doc.get("event") in self.r.escalation_events:
                u.escalations.append(d)
        max_length = self.s.sessions.max_length_ms
        for session in sessions(events, self.s):
            closed = min(session["end_ms"] + self.timeout, session["start_ms"] + max_length) + 1
            out[session["user_id"]].sessions.append(
                (_day(session["start_ms"]), round(session["active_time_s"] * 1000 / 60_000), closed))
        return out

    def facts(self, u: UserDays, d: int, at_ms: int, silence_open: int | None = None,
              opened: Callable[[int, int], int] = lambda lo, hi: hi - lo + 1) -> dict[str, Any]:
        """What the rules look at on day ``d``, from the user's days (sessions closed by ``at_ms``);
        ``silence_open``: the days of the silence on which the user's account was open; ``opened``:
        the open days of the account within a span of days."""
        first = _day(u.first_ms or 0)
        last = max(a for a in u.active if a <= d)
        baseline = sorted(a for a in u.active if d - 34 <= a <= d - 7)
        gap = None
        if len(baseline) >= 2:
            gap = min(14.0, max(1.0, (baseline[-1] - baseline[0]) / (len(baseline) - 1)))
        anchor = min(d, last + self.r.drop_anchor_days)
        full_weeks = min(4, (anchor - first + 1 - 7) // 7)
        weeks = [_sums(u, anchor - 7 * (k + 1) + 1, anchor - 7 * k, at_ms) for k in range(1, full_weeks + 1)]
        recency = d - last if silence_open is None else min(d - last, silence_open)
        return {"history": d - first + 1, "recency": recency, "gap": gap,
                "recent": _sums(u, anchor - 6, anchor, at_ms), "weeks": weeks,
                "recent_open": opened(anchor - 6, anchor),
                "weeks_open": [opened(anchor - 7 * (k + 1) + 1, anchor - 7 * k) for k in range(1, full_weeks + 1)],
                "negative": sum(1 for m in u.negative if d - self.r.negative_days < m <= d),
                "escalations": sum(1 for m in u.escalations if d - self.r.escalation_days < m <= d)}

    # --- rules ---------------------------------------------------------------------------
    def points(self, f: dict[str, Any]) -> tuple[float, bool, bool]:
        """(points, onboarding, a cancel intent among the reasons)."""
        r = self.r
        onboarding = f["history"] <= r.onboarding_days
        silence = 0.0
        if f["gap"] is None:
            start, full = r.onboarding_inactive_days, r.inactive_high_days
        else:
            start = max(r.inactive_medium_days, r.inactive_medium_gaps * f["gap"])
            full = max(r.inactive_high_days, r.inactive_high_gaps * f["gap"])
        if f["recency"] >= start:
            silence = r.medium + (r.high - r.medium) * min(1.0, max(0.0, (f["recency"] - start) / max(1.0, full - start)))
        drop = 0.0 if onboarding else self.drop(f["weeks"], f["recent"], f["weeks_open"], f["recent_open"])
        negative = r.negative_points if f["negative"] else 0.0
        escalations = min(r.escalation_max_points, f["escalations"] * r.escalation_points) if f["escalations"] else 0.0
        return min(100.0, 0.0 + silence + drop + negative + escalations), onboarding, bool(f["negative"])

    def drop(self, weeks: list[list[float]], recent: list[float], weeks_open: list[int], recent_open: int) -> float:
        """Weeks count when the account was open on at least 4 of their days, and their active
        days count per 7 open days."""
        r = self.r
        if recent_open < 4:
            return 0.0
        weeks = [[w[0] * 7 / o, w[1], w[2], w[0]] for w, o in zip(weeks, weeks_open) if o >= 4]
        recent = [recent[0] * 7 / recent_open, recent[1], recent[2], recent[0]]
        if len(weeks) < 2 or sum(w[0] for w in weeks) / len(weeks) < r.habit_active_days:
            return 0.0

        def factor(week: list[float], j: int) -> float | None:
            days, minutes, cores, raw = week
            return (days, minutes / raw if raw else None, cores * 60 / minutes if minutes else None)[j]

        weights = (r.drop_weight_activity, r.drop_weight_active_time, r.drop_weight_core_actions)
        means = [sum(w[i] for w in weeks) / len(weeks) for i in range(3)]
        enough = (True, means[1] >= r.min_active_minutes, means[2] >= r.min_core_actions)
        zs, ws = [], []
        for j in range(3):
            values = [v for v in (factor(w, j) for w in weeks) if v is not None]
            if len(values) < 2 or not enough[j] or weights[j] <= 0:
                continue
            mean = sum(values) / len(values)
            if mean <= 0:
                continue
            spread = math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1))
            now = factor(recent, j)
            zs.append((mean - (now if now is not None else 0.0)) / max(spread, r.drop_spread_floor * mean))
            ws.append(weights[j])
        if not zs:
            return 0.0
        z = sum(w * x for w, x in zip(ws, zs)) / sum(ws)
        return r.drop_points * min(1.0, max(0.0, (z - r.drop_z_start) / (r.drop_z_full - r.drop_z_start)))

    def band(self, previous: int, points: float, onboarding: bool, strong: bool, calm: int) -> int:
        r = self.r
        if points >= r.high or (previous == 2 and points >= r.high_exit):
            band = 2
        elif points >= r.medium or (previous >= 1 and points >= r.medium_exit):
            band = 1
        else:
            band = 0
        if onboarding and band == 2 and not strong:
            band = 1
        return previous if band < previous and calm + 1 < r.calm_days else band

    # --- the sweep -----------------------------------------------------------------------
    def changes(self, events: Iterable[dict[str, Any]], last_day: int) -> list[tuple[str, str | None, str, int, str]]:
        """(user, from, to, day, trigger) of every band change up to ``last_day``, in order per user."""
        r = self.r
        marked = set(r.negative_events) | set(r.escalation_events)
        if marked and (r.drop_weight_active_time or r.drop_weight_core_actions):
            raise ValueError("event assessments are modelled only without minute-based drop factors")
        events = list(events)
        home = HomePartitions(self.s.partitions, 100_000)
        open_days = OpenDays(events, lambda user: home(user.encode()))
        accounts = {user_of(doc): doc["account_id"] for doc in events if doc.get("account_id")}
        out = []
        for user, u in sorted(self.users(events).items()):
            if not u.active:
                continue

            def counted(d: int, final: int) -> int:
                """Open days of the silence up to ``final``, judging day ``d``."""
                last = max(a for a in u.active if a <= d)
                return open_days.open_days(user, accounts.get(user), last + 1, final, last) if last < final else 0

            def opened(d: int, final: int) -> Callable[[int, int], int]:
                """Open days within a span judging day ``d`` (days after ``final`` count as open)."""
                last = max(a for a in u.active if a <= d)
                return lambda lo, hi: (open_days.open_days(user, accounts.get(user), lo, min(hi, final), last)
                                       + max(0, hi - max(final, lo - 1)))

            triggers: dict[int, list[dict[str, Any]]] = defaultdict(list)
            seen: list[dict[str, Any]] = []
            for doc in u.events:  # events up to each trigger, in feed order
                seen.append(doc)
                if is_activity(doc) and doc.get("event") in marked:
                    triggers[_day(doc["timestamp"])].append({"upto": list(seen)})
            band: int | None = None
            calm = 0
            for d in range(min(u.active), last_day + 1):
                for trigger in triggers.get(d, ()):
                    part = self.users(trigger["upto"])[user]
                    points, onboarding, strong = self.points(self.facts(part, d, 0, counted(d, d - 1), opened(d, d - 1)))
                    new = max(self.band(band or 0, points, onboarding, strong, calm), band or 0)
                    if new != band and not (band is None and new == 0):
                        out.append((user, None if band is None else BANDS[band], BANDS[new], d, "event"))
                    band = new
                if not any(d - a <= self.horizon for a in u.active if a <= d):
                    continue  # out of scope: not assessed (nothing since horizon_days)
                points, onboarding, strong = self.points(self.facts(u, d, (d + 1) * MS_PER_DAY + self.settle,
                                                                    counted(d, d), opened(d, d)))
                new = self.band(band or 0, points, onboarding, strong, calm)
                calm_now = new == (band or 0) and new != 0 and \
                    points < (r.high_exit if new == 2 else r.medium_exit)
                calm = min(calm + 1, r.calm_days) if calm_now else 0
                if new != band and not (band is None and new == 0):
                    out.append((user, None if band is None else BANDS[band], BANDS[new], d, "day"))
                band = new
        return out
