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

import logging
import math
from collections import Counter
from typing import TYPE_CHECKING, Any, Iterable, Mapping, NamedTuple, Sequence

from prometheus_client.core import GaugeMetricFamily, Metric

from streams.capabilities import risk_bands
from streams.capabilities.engagement import NOTICE, RESTED, EngagementPartition, Facts
from streams.capabilities.risk_bands import Hold, cut_for, model_reasons
from streams.capabilities.risk_learner import Learner
from streams.capabilities.risk_learning import Pending, features, phase, quantize, resolve
from streams.capabilities.signals import SignalCounts, reason, signal, signal_id
from streams.config import BASELINE_DAYS, BASELINE_WEEKS, METRIC_PREFIX, RECENT_DAYS, RISK_BANDS, RiskConfig, Settings
from streams.core.calendar import DayClock
from streams.core.capability import Capability, PartitionCapability, Shared

if TYPE_CHECKING:
    from streams.core.capability import PartitionContext
    from streams.core.contract import Event
    from streams.core.state import UserState

log = logging.getLogger(__name__)
SLOT = "r"
MODES = ("rules", "model")
LOW, MEDIUM, HIGH = 0, 1, 2
DROP_CODES = ("activity_drop", "active_time_drop", "core_action_drop")
OPEN_WEEK_DAYS = 4
"""A week of the usage drop counts only when the user's account was open on at least this many of
its days; its active days count per 7 open days (a holiday week is no drop)."""


class Assessment(NamedTuple):
    points: float
    reasons: list[dict[str, Any]]
    onboarding: bool
    parts: list[float] = []


def _clamp(x: float) -> float:
    return 0.0 if x < 0 else 1.0 if x > 1 else x


def _factors(week: Sequence[float], open_days: int = RECENT_DAYS) -> tuple[float, float | None, float | None]:
    """(active days per 7 open days of the account, active minutes per active day, core actions per
    active hour) of a week's [active days, minutes, core actions] with ``open_days`` open days."""
    days, minutes, cores = week
    return (days * RECENT_DAYS / open_days if open_days else 0.0, minutes / days if days else None,
            cores * 60 / minutes if minutes else None)


