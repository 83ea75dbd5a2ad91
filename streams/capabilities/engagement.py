"""The engagement score: 0-100 per user per day, from weighted measures judged against the
product's cadence, the user's own history and their peers.

Every user with activity in the last ``horizon_days`` is scored once per day, when the watermark
passes the end of the day plus a settle time (the session timeout: the day's sessions have closed
and their active time is in). One timer per day carries that day's batch of users (a list per
day, rebuilt from the records by ``restore``), so a user who went silent is still scored every day
as event time advances: nothing waits for their next event.

Measures of day ``d`` (recent = the 7 days ending on ``d``; see docs/health-and-risk.md#engagement-score-churn-risk-and-account-health for the
worked example):

* recency: days since the last active day, against the user's own normal gap between active days
  (the cadence preset's gap until there is a baseline);
* frequency: active days (or visits, whichever is better) against the cadence preset;
* depth: active minutes (idle excluded, from closed sessions) against the cadence preset;
* core actions: weighted count against the cadence preset, plus breadth (distinct core actions in
  28 days);
* trend: the recent week against the user's own weekly mean over the 28 days before it.

Each measure's marks are ``(1 - peer_weight) x own + peer_weight x percentile``, the percentile
being the user's rank among the peers scored the same day in the same partition with the same
peer-segment value (e.g. plan). Users are partitioned by a hash of their id, so each partition
holds a uniform sample of every segment: the percentile is that sample's, and it is the same
however many workers share the partitions. Groups smaller than ``MIN_PEERS`` use the whole
partition. The percentiles are taken over the day's whole batch at once (one timer carries the
day's batch), so they do not depend on the order users are scored in.

Inputs come from the user's :class:`~streams.capabilities.ledger.Ledger`: activity days, core actions,
negative-intent and escalation events from the events themselves, visits and active time from
``session_closed`` notices of the sessions capability::

    ctx.notify(key, state, "session_closed", {"start_ms": int, "end_ms": int, "duration_ms": int,
               "active_ms": int, "events": int, "core_actions": {name: count}})

(core actions are counted from events, so the notice's ``core_actions`` are not used: a session
closes after its day may already have been scored).

Each scoring is announced to the other capabilities as an ``engagement_evaluated`` notice (the
facts the churn-risk rules and the account shares need, see :func:`facts_payload`); a negative-
intent or escalation event is announced at once (``trigger: "event"``) so risk can react within
the minute. Score crossings of the configured thresholds (beyond the hysteresis, once a user has
left onboarding) are ``engagement_score`` signals.
"""

from __future__ import annotations

from array import array
from collections import Counter
from typing import TYPE_CHECKING, Any, Iterable, Sequence

from prometheus_client.core import GaugeMetricFamily, Metric

from streams.capabilities.classify import Classifier
from streams.capabilities.ledger import SLOT, Ledger, Usage
from streams.capabilities.segment_reader import SegmentReader
from streams.capabilities.signals import SignalCounts, signal, signal_id
from streams.config import (
    BASELINE_DAYS,
    BASELINE_WEEKS,
    METRIC_PREFIX,
    MIN_PEERS,
    MS_PER_MINUTE,
    RECENT_DAYS,
    SCORE_MEASURES,
    Settings,
)
from streams.core.calendar import DayClock
from streams.core.capability import Capability, PartitionCapability, Shared

if TYPE_CHECKING:
    from streams.core.capability import PartitionContext
    from streams.core.contract import Event
    from streams.core.state import UserState

TIMER = "engagement:day"
NOTICE = "engagement_evaluated"
#: The trend needs at least two baseline weeks.
MIN_BASELINE_DAYS = 2 * RECENT_DAYS
MAX_GAP_DAYS = 14.0


def _clamp(x: float) -> float:
    return 0.0 if x < 0 else 1.0 if x > 1 else x


