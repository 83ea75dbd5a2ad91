"""Churn risk: a band (low / medium / high) with the reasons behind it, per user, with hysteresis.

Risk is a sum of points, one term per reason (codes in ``config.RISK_REASONS``):

* ``inactive_days``: silence longer than the user's normal gap between active days (the mean gap
  of the baseline's active days). From max(``inactive_medium_days``, ``inactive_medium_gaps`` x
  gap) days on it is worth the medium threshold, growing linearly to the high threshold at
  max(``inactive_high_days``, ``inactive_high_gaps`` x gap); a user without a baseline yet counts
  from ``onboarding_inactive_days``. A sudden full stop is judged here only: vacations are sudden,
  churn is gradual (see the usage drop's anchor below).
* ``activity_drop``, ``active_time_drop``, ``core_action_drop``: the usage drop, for users with a
  habit (``habit_active_days`` active days per baseline week). Three independent factors are
  compared with the user's own baseline weeks: active days per week, active minutes per active
  day (shorter sessions), core actions per active hour (less done when there). Each factor's drop
  is measured in the user's own week-to-week spread:
  ``z = (baseline weekly mean - recent week) / max(spread, drop_spread_floor x mean)``. The
  weighted mean ``Z`` gives ``drop_points x clamp((Z - drop_z_start) / (drop_z_full - drop_z_start))``.
  The recent week ends at most ``drop_anchor_days`` after the last active day.
* ``negative_event``: a cancel or downgrade intent within ``negative_days`` (alone: high).
* ``escalations``: support escalations within ``escalation_days``, ``escalation_points`` each.

Bands have hysteresis twice over: a user enters medium at ``medium`` points and high at ``high``,
and leaves them only below ``medium_exit`` / ``high_exit`` and after ``calm_days`` daily
assessments in a row below them, so a user hovering around a threshold (or dipping into it every
few days) produces one signal, not one a day. Events raise the band at once; only daily
assessments lower it. New users (``onboarding_days`` since first seen) have no baseline: they are
judged by onboarding rules (no drop rules, medium at most unless they show a cancel intent)
instead of as churners.

The capability listens to the engagement capability's ``engagement_evaluated`` notices, keeps the
band in ``state.ext["r"]`` (``[band, calm assessments so far]``) and emits a ``churn_risk`` signal
on each change. The rules are those of a daily assessment of every user in scope, but the work
follows what changes: the user is judged on the days with new activity (and at once on a
negative-intent or escalation event), and on the days their band or calm run can change while
they send nothing, which this capability works out after each judgement (:meth:`RiskPartition.next_day`)
and asks the engagement capability for. On the days in between the assessment would find what it
found the last time, so they count as calm assessments when the last one was calm
(``skipped_days`` of the notice). ``tests/integration/test_sparse.py`` checks the bands of every
user on every day against a batch assessment of every day.
"""

from __future__ import annotations

import math
from collections import Counter
from typing import TYPE_CHECKING, Any, Iterable, Mapping, NamedTuple, Sequence

from prometheus_client.core import GaugeMetricFamily, Metric

from streams.capabilities.engagement import NOTICE, EngagementPartition, Facts
from streams.capabilities.signals import SignalCounts, reason, signal, signal_id
from streams.config import BASELINE_DAYS, BASELINE_WEEKS, METRIC_PREFIX, RECENT_DAYS, RISK_BANDS, RiskConfig, Settings
from streams.core.calendar import DayClock
from streams.core.capability import Capability, PartitionCapability, Shared

if TYPE_CHECKING:
    from streams.core.capability import PartitionContext
    from streams.core.state import UserState

SLOT = "r"
LOW, MEDIUM, HIGH = 0, 1, 2
DROP_CODES = ("activity_drop", "active_time_drop", "core_action_drop")


class Assessment(NamedTuple):
    points: float
    reasons: list[dict[str, Any]]
    onboarding: bool
    parts: list[float] = []


def _clamp(x: float) -> float:
    return 0.0 if x < 0 else 1.0 if x > 1 else x


def _factors(week: Sequence[float]) -> tuple[float, float | None, float | None]:
    """(active days, active minutes per active day, core actions per active hour) of a week's
    [active days, minutes, core actions]."""
    days, minutes, cores = week
    return (days, minutes / days if days else None, cores * 60 / minutes if minutes else None)