def drop_z(weeks: Sequence[Sequence[float]], recent: Sequence[float], floor: float,
           opens: Sequence[int] | None = None, recent_open: int = RECENT_DAYS) -> list[tuple[float, float] | None]:
    """Per factor, (z, baseline mean): how many of the user's week-to-week spreads the recent week
    is below the baseline weeks' mean (None: not enough baseline weeks with that factor); ``opens``:
    the open days of the account in each baseline week (default: all)."""
    now = _factors(recent, recent_open)
    opens = opens or [RECENT_DAYS] * len(weeks)
    out: list[tuple[float, float] | None] = []
    for j in range(3):
        values = [v for v in (_factors(w, o)[j] for w, o in zip(weeks, opens)) if v is not None]
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

    def assess(self, facts: Mapping[str, Any], silence: int | None = None) -> Assessment:
        """The points and reasons of a judgement; ``silence``: the days of the user's silence that
        count (their account was open on them; default: all of them)."""
        c = self.c
        onboarding = facts["history_days"] <= c.onboarding_days
        reasons: list[dict[str, Any]] = []
        parts = [0.0, 0.0, 0.0, 0.0]
        """Points of silence, usage drop, cancel intents, escalations (summed in this order)."""
        recency = facts.get("recency_days")
        if recency is not None:
            counted = recency if silence is None else min(silence, recency)
            start, full, usual = self.silence(facts)
            points = self.silence_points(counted, start, full)
            if points:
                parts[0] = points
                shared = f"{counted} of them while the account was active, " if counted < recency else ""
                reasons.append(reason("inactive_days", f"no activity for {recency} days ({shared}{usual})", points))
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
        opens = facts.get("weeks_open") or [RECENT_DAYS] * len(weeks)
        recent_open = facts.get("anchored_open", RECENT_DAYS)
        if recent is None or recent_open < OPEN_WEEK_DAYS:
            return 0.0, []  # a week the account mostly sat out says nothing about the user's habit
        kept = [(w, o) for w, o in zip(weeks, opens) if o >= OPEN_WEEK_DAYS]
        if len(kept) < 2:
            return 0.0, []
        weeks, opens = [w for w, _ in kept], [o for _, o in kept]
        means = [sum(_factors(w, o)[0] for w, o in kept) / len(kept),
                 *(sum(w[i] for w in weeks) / len(weeks) for i in (1, 2))]
        if means[0] < c.habit_active_days:
            return 0.0, []
        enough = (True, means[1] >= c.min_active_minutes, means[2] >= c.min_core_actions)
        zs = drop_z(weeks, recent, c.drop_spread_floor, opens, recent_open)
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
        closed = f" (the account was open on {recent_open})" if recent_open < RECENT_DAYS else ""
        out = []
        for j, zj, mean, push in pushes:
            x = now[j] or 0.0
            text = (f"active on {x:g} of the last 7 days{closed}, against {mean:.1f} a week before",
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
        self.config = settings.risk
        self.clock = DayClock(settings.activity.timezone)
        self.signals = self.shared.get(SignalCounts, SignalCounts)
        self.churn_events = frozenset(settings.risk.churn_events)
        self.period = settings.risk.predict_days + settings.risk.churn_silence_days
        for problem in silent_reasons(settings):
            log.warning("risk: %s", problem)

    def for_partition(self, ctx: "PartitionContext") -> "RiskPartition":
        return RiskPartition(ctx, self)

    def topics(self) -> Sequence[str]:
        return [self.config.trace_topic] if self.config.trace_topic else []

    def collect(self, parts: Sequence[PartitionCapability]) -> Iterable[Metric]:
        """Users per risk band, the models' labels and modes (owned partitions), and the signal
        counter of every engagement signal."""
        gauge = GaugeMetricFamily(f"{METRIC_PREFIX}_risk_users", "Users per churn-risk band (owned "
                                  "partitions; sum over workers).", labels=["band"])
        labels = GaugeMetricFamily(f"{METRIC_PREFIX}_risk_model_labels", "Labels the churn-risk models "
                                   "learned from (owned partitions; sum over workers).", labels=["label"])
        modes = GaugeMetricFamily(f"{METRIC_PREFIX}_risk_mode_partitions", "Partitions whose churn risk the "
                                  "rules or the model decide (owned partitions; sum over workers).", labels=["mode"])
        bands: Counter[int] = Counter()
        counts = [0, 0]
        mode: Counter[str] = Counter()
        for part in parts:
            if isinstance(part, RiskPartition):
                bands.update(part.bands)
                counts[0] += part.learner.model.negatives
                counts[1] += part.learner.model.positives
                mode[part.mode] += 1
        for code, name in enumerate(RISK_BANDS):
            gauge.add_metric([name], bands.get(code, 0))
        labels.add_metric(["stayed"], counts[0])
        labels.add_metric(["churned"], counts[1])
        for name in MODES:
            modes.add_metric([name], mode.get(name, 0))
        yield gauge
        yield labels
        yield modes
        yield self.signals.family()


def silent_reasons(settings: Settings) -> list[str]:
    """Reasons the configuration makes impossible: each is a warning at start-up (a product whose
    cancel event has another name would otherwise never see ``negative_event``, and nobody would
    know)."""
    c = settings.risk
    out = []
    if not c.negative_events or c.negative_points <= 0:
        out.append("negative_event can never fire: no negative_events configured (or negative_points 0)")
    if not c.escalation_events or c.escalation_points <= 0:
        out.append("escalations can never fire: no escalation_events configured (or escalation_points 0)")
    if not settings.usage.core_actions or c.drop_weight_core_actions <= 0:
        out.append("core_action_drop can never fire: no [usage] core_actions configured "
                   "(or drop_weight_core_actions 0)")
    if c.drop_weight_active_time <= 0:
        out.append("active_time_drop can never fire: drop_weight_active_time is 0")
    if settings.capabilities and "sessions" not in settings.capabilities:
        out.append("active_time_drop can never fire: the sessions capability does not run")
    return out


class RiskSlot:
    """A user's risk record (``state.ext["r"]``): ``[band, calm, up, down, snapshot day, snapshot,
    last return]`` (trailing empty fields left out).

    ``calm``: the rules' calm assessments in a row; ``up`` / ``down``: the model's runs (see
    :mod:`streams.capabilities.risk_bands`); the snapshot waiting for its label
    (:mod:`streams.capabilities.risk_learning`); the last day the user came back (counted in their
    account's open days)."""

    __slots__ = ("band", "calm", "up", "down", "snap_day", "snap", "returned")

    def __init__(self, rec: list[Any] | None) -> None:
        rec = list(rec or []) + [None] * (7 - len(rec or []))
        band, calm, self.up, self.down, self.snap_day, self.snap, self.returned = rec[:7]
        self.band: int | None = band
        self.calm: int = calm or 0

    def dump(self) -> list[Any]:
        rec = [self.band, self.calm, self.up, self.down, self.snap_day, self.snap, self.returned]
        while len(rec) > 1 and rec[-1] in (None, 0):
            rec.pop()
        return rec if rec != [None] else []

    @property
    def pending(self) -> Pending | None:
        return None if self.snap_day is None else Pending(self.snap_day, self.snap)


class RiskPartition(PartitionCapability):
    """Bands of one partition's users, from engagement notices; a signal on each change."""

    def __init__(self, ctx: "PartitionContext", shared: RiskCapability) -> None:
        super().__init__(ctx)
        self.shared = shared
        self.bands: Counter[int] = Counter()
        self._peer: EngagementPartition | None = None
        self.learner = Learner(ctx, shared.config)

    @property
    def mode(self) -> str:
        return "model" if self.learner.ready() else "rules"

    def restore(self, key: bytes, state: "UserState") -> None:
        slot = state.ext.get(SLOT)
        if slot and slot[0] is not None:
            self.bands[slot[0]] += 1

    # --- the accounts' open days and churn events --------------------------------------------
    def on_event(self, key: bytes, state: "UserState", event: "Event") -> None:
        days = self.learner.days
        day = self.shared.clock.day(event.ts)
        account = event.account or state.account
        if state.is_new:
            days.arrived(day)
        if event.account and event.account != state.account:
            days.joined(event.account, state.account, day)
            self.learner.touch()
        if not event.is_activity:
            return
        slot = RiskSlot(state.ext.get(SLOT))
        changed = False
        first = day if state.is_new else self.shared.clock.day(min(state.first_ts, event.ts))
        if day > first and (slot.returned is None or day > slot.returned):
            days.returned(account, day)
            slot.returned = day
            self.learner.touch()
            changed = True
        if event.name in self.shared.churn_events and slot.pending is not None:
            self.learner.label(day, key, slot.snap, 1)
            slot.snap_day = slot.snap = None
            changed = True
        if changed:
            state.ext[SLOT] = slot.dump()

    # --- judgements ----------------------------------------------------------------------------
    def on_notice(self, key: bytes, state: "UserState", kind: str, payload: Any) -> None:
        if kind == RESTED:
            self._rested(key, state, payload)
            return
        if kind != NOTICE:
            return
        config = self.shared.config
        learner = self.learner
        day = payload["day"]
        daily = payload["trigger"] == "day"
        learner.catch_up(day)
        slot = RiskSlot(state.ext.get(SLOT))
        previous = slot.band
        account = payload.get("account") or state.account
        final = day if daily else day - 1  # the last day whose open flag can be known
        recency = payload.get("recency_days")
        last = None if recency is None else day - recency
        since = day - payload["history_days"] + 1 if last is None else last + 1
        # Judged by the peers the user had when they fell silent, so the count only grows while they stay so.
        silence_open = learner.days.open_days(account, since, final, since - 1) if since <= final else 0
        x = features(payload, silence_open)
        if daily:
            self._label(key, slot, payload, x, account)
        mode = self.mode
        if mode == "rules":
            payload = {**payload, **self._week_opens(account, payload, final, last)}
            assessment = self.shared.rules.assess(payload, silence_open)
            band, probability = self._rules_band(slot, payload, assessment, daily), None
            risk, points, reasons = assessment.points / 100, assessment.points, assessment.reasons
            onboarding = assessment.onboarding
            due = self.next_day(payload, assessment, band, slot.calm, any(
                r["code"] == "negative_event" for r in assessment.reasons), silence_open) if daily else None
        else:
            model = learner.model
            probability = model.probability(x)
            band = self._model_band(slot, probability, day, daily)
            risk, points = probability, 100 * probability
            reasons = model_reasons(model.reasons(x), payload, silence_open, config)
            onboarding = payload["history_days"] <= config.onboarding_days
            due = risk_bands.next_day(Hold(band, slot.up, slot.down), day, last, config) if daily else None
        if daily:
            due = self._learning_due(key, slot, day, due)
            engagement = self._engagement()
            if due is not None and engagement is not None:
                engagement.request(key, state, due)
        stored = slot.dump()
        if stored != state.ext.get(SLOT):
            state.ext[SLOT] = stored
            self.ctx.mark_dirty(key, state)
        user = key.decode("utf-8", "replace")
        if config.trace_topic:
            self.ctx.emit(config.trace_topic, key, {"user_id": user, "day": self.shared.clock.label(day),
                                                    "risk": round(risk, 4), "band": RISK_BANDS[band], "mode": mode})
        if previous == band:
            return
        if previous is not None:
            self.bands[previous] -= 1
        self.bands[band] += 1
        if previous is None and band == LOW:
            return  # first assessment, nothing to act on
        old = None if previous is None else RISK_BANDS[previous]
        new = RISK_BANDS[band]
        at = payload["at_ms"]
        self.ctx.emit(self.ctx.settings.signals_topic, key, signal(
            "churn_risk", signal_id("churn_risk", user, old, new, at), at,
            self.shared.clock.label(day), user, account,
            **{"from": old, "to": new, "risk_points": round(points, 1), "score": payload.get("score"),
               "reasons": reasons, "onboarding": onboarding, "trigger": payload["trigger"],
               "probability": None if probability is None else round(probability, 4), "mode": mode}))
        self.shared.signals.add("churn_risk", new)

    def _week_opens(self, account: str | None, payload: Mapping[str, Any], final: int,
                    last: int | None) -> dict[str, Any]:
        """The open days of the user's account in the usage drop's recent week and baseline weeks
        (judged by the peers the user had on their last active day, like the silence); days not
        finished yet count as open."""
        if last is None:
            return {}
        day = payload["day"]
        anchor = min(day, last + self.shared.config.drop_anchor_days)
        days = self.learner.days

        def opened(lo: int, hi: int) -> int:
            known = days.open_days(account, lo, min(hi, final), last) if lo <= min(hi, final) else 0
            return known + max(0, hi - max(final, lo - 1))

        return {"anchored_open": opened(anchor - RECENT_DAYS + 1, anchor),
                "weeks_open": [opened(anchor - RECENT_DAYS * (k + 1) + 1, anchor - RECENT_DAYS * k)
                               for k in range(1, len(payload.get("weeks") or []) + 1)]}

    def _rules_band(self, slot: RiskSlot, payload: Mapping[str, Any], assessment: Assessment, daily: bool) -> int:
        """The rules' band and calm run (kept in ``slot``); the model's runs start over."""
        rules = self.shared.rules
        previous = slot.band
        calm = slot.calm
        strong = any(r["code"] == "negative_event" for r in assessment.reasons)
        if daily:
            if calm:  # the days in scope since the last judgement were calm as well: nothing changed then
                calm = min(calm + payload.get("skipped_days", 0), self.shared.config.calm_days)
            band, calm = rules.daily(previous or LOW, calm, assessment.points, assessment.onboarding, strong)
        else:  # an event can raise the band at once; lowering waits for the daily assessment
            band = max(rules.band(previous or LOW, assessment.points, assessment.onboarding, strong, calm),
                       previous or LOW)
        slot.band, slot.calm, slot.up, slot.down = band, calm, None, None
        return band

    def _model_band(self, slot: RiskSlot, probability: float, day: int, daily: bool) -> int:
        """The model's band and runs (kept in ``slot``); the rules' calm run starts over."""
        cut = cut_for(self.learner.model.cuts, self.shared.config)
        hold = Hold(slot.band or LOW, slot.up, slot.down)
        if cut is not None:
            hold = risk_bands.step(hold, probability, cut, day, self.shared.config, daily)
        slot.band, slot.up, slot.down, slot.calm = hold.band, hold.up, hold.down, 0
        return hold.band

    # --- labels ----------------------------------------------------------------------------------
    def _label(self, key: bytes, slot: RiskSlot, payload: Mapping[str, Any], x: list[float],
               account: str | None) -> None:
        """Resolve the user's snapshot when its label is known; take a new one on their phase day."""
        config = self.shared.config
        day = payload["day"]
        pending = slot.pending
        horizon, silence = config.predict_days, config.churn_silence_days
        recency = payload.get("recency_days")
        if pending is not None:
            start = pending.day + horizon
            opened = self.learner.days.open_days(account, start, day, day) if day >= start + silence - 1 else 0
            y = resolve(pending, day, None if recency is None else day - recency, opened, horizon, silence)
            if y is not None:
                if y >= 0:
                    self.learner.label(day, key, pending.data, y)
                slot.snap_day = slot.snap = None
        around = recency is not None and recency < silence
        if slot.snap_day is None and around and day % self.shared.period == phase(key, self.shared.period):
            slot.snap_day, slot.snap = day, quantize(x)

    def _learning_due(self, key: bytes, slot: RiskSlot, day: int, due: int | None) -> int | None:
        """The judgement day asked for: ``due``, or earlier when the user's snapshot gets its label
        or their next phase day comes (a snapshot is taken then)."""
        config = self.shared.config
        period = self.shared.period
        days = [d for d in (due,) if d is not None]
        if slot.snap_day is not None:
            days.append(slot.snap_day + config.predict_days + config.churn_silence_days - 1)
        else:
            days.append(day + (phase(key, period) - day - 1) % period + 1)
        later = [d for d in days if d > day]
        return min(later) if later else None

    def _rested(self, key: bytes, state: "UserState", payload: Mapping[str, Any]) -> None:
        """The user left scope (silent ``horizon_days``): their snapshot's label is known now."""
        slot = RiskSlot(state.ext.get(SLOT))
        pending = slot.pending
        if pending is None:
            return
        config = self.shared.config
        day = payload["day"]
        start = pending.day + config.predict_days
        if day >= start:
            opened = self.learner.days.open_days(payload.get("account") or state.account, start, day, day)
            if opened >= config.predict_days:
                self.learner.label(day, key, pending.data, 1)
        slot.snap_day = slot.snap = None
        state.ext[SLOT] = slot.dump()
        self.ctx.mark_dirty(key, state)

    def _engagement(self) -> EngagementPartition | None:
        if self._peer is None:
            self._peer = self.ctx.peer(EngagementPartition)
        return self._peer

    def next_day(self, payload: Mapping[str, Any], assessment: Assessment, band: int, calm: int,
                 strong: bool, silence: int | None = None) -> int | None:
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
        # The silence counts from ``counted``: only open days of the account count, and the days to
        # come may all be open, so stepping as if they were finds the earliest day anything changes.
        counted = day - (recency if silence is None else min(silence, recency))
        bound: float = math.inf
        # The usage drop (whether or not onboarding) on each day its windows still move, then for good.
        moving = range(day + 1, last + c.drop_anchor_days + 1)
        if any(self._drop_on(facts, e) is None for e in moving):
            return day + 1  # its windows still move over days whose open flags are not known yet
        frozen = 0.0 if moving else rules.drop_points(payload)
        # Days on which the record's facts change without new events (each is looked at).
        changes = sorted({d for d in (first + c.onboarding_days, *ledger.mark_days("negative", c.negative_days),
                                      *ledger.mark_days("escalations", c.escalation_days),
                                      *ledger.baseline_changes()) if d > day})
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
                parts[1] = 0.0 if onboarding else frozen
                parts[2], parts[3] = rules.mark_points(negative, ledger.marks("escalations", e - c.escalation_days + 1, e))
                strong = negative > 0
                gap = facts.gap_on(e)
                start, full, _ = rules.silence({**payload, "gap_days": None if gap is None else round(gap, 2)})
            r = e - counted
            parts[0] = rules.silence_points(r, start, full)
            after, after_calm = rules.daily(band, calm, rules.total(parts), onboarding, strong)
            if after != band or (after_calm == 0) != (calm == 0):
                return e
            calm = after_calm
            if start <= r < full:  # the silence grows day by day: on to the day it crosses a threshold
                limit = min(counted + math.ceil(full), bound, changes[at] if at < len(changes) else math.inf,
                            e + calm_days - calm if calm else math.inf)
                now = rules.total(parts)
                target = min((t for t in thresholds if t > now), default=None)
                lo = hi = int(limit)
                if target is not None:
                    lo = e + 1
                    while lo < hi:  # the points only grow: the first day they reach the target
                        mid = (lo + hi) // 2
                        parts[0] = rules.silence_points(mid - counted, start, full)
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
            stop = min(counted + math.ceil(start) if r < start else math.inf, bound,
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

    def _drop_on(self, facts: Facts, day: int) -> float | None:
        """0 when the usage drop cannot judge the user on a later ``day`` if they send nothing until
        then (the weeks it would compare cannot show the habit the drop needs, even with every day
        to come open), else None: it may, and the user is judged that day."""
        c = self.shared.rules.c
        anchor = min(day, day - facts.recency_on(day) + c.drop_anchor_days)
        weeks = min(BASELINE_WEEKS, (anchor - facts.first_day + 1 - RECENT_DAYS) // RECENT_DAYS)
        if weeks < 2:
            return 0.0
        habit = facts.ledger.usage(anchor - RECENT_DAYS * (weeks + 1) + 1, anchor - RECENT_DAYS).active_days
        # Active days count per 7 open days, and only weeks with OPEN_WEEK_DAYS open days count:
        # the habit a week can show is at most its active days x 7 / OPEN_WEEK_DAYS.
        if habit * RECENT_DAYS < c.habit_active_days * OPEN_WEEK_DAYS * 2:
            return 0.0
        return None

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