def percentile_ranks(values: Sequence[float]) -> list[float]:
    """Mid-rank percentile of each value among all (0-1): (below + half the ties) / n."""
    n = len(values)
    order = sorted(range(n), key=values.__getitem__)
    ranks = [0.0] * n
    i = 0
    while i < n:
        j = i
        while j + 1 < n and values[order[j + 1]] == values[order[i]]:
            j += 1
        rank = (i + (j - i + 1) / 2) / n
        for k in range(i, j + 1):
            ranks[order[k]] = rank
        i = j + 1
    return ranks


class Facts:
    """What a user's ledger says about day ``day``: the inputs of the score, risk and accounts."""

    __slots__ = ("day", "at_ms", "trigger", "first_day", "last_active", "recent", "baseline", "baseline_days",
                 "breadth", "negative", "escalations", "weeks", "anchored", "window", "gap")

    def __init__(self, ledger: Ledger, day: int, first_day: int, at_ms: int, trigger: str,
                 anchor_days: int, negative_days: int, escalation_days: int, window_days: int = RECENT_DAYS,
                 peers_only: bool = False) -> None:
        self.day = day
        self.at_ms = at_ms
        self.trigger = trigger
        self.first_day = min(first_day, day)
        self.last_active = ledger.last_active(day)
        anchor = day if self.last_active is None else min(day, self.last_active + anchor_days)
        cols = ledger.columns(anchor - RECENT_DAYS - BASELINE_DAYS + 1, day)
        self.recent = cols.usage(day - RECENT_DAYS + 1, day)
        self.window = cols.usage(day - window_days + 1, day).per_week(window_days)
        """Weekly means over the cadence's window (frequency, depth, core actions)."""
        self.baseline_days = min(BASELINE_DAYS, max(0, day - self.first_day + 1 - RECENT_DAYS))
        self.baseline = cols.usage(day - RECENT_DAYS - BASELINE_DAYS + 1, day - RECENT_DAYS)
        self.breadth = ledger.breadth(day - BASELINE_DAYS + 1, day)
        self.anchored: Usage | None = None
        self.weeks: list[Usage] = []
        if peers_only:  # what ScoreModel.peer_values reads, nothing more
            return
        span = ledger.active_span(day - RECENT_DAYS - BASELINE_DAYS + 1, day - RECENT_DAYS)
        # The user's normal gap: the mean gap between active days of the baseline (None: < 2 days).
        self.gap = None if span is None or span[2] < 2 else \
            min(MAX_GAP_DAYS, max(1.0, (span[1] - span[0]) / (span[2] - 1)))
        self.negative = ledger.marks("negative", day - negative_days + 1, day)
        self.escalations = ledger.marks("escalations", day - escalation_days + 1, day)
        # The usage-drop windows end at most ``anchor_days`` after the last active day.
        if self.last_active is not None:
            self.anchored = cols.usage(anchor - RECENT_DAYS + 1, anchor)
            full = min(BASELINE_WEEKS, (anchor - self.first_day + 1 - RECENT_DAYS) // RECENT_DAYS)
            self.weeks = [cols.usage(anchor - RECENT_DAYS * (k + 1) + 1, anchor - RECENT_DAYS * k)
                          for k in range(1, full + 1)]

    @property
    def recency(self) -> int | None:
        return None if self.last_active is None else self.day - self.last_active

    @property
    def history_days(self) -> int:
        return self.day - self.first_day + 1

    def weekly_baseline(self) -> Usage | None:
        """The baseline as a weekly mean (None with less than two weeks of history before the recent week)."""
        if self.baseline_days < MIN_BASELINE_DAYS:
            return None
        return self.baseline.per_week(self.baseline_days)

    def trend(self) -> float | None:
        """Recent week over the weekly baseline, averaged over active days, minutes and core actions
        (each capped at 1.5); None without a baseline."""
        base = self.weekly_baseline()
        if base is None:
            return None
        ratios = [min(1.5, self.recent.measure(i) / base.measure(i)) for i in range(3) if base.measure(i) > 0]
        if not ratios:
            return 1.0 if self.recent.active_days else 0.0
        return sum(ratios) / len(ratios)


def facts_payload(facts: Facts, account: str | None, score: int | None, previous: int | None) -> dict[str, Any]:
    """The ``engagement_evaluated`` notice: plain values, so listeners need no engagement internals."""
    base = facts.weekly_baseline()
    gap = facts.gap
    return {
        "trigger": facts.trigger, "day": facts.day, "at_ms": facts.at_ms, "account": account,
        "score": score, "previous_score": previous, "first_day": facts.first_day,
        "history_days": facts.history_days, "last_active_day": facts.last_active,
        "recency_days": facts.recency, "gap_days": None if gap is None else round(gap, 2),
        "recent": list(facts.recent), "weekly_baseline": None if base is None else [round(v, 3) for v in base],
        "anchored": None if facts.anchored is None else [facts.anchored.measure(i) for i in range(3)],
        "weeks": [[w.measure(i) for i in range(3)] for w in facts.weeks],
        "negative_events": facts.negative, "escalations": facts.escalations,
    }


class ScoreModel:
    """Marks per measure from facts, and the weighted score (no state: easy to test and document)."""

    def __init__(self, settings: Settings) -> None:
        cfg = settings.engagement
        self.preset = cfg.preset(settings.usage.cadence)
        self.weights = cfg.weights
        self.peer_weight = cfg.peer_weight
        self.breadth_share = cfg.breadth_share
        self.core_kinds = len(settings.usage.core_actions)

    def own(self, facts: Facts) -> dict[str, float]:
        """Marks (0-1) against the cadence preset and the user's own history."""
        p = self.preset
        r = facts.window
        recency = facts.recency
        gap = facts.gap or p.gap_days
        trend = facts.trend()
        breadth = facts.breadth / self.core_kinds if self.core_kinds else 0.0
        return {
            "recency": 0.0 if recency is None else _clamp(1 - max(0.0, recency - gap) / p.inactive_span_days),
            "frequency": min(1.0, max(r.active_days / p.active_days, r.visits / p.visits)),
            "depth": min(1.0, r.minutes / p.active_minutes),
            "core_actions": (1 - self.breadth_share) * min(1.0, r.core_actions / p.core_actions)
            + self.breadth_share * breadth,
            "trend": 0.5 if trend is None else min(1.0, trend),
        }

    @staticmethod
    def peer_values(facts: Facts) -> tuple[float, ...]:
        """The raw value each measure is ranked on among peers (higher is better), in
        ``SCORE_MEASURES`` order."""
        r = facts.window
        recency = facts.recency
        trend = facts.trend()
        return (-(recency if recency is not None else 10 ** 6), r.active_days + r.visits / 1000, float(r.minutes),
                r.core_actions + facts.breadth / 1000, -1.0 if trend is None else trend)

    def score(self, own: dict[str, float], peers: dict[str, float]) -> int:
        p = self.peer_weight
        total = sum(w * ((1 - p) * own[m] + p * peers[m]) for m, w in self.weights.items())
        return int(round(100 * total))


class ScoringSchedule:
    """When a day is scored: the watermark has passed its end plus a settle time (the session
    timeout plus a minute by default, so the day's sessions have closed). Account shares follow
    the same schedule."""

    def __init__(self, settings: Settings) -> None:
        self.clock = DayClock(settings.activity.timezone)
        self.settle_ms = int(settings.engagement.settle_s * 1000) if settings.engagement.settle_s > 0 \
            else settings.sessions.timeout_ms + MS_PER_MINUTE

    def due(self, day: int) -> int:
        """When day ``day`` is scored."""
        return self.clock.end(day) + self.settle_ms

    def day_of_due(self, due_ms: int) -> int:
        return self.clock.day(due_ms - self.settle_ms - 1)


class EngagementCapability(Capability):
    """The configured engagement capability: one :class:`EngagementPartition` per partition."""

    name = "engagement"
    slot = SLOT

    def __init__(self, settings: Settings, shared: Shared | None = None) -> None:
        super().__init__(settings, shared or Shared())
        self.config = settings.engagement
        self.risk = settings.risk
        self.model = ScoreModel(settings)
        self.classifier = self.shared.get(Classifier, lambda: Classifier(settings.usage))
        self.core_weights = [a.weight for a in settings.usage.core_actions]
        self.schedule = self.shared.get(ScoringSchedule, lambda: ScoringSchedule(settings))
        self.clock = self.schedule.clock
        self.due = self.schedule.due
        self.day_of_due = self.schedule.day_of_due
        names = [d.name for d in settings.activity.segments]
        self.peer_index = names.index(self.config.peer_segment) if self.config.peer_segment in names else None
        self.negative = frozenset(self.risk.negative_events)
        self.escalation = frozenset(self.risk.escalation_events)
        self.marked = self.negative | self.escalation
        self.signals = self.shared.get(SignalCounts, SignalCounts)
        self.thresholds = tuple(self.config.thresholds)
        edges = (0.0, *self.thresholds, 100.0)
        self.level_names = tuple(f"{lo:g}-{hi:g}" for lo, hi in zip(edges, edges[1:]))

    def for_partition(self, ctx: "PartitionContext") -> "EngagementPartition":
        return EngagementPartition(ctx, self)

    def settle_ms(self) -> int:
        """A day is scored its settle time after its end."""
        return self.schedule.settle_ms

    def collect(self, parts: Sequence[PartitionCapability]) -> Iterable[Metric]:
        gauge = GaugeMetricFamily(f"{METRIC_PREFIX}_score_users", "Users by their latest "
                                  "engagement score range (owned partitions; sum over workers).",
                                  labels=["range"])
        levels: Counter[int] = Counter()
        for part in parts:
            if isinstance(part, EngagementPartition):
                levels.update(part.levels)
        for index, name in enumerate(self.level_names):
            gauge.add_metric([name], levels.get(index, 0))
        yield gauge


class EngagementPartition(PartitionCapability):
    """Scores one partition's users daily; announces facts; signals score threshold crossings."""

    def __init__(self, ctx: "PartitionContext", shared: EngagementCapability) -> None:
        super().__init__(ctx)
        self.shared = shared
        self.clock = shared.clock
        self.horizon = shared.config.horizon_days
        self.levels: Counter[int] = Counter()
        """Users per score level (from their records, so restore rebuilds it)."""
        self.buckets: dict[int, list[bytes]] = {}
        """Users to score, by day (rebuilt by ``restore`` from the records)."""
        self.segments = SegmentReader(ctx)
        """The peer segment's value comes from the activity capability (its owner)."""

    # --- inputs ----------------------------------------------------------------------------
    def on_event(self, key: bytes, state: "UserState", event: "Event") -> None:
        if not event.is_activity:
            return
        shared = self.shared
        day = self.clock.day(event.ts)
        mask = shared.classifier.core_mask(event)
        rec = state.ext.get(SLOT)
        if rec and not mask and event.name not in shared.marked and rec[0] is not None and day <= rec[0] \
                and rec[1] >> (rec[0] - day) & 1:
            return  # the day is already active and the event adds nothing else (most events)
        ledger = Ledger.load(rec)
        first_activity = ledger.n is None
        resting = ledger.evaluated is not None and ledger.n is not None \
            and ledger.evaluated - ledger.n >= self.horizon
        ledger.mark_active(day)
        while mask:
            low = mask & -mask
            index = low.bit_length() - 1
            ledger.add_core(day, index, shared.core_weights[index])
            mask ^= low
        trigger = False
        if event.name in shared.negative:
            ledger.add_mark("negative", day)
            trigger = True
        elif event.name in shared.escalation:
            ledger.add_mark("escalations", day)
            trigger = True
        state.ext[SLOT] = ledger.dump()
        if first_activity or resting:  # start (or restart) the user's daily scoring
            start = day if ledger.evaluated is None else max(day, ledger.evaluated + 1)
            self._enqueue(start, key)
        if trigger:  # risk hears of a cancel intent or an escalation at once, not at the day's end
            facts = self._facts(ledger, state, day, event.ts, "event")
            self.ctx.notify(key, state, NOTICE, facts_payload(facts, event.account or state.account,
                                                              ledger.score, ledger.score))

    def on_notice(self, key: bytes, state: "UserState", kind: str, payload: Any) -> None:
        if kind != "session_closed":
            return
        ledger = Ledger.load(state.ext.get(SLOT))
        ledger.add_session(self.clock.day(int(payload["start_ms"])), int(payload.get("active_ms") or 0))
        state.ext[SLOT] = ledger.dump()
        self.ctx.mark_dirty(key, state)

    def _facts(self, ledger: Ledger, state: "UserState", day: int, at_ms: int, trigger: str,
               peers_only: bool = False) -> Facts:
        risk = self.shared.risk
        first = self.clock.day(state.first_ts) if state.first_ts else day
        return Facts(ledger, day, first, at_ms, trigger, risk.drop_anchor_days, risk.negative_days,
                     risk.escalation_days, self.shared.model.preset.window_days, peers_only)

    # --- daily scoring ---------------------------------------------------------------------
    def restore(self, key: bytes, state: "UserState") -> None:
        rec = state.ext.get(SLOT)
        if not rec:
            return
        ledger = Ledger.load(rec)
        if ledger.score is not None:
            self.levels[ledger.level] += 1
        if ledger.n is None:
            return
        if ledger.evaluated is None:
            self._enqueue(ledger.n - (ledger.mask.bit_length() - 1), key)
        elif ledger.evaluated + 1 - ledger.n <= self.horizon:
            self._enqueue(ledger.evaluated + 1, key)

    def _enqueue(self, day: int, key: bytes) -> None:
        """Score the user with day ``day``'s batch. One timer per day carries the whole batch (it
        is scheduled on the batch's first user): a million users cost a list, not a million timers."""
        bucket = self.buckets.get(day)
        if bucket is None:
            bucket = self.buckets[day] = []
            self.ctx.schedule(self.shared.due(day), key, TIMER)
        bucket.append(key)

    def on_timer(self, key: bytes, state: "UserState", tag: str, due_ms: int) -> None:
        """Score the day's batch: percentiles within peer groups, then marks, score, signals, notices.

        Two passes over the batch: the first keeps only each user's peer values (five numbers), the
        second recomputes the facts user by user, so a day of a million users never holds a
        million sets of facts at once. The whole batch is scored within this call, so no commit
        can fall between a user's facts and their score.
        """
        day = self.shared.day_of_due(due_ms)
        batch = self.buckets.pop(day, None)
        if not batch:
            return
        users: list[tuple[bytes, "UserState", Ledger]] = []
        seen: set[bytes] = set()
        for user in batch:
            record = self.ctx.user(user)
            if user in seen or record is None:
                continue
            seen.add(user)
            ledger = Ledger.load(record.ext.get(SLOT))
            if ledger.n is None or (ledger.evaluated is not None and ledger.evaluated >= day):
                continue  # already scored (a replay, or a user queued again by restore)
            users.append((user, record, ledger))
        self._score(day, due_ms, users)

    def _score(self, day: int, at_ms: int, users: list[tuple[bytes, "UserState", Ledger]]) -> None:
        model = self.shared.model
        peer_index = self.shared.peer_index
        values = [array("d", bytes(8 * len(users))) for _ in SCORE_MEASURES]
        groups: dict[Any, list[int]] = {}
        for index, (key, state, ledger) in enumerate(users):
            facts = self._facts(ledger, state, day, at_ms, "day", peers_only=True)
            for column, value in zip(values, model.peer_values(facts)):
                column[index] = value
            codes = self.segments.codes(state) if peer_index is not None else None
            groups.setdefault(codes[peer_index] if codes and peer_index is not None else None, []).append(index)
        ranks = [array("d", bytes(8 * len(users))) for _ in SCORE_MEASURES]
        alone = []
        for peer, members in groups.items():
            if peer is not None and len(members) >= MIN_PEERS:
                self._rank(values, members, members, ranks)
            else:
                alone.extend(members)
        if alone:  # too few peers with the same segment value: ranked among the whole partition
            self._rank(values, list(range(len(users))), alone, ranks)
        for index, (key, state, ledger) in enumerate(users):
            facts = self._facts(ledger, state, day, at_ms, "day")
            score = model.score(model.own(facts), {m: r[index] for m, r in zip(SCORE_MEASURES, ranks)})
            previous = ledger.score
            ledger.evaluated = day
            self._level(key, state, ledger, facts, score)
            state.ext[SLOT] = ledger.dump()
            self.ctx.mark_dirty(key, state)
            self.ctx.notify(key, state, NOTICE, facts_payload(facts, state.account, score, previous))
            if day + 1 - ledger.n <= self.horizon:  # type: ignore[operator]
                self._enqueue(day + 1, key)

    @staticmethod
    def _rank(values: list[array], members: list[int], wanted: list[int], ranks: list[array]) -> None:
        """Percentiles among ``members`` of each measure, written for the ``wanted`` ones."""
        keep = set(wanted)
        for column, out in zip(values, ranks):
            for index, rank in zip(members, percentile_ranks([column[i] for i in members])):
                if index in keep:
                    out[index] = rank

    def _level(self, key: bytes, state: "UserState", ledger: Ledger, facts: Facts, score: int) -> None:
        """Move the score level with hysteresis; signal each threshold crossed (after onboarding)."""
        thresholds = self.shared.thresholds
        half = self.shared.config.hysteresis / 2
        if ledger.score is None:
            level = sum(1 for t in thresholds if score >= t)
            crossed: list[tuple[float, str]] = []
        else:
            level = ledger.level
            crossed = []
            while level < len(thresholds) and score >= thresholds[level] + half:
                crossed.append((thresholds[level], "up"))
                level += 1
            while level > 0 and score < thresholds[level - 1] - half:
                crossed.append((thresholds[level - 1], "down"))
                level -= 1
            self.levels[ledger.level] -= 1
        self.levels[level] += 1
        previous = ledger.score
        ledger.score, ledger.level = score, level
        if facts.history_days <= self.shared.risk.onboarding_days:
            return
        user = key.decode("utf-8", "replace")
        label = self.clock.label(facts.day)
        for threshold, direction in crossed:
            self.ctx.emit(self.ctx.settings.signals_topic, key, signal(
                "engagement_score", signal_id("engagement_score", user, f"{threshold:g}", direction, label),
                facts.at_ms, label, user, state.account, threshold=threshold, direction=direction,
                score=score, previous_score=previous))
            self.shared.signals.add("engagement_score", direction)

    def figures(self) -> dict[str, Any]:
        return {"engagement_scored_users": sum(self.levels.values())}

    def describe(self, key: bytes, state: "UserState") -> dict[str, Any]:
        """The user's latest score and the day it was computed for."""
        ledger = Ledger.load(state.ext.get(SLOT))
        if ledger.evaluated is None:
            return {"score": None}
        return {"score": ledger.score, "scored_day": self.clock.label(ledger.evaluated)}

    def latest_facts(self, state: "UserState") -> dict[str, Any] | None:
        """The facts of the user's last scored day, as announced to risk then (for look-ups)."""
        ledger = Ledger.load(state.ext.get(SLOT))
        if ledger.evaluated is None or ledger.n is None:
            return None
        day = ledger.evaluated
        return facts_payload(self._facts(ledger, state, day, self.shared.due(day), "day"), state.account,
                             ledger.score, None)