def drop_z(weeks: Sequence[Sequence[float]], recent: Sequence[float], floor: float) -> list[tuple[float, float] | None]:
    """Per factor, (z, baseline mean): how many of the user's week-to-week spreads the recent week
    is below the baseline weeks' mean (None: not enough baseline weeks with that factor)."""
    now = _factors(recent)
    out: list[tuple[float, float] | None] = []
    for j in range(3):
        values = [v for v in (_factors(w)[j] for w in weeks) if v is not None]
        if len(values) < 2:
            out.append(None)
            continue
        mean = sum(values) / len(values)
        if mean <= 0:
            out.append(None)
            continue
        spread = math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1))
        current = now[j]
        x = current if current is not None else 0.0
        out.append(((mean - x) / max(spread, floor * mean), mean))
    return out


class RiskRules:
    """Points and reasons from an ``engagement_evaluated`` payload, and bands with hysteresis."""

    def __init__(self, config: RiskConfig) -> None:
        self.c = config

    def assess(self, facts: Mapping[str, Any]) -> Assessment:
        c = self.c
        onboarding = facts["history_days"] <= c.onboarding_days
        reasons: list[dict[str, Any]] = []
        parts = [0.0, 0.0, 0.0, 0.0]
        """Points of silence, usage drop, cancel intents, escalations (summed in this order)."""
        recency = facts.get("recency_days")
        if recency is not None:
            start, full, usual = self.silence(facts)
            points = self.silence_points(recency, start, full)
            if points:
                parts[0] = points
                reasons.append(reason("inactive_days", f"no activity for {recency} days ({usual})", points))
        if not onboarding:
            parts[1], drops = self._drop(facts)
            reasons.extend(drops)
        negative = facts.get("negative_events") or 0
        escalations = facts.get("escalations") or 0
        parts[2], parts[3] = self.mark_points(negative, escalations)
        if negative:
            reasons.append(reason("negative_event", f"{negative} cancel or downgrade intent"
                                  f"{'s' if negative > 1 else ''} in the last {c.negative_days} days",
                                  c.negative_points))
        if escalations:
            reasons.append(reason("escalations", f"{escalations} support escalation"
                                  f"{'s' if escalations > 1 else ''} in the last {c.escalation_days} days", parts[3]))
        reasons.sort(key=lambda r: -r["points"])
        return Assessment(self.total(parts), reasons, onboarding, parts)

    def mark_points(self, negative: int, escalations: int) -> tuple[float, float]:
        """Points of cancel / downgrade intents and of support escalations in their windows."""
        c = self.c
        return (c.negative_points if negative else 0.0,
                min(c.escalation_max_points, escalations * c.escalation_points) if escalations else 0.0)

    @staticmethod
    def total(parts: Sequence[float]) -> float:
        """The points of an assessment from its parts (one expression, so that a day's points can
        be recomputed exactly with another silence)."""
        return min(100.0, 0.0 + parts[0] + parts[1] + parts[2] + parts[3])

    def silence(self, facts: Mapping[str, Any]) -> tuple[float, float, str]:
        """(days of silence that start to count, days that count fully, the user's rhythm in words)."""
        c = self.c
        gap = facts.get("gap_days")
        if gap is None:  # no baseline yet: no normal gap to judge by
            return c.onboarding_inactive_days, c.inactive_high_days, f"first seen {facts['history_days']} days ago"
        return (max(c.inactive_medium_days, c.inactive_medium_gaps * gap),
                max(c.inactive_high_days, c.inactive_high_gaps * gap), f"usually active every {gap:.1f} days")

    def silence_points(self, recency: int, start: float, full: float) -> float:
        c = self.c
        if recency < start:
            return 0.0
        return c.medium + (c.high - c.medium) * _clamp((recency - start) / max(1.0, full - start))

    def drop_points(self, facts: Mapping[str, Any]) -> float:
        """The usage drop's points, whether or not the user is onboarding."""
        return self._drop(facts)[0]

    def _drop(self, facts: Mapping[str, Any]) -> tuple[float, list[dict[str, Any]]]:
        c = self.c
        weeks, recent = facts.get("weeks") or [], facts.get("anchored")
        if recent is None or len(weeks) < 2:
            return 0.0, []
        means = [sum(w[i] for w in weeks) / len(weeks) for i in range(3)]
        if means[0] < c.habit_active_days:
            return 0.0, []
        enough = (True, means[1] >= c.min_active_minutes, means[2] >= c.min_core_actions)
        zs = drop_z(weeks, recent, c.drop_spread_floor)
        parts = [(j, found[0], found[1], w) for j, (found, w) in enumerate(zip(zs, c.drop_weights))
                 if found is not None and enough[j] and w > 0]
        if not parts:
            return 0.0, []
        weight = sum(w for _, _, _, w in parts)
        z = sum(w * zj for _, zj, _, w in parts) / weight
        points = c.drop_points * _clamp((z - c.drop_z_start) / (c.drop_z_full - c.drop_z_start))
        if points <= 0:
            return 0.0, []
        now = _factors(recent)
        pushes = [(j, zj, mean, w * max(zj, 0.0)) for j, zj, mean, w in parts if zj >= c.drop_z_start]
        share = sum(p for *_, p in pushes) or 1.0
        out = []
        for j, zj, mean, push in pushes:
            x = now[j] or 0.0
            text = (f"active on {x:g} of the last 7 days, against {mean:.1f} a week before",
                    f"{x:.0f} active minutes per active day in the last 7 days, against {mean:.0f} before",
                    f"{x:.1f} core actions per active hour in the last 7 days, against {mean:.1f} before")[j]
            out.append(reason(DROP_CODES[j], text, points * push / share))
        return points, out

    def band(self, previous: int, points: float, onboarding: bool, strong: bool, calm: int) -> int:
        """The band for ``points`` coming from ``previous``: enter at a threshold, leave below its
        exit threshold, and only after ``calm_days`` calm assessments (``calm`` counts the earlier
        ones); onboarding users reach high only on a negative-intent event."""
        c = self.c
        if points >= c.high or (previous == HIGH and points >= c.high_exit):
            band = HIGH
        elif points >= c.medium or (previous >= MEDIUM and points >= c.medium_exit):
            band = MEDIUM
        else:
            band = LOW
        if onboarding and band == HIGH and not strong:
            band = MEDIUM
        if band < previous and calm + 1 < c.calm_days:
            return previous
        return band

    def daily(self, previous: int, calm: int, points: float, onboarding: bool, strong: bool) -> tuple[int, int]:
        """A daily assessment: the band and the calm assessments in a row after it."""
        band = self.band(previous, points, onboarding, strong, calm)
        if band == previous and band != LOW and self.calm(band, points):
            return band, min(calm + 1, self.c.calm_days)
        return band, 0

    def calm(self, band: int, points: float) -> bool:
        """Whether an assessment of ``points`` is below the exit threshold of ``band`` (medium or high)."""
        c = self.c
        return points < (c.high_exit if band == HIGH else c.medium_exit)


class RiskCapability(Capability):
    """The configured churn-risk capability: one :class:`RiskPartition` per partition."""

    name = "risk"
    slot = SLOT
    requires = ("engagement",)

    def __init__(self, settings: Settings, shared: Shared | None = None) -> None:
        super().__init__(settings, shared or Shared())
        self.rules = RiskRules(settings.risk)
        self.clock = DayClock(settings.activity.timezone)
        self.signals = self.shared.get(SignalCounts, SignalCounts)

    def for_partition(self, ctx: "PartitionContext") -> "RiskPartition":
        return RiskPartition(ctx, self)

    def collect(self, parts: Sequence[PartitionCapability]) -> Iterable[Metric]:
        """Users per risk band (owned partitions) and the signal counter of every engagement signal."""
        gauge = GaugeMetricFamily(f"{METRIC_PREFIX}_risk_users", "Users per churn-risk band (owned "
                                  "partitions; sum over workers).", labels=["band"])
        bands: Counter[int] = Counter()
        for part in parts:
            if isinstance(part, RiskPartition):
                bands.update(part.bands)
        for code, name in enumerate(RISK_BANDS):
            gauge.add_metric([name], bands.get(code, 0))
        yield gauge
        yield self.signals.family()


class RiskPartition(PartitionCapability):
    """Bands of one partition's users, from engagement notices; a signal on each change."""

    def __init__(self, ctx: "PartitionContext", shared: RiskCapability) -> None:
        super().__init__(ctx)
        self.shared = shared
        self.bands: Counter[int] = Counter()
        self._peer: EngagementPartition | None = None

    def restore(self, key: bytes, state: "UserState") -> None:
        slot = state.ext.get(SLOT)
        if slot:
            self.bands[slot[0]] += 1

    def on_notice(self, key: bytes, state: "UserState", kind: str, payload: Any) -> None:
        if kind != NOTICE:
            return
        rules = self.shared.rules
        assessment = rules.assess(payload)
        slot = state.ext.get(SLOT)
        previous = slot[0] if slot else None
        calm = slot[1] if slot and len(slot) > 1 else 0
        strong = any(r["code"] == "negative_event" for r in assessment.reasons)
        daily = payload["trigger"] == "day"
        if daily:
            if calm:  # the days in scope since the last judgement were calm as well: nothing changed then
                calm = min(calm + payload.get("skipped_days", 0), self.shared.settings.risk.calm_days)
            band, calm = rules.daily(previous or LOW, calm, assessment.points, assessment.onboarding, strong)
        else:  # an event can raise the band at once; lowering waits for the daily assessment
            band = max(rules.band(previous or LOW, assessment.points, assessment.onboarding, strong, calm),
                       previous or LOW)
        stored = [band, calm] if calm else [band]
        if stored != slot:
            state.ext[SLOT] = stored
            self.ctx.mark_dirty(key, state)
        if daily:
            due = self.next_day(payload, assessment, band, calm, strong)
            engagement = self._engagement()
            if due is not None and engagement is not None:
                engagement.request(key, state, due)
        if previous == band:
            return
        if previous is not None:
            self.bands[previous] -= 1
        self.bands[band] += 1
        if previous is None and band == LOW:
            return  # first assessment, nothing to act on
        user = key.decode("utf-8", "replace")
        old = None if previous is None else RISK_BANDS[previous]
        new = RISK_BANDS[band]
        at = payload["at_ms"]
        self.ctx.emit(self.ctx.settings.signals_topic, key, signal(
            "churn_risk", signal_id("churn_risk", user, old, new, at), at,
            self.shared.clock.label(payload["day"]), user, payload.get("account") or state.account,
            **{"from": old, "to": new, "risk_points": round(assessment.points, 1), "score": payload.get("score"),
               "reasons": assessment.reasons, "onboarding": assessment.onboarding,
               "trigger": payload["trigger"]}))
        self.shared.signals.add("churn_risk", new)

    def _engagement(self) -> EngagementPartition | None:
        if self._peer is None:
            self._peer = self.ctx.peer(EngagementPartition)
        return self._peer

    def next_day(self, payload: Mapping[str, Any], assessment: Assessment, band: int, calm: int,
                 strong: bool) -> int | None:
        """The next day on which the user's band or calm run can change if they send nothing:
        the user is judged again then, and the days in between need no look.

        The rules are stepped forward from ``day`` on the user's own record: silence grows by a
        day a day; the normal gap changes as active days enter and leave the baseline, marks
        leave their windows, onboarding ends, each on a known day; the usage drop stays put once
        its windows stop moving (``drop_anchor_days`` after the last activity; until then the
        user is judged daily if they have the habit the drop needs). Stretches where the points
        cannot move are jumped over (a calm run completes after ``calm_days``), and the points
        are recomputed by the same expressions as the assessment, so the day found is the day a
        daily assessment would change something."""
        rules = self.shared.rules
        c = rules.c
        day, recency = payload["day"], payload.get("recency_days")
        facts: Facts | None = payload.get("facts")
        if recency is None or facts is None:
            return None
        ledger, last, first = facts.ledger, day - recency, payload["first_day"]
        bound: float = math.inf
        # The usage drop (whether or not onboarding) on each day its windows still move, then for good.
        drops = {e: self._drop_on(facts, e) for e in range(day + 1, last + c.drop_anchor_days + 1)}
        frozen = drops[max(drops)] if drops else rules.drop_points(payload)
        # Days on which the record's facts change without new events (each is looked at). The
        # normal gap matters only once silence can count (from ``counts``, whatever the gap).
        counts = last + math.ceil(min(c.inactive_medium_days, c.onboarding_inactive_days))
        changes = sorted({d for d in (first + c.onboarding_days, counts, *drops,
                                      *ledger.mark_days("negative", c.negative_days),
                                      *ledger.mark_days("escalations", c.escalation_days))
                          if d > day} | {d for d in ledger.baseline_changes() if d > max(day, counts)})
        parts = list(assessment.parts)
        calm_days = c.calm_days
        thresholds = sorted({c.medium_exit, c.medium, c.high_exit, c.high})
        start = full = 0.0
        e, at = day + 1, 0
        changed = True
        while e < bound:
            while at < len(changes) and changes[at] <= e:
                at += 1
                changed = True
            if changed:  # the facts of day ``e`` besides the silence
                changed = False
                onboarding = e - first + 1 <= c.onboarding_days
                negative = ledger.marks("negative", e - c.negative_days + 1, e)
                parts[1] = 0.0 if onboarding else drops.get(e, frozen)
                parts[2], parts[3] = rules.mark_points(negative, ledger.marks("escalations", e - c.escalation_days + 1, e))
                strong = negative > 0
                gap = facts.gap_on(e)
                start, full, _ = rules.silence({**payload, "gap_days": None if gap is None else round(gap, 2)})
            r = e - last
            parts[0] = rules.silence_points(r, start, full)
            after, after_calm = rules.daily(band, calm, rules.total(parts), onboarding, strong)
            if after != band or (after_calm == 0) != (calm == 0):
                return e
            calm = after_calm
            if start <= r < full:  # the silence grows day by day: on to the day it crosses a threshold
                limit = min(last + math.ceil(full), bound, changes[at] if at < len(changes) else math.inf,
                            e + calm_days - calm if calm else math.inf)
                now = rules.total(parts)
                target = min((t for t in thresholds if t > now), default=None)
                lo = hi = int(limit)
                if target is not None:
                    lo = e + 1
                    while lo < hi:  # the points only grow: the first day they reach the target
                        mid = (lo + hi) // 2
                        parts[0] = rules.silence_points(mid - last, start, full)
                        if rules.total(parts) >= target:
                            hi = mid
                        else:
                            lo = mid + 1
                if calm:
                    calm += lo - e - 1
                e = lo
                continue
            # The points stay as they are until silence starts counting (or for good once it
            # counts fully) or the facts change: only a calm run goes on, completing after
            # ``calm_days`` assessments in a row.
            stop = min(last + math.ceil(start) if r < start else math.inf, bound,
                       changes[at] if at < len(changes) else math.inf)
            if calm:
                completes = e + calm_days - calm
                if completes < stop:
                    return completes
                calm += int(stop) - e - 1 if stop < math.inf else 0
            if stop == math.inf:
                return None
            e = int(stop)
        return int(bound) if bound < math.inf else None

    def _drop_on(self, facts: Facts, day: int) -> float:
        """The usage drop's points on a later ``day`` if the user sends nothing until then (0 at
        once when the weeks it would compare cannot show the habit the drop needs)."""
        c = self.shared.rules.c
        anchor = min(day, day - facts.recency_on(day) + c.drop_anchor_days)
        weeks = min(BASELINE_WEEKS, (anchor - facts.first_day + 1 - RECENT_DAYS) // RECENT_DAYS)
        if weeks < 2:
            return 0.0
        habit = facts.ledger.usage(anchor - RECENT_DAYS * (weeks + 1) + 1, anchor - RECENT_DAYS).active_days
        if habit < c.habit_active_days * weeks:
            return 0.0
        later = facts.later(day)
        return self.shared.rules.drop_points({"weeks": [[w.measure(i) for i in range(3)] for w in later.weeks],
                                              "anchored": None if later.anchored is None else
                                              [later.anchored.measure(i) for i in range(3)]})

    def figures(self) -> dict[str, Any]:
        return {f"risk_{name}": self.bands.get(code, 0) for code, name in enumerate(RISK_BANDS)}

    def describe(self, key: bytes, state: "UserState") -> dict[str, Any]:
        """The user's band (as kept) and the reasons of the last daily assessment (recomputed from
        the engagement record: reasons are not stored per user)."""
        slot = state.ext.get(SLOT)
        if not slot:
            return {"band": None}
        out: dict[str, Any] = {"band": RISK_BANDS[slot[0]]}
        engagement = self.ctx.peer(EngagementPartition)
        facts = engagement.latest_facts(state) if engagement is not None else None
        if facts is not None:
            assessment = self.shared.rules.assess(facts)
            out.update(assessed_day=self.shared.clock.label(facts["day"]), points=round(assessment.points, 1),
                       reasons=assessment.reasons, onboarding=assessment.onboarding)
        return out
