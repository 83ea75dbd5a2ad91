"""The engagement score: 0-100 per user, from weighted measures judged against the product's
cadence, the user's own history and their peers.

Cost follows what changes. A user is *judged* (facts, score, churn risk, account share) at the
close of the days on which something about them can change, never in a sweep over every user:

* the days with new inputs (an activity event; sessions close before the day is judged);
* the days their own timers fall due: other capabilities ask for them (``request``: churn risk
  for an inactivity threshold, the end of onboarding, a calm run; accounts for the day the user
  stops counting as active);
* ``horizon_days`` after their last activity the user leaves scope ("rests"): out of the peer
  groups and the account shares, until their next activity.

Each user has one live due day, kept in their record (``Ledger.due``), with a timer for it in the
partition's packed timers. A day is judged when the watermark passes its end plus a settle time
(the session timeout: the day's sessions have closed), on the facts as they were on that day
(events of later days already applied are ignored). Between two judgements a user keeps their
last score.

Measures of day ``d`` (recent = the 7 days ending on ``d``; see
docs/health-and-risk.md#engagement-score-churn-risk-and-account-health for the worked example):

* recency: days since the last active day, against the user's own normal gap between active days
  (the cadence preset's gap until there is a baseline);
* frequency: active days (or visits, whichever is better) against the cadence preset;
* depth: active minutes (idle excluded, from closed sessions) against the cadence preset;
* core actions: weighted count against the cadence preset, plus breadth (distinct core actions in
  28 days);
* trend: the recent week against the user's own weekly mean over the 28 days before it.

Each measure's marks are ``(1 - peer_weight) x own + peer_weight x percentile``, the percentile
being the user's mid-rank among the latest values of the users in scope in the same partition
with the same peer-segment value (e.g. plan), kept in counts per value bucket
(:mod:`streams.capabilities.peers`). Users are partitioned by a hash of their id, so each partition
holds a uniform sample of every segment: the percentile is that sample's, the same however many
workers share the partitions. Groups smaller than ``MIN_PEERS`` use the whole partition.

A day's judgements run in two passes, each one timer per user at the day's due time: the first
puts every judged user's values of the day into the peer counts, the second ranks and scores
them. So every user judged on a day is ranked against the same counts, whatever order the
timers fire in, and a restart in the middle of a day gives the same scores: the first pass
recomputes the same values for the users not scored yet.

Inputs come from the user's :class:`~streams.capabilities.ledger.Ledger`: activity days, core
actions, negative-intent and escalation events from the events themselves, visits and active time
from ``session_closed`` notices of the sessions capability::

    ctx.notify(key, state, "session_closed", {"start_ms": int, "end_ms": int, "duration_ms": int,
               "active_ms": int, "events": int, "core_actions": {name: count}})

(core actions are counted from events, so the notice's ``core_actions`` are not used).

Each judgement is announced to the other capabilities as an ``engagement_evaluated`` notice (the
facts the churn-risk rules and the account shares need, see :func:`facts_payload`, plus
``skipped_days``: the days in scope since the previous judgement, on which nothing could change);
a negative-intent or escalation event is announced at once (``trigger: "event"``) so risk can
react within the minute; a user leaving scope is announced as ``engagement_rested``. Score
crossings of the configured thresholds (beyond the hysteresis, once a user has left onboarding)
are ``engagement_score`` signals.
"""

from __future__ import annotations

from collections import Counter
from typing import TYPE_CHECKING, Any, Iterable, Sequence

from prometheus_client.core import GaugeMetricFamily, Metric

from streams.capabilities.classify import Classifier
from streams.capabilities.ledger import CORE_UNITS, SLOT, Ledger, Usage
from streams.capabilities.peers import PeerRanks, PeerScale
from streams.capabilities.segment_reader import SegmentReader
from streams.capabilities.signals import SignalCounts, signal, signal_id
from streams.config import (
    BASELINE_DAYS,
    BASELINE_WEEKS,
    METRIC_PREFIX,
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

PEERS = "engagement:peers"
"""Timer tag of a judgement's first pass (the day's values into the peer counts, or leaving scope)."""
SCORE = "engagement:score"
"""Timer tag of its second pass (rank, score, announce)."""
NOTICE = "engagement_evaluated"
RESTED = "engagement_rested"
#: The trend needs at least two baseline weeks.
MIN_BASELINE_DAYS = 2 * RECENT_DAYS
MAX_GAP_DAYS = 14.0


def _clamp(x: float) -> float:
    return 0.0 if x < 0 else 1.0 if x > 1 else x


_UNSET = object()


def normal_gap(ledger: Ledger, day: int) -> float | None:
    """The user's normal gap on ``day``: the mean gap between the active days of the baseline (the
    28 days before the recent week), between 1 and ``MAX_GAP_DAYS`` (None: fewer than 2 days)."""
    span = ledger.active_span(day - RECENT_DAYS - BASELINE_DAYS + 1, day - RECENT_DAYS)
    if span is None or span[2] < 2:
        return None
    return min(MAX_GAP_DAYS, max(1.0, (span[1] - span[0]) / (span[2] - 1)))


class Facts:
    """What a user's ledger says about day ``day``: the inputs of the score, risk and accounts."""

    __slots__ = ("day", "at_ms", "trigger", "first_day", "last_active", "recent", "baseline", "baseline_days",
                 "breadth", "negative", "escalations", "weeks", "anchored", "window", "window_sum", "gap", "ledger",
                 "anchor_days", "cols", "anchor", "_trend")

    def __init__(self, ledger: Ledger, day: int, first_day: int, at_ms: int, trigger: str,
                 anchor_days: int, negative_days: int, escalation_days: int, window_days: int = RECENT_DAYS,
                 peers_only: bool = False) -> None:
        self.day = day
        self.ledger = ledger
        self.anchor_days = anchor_days
        self._trend: object = _UNSET
        self.at_ms = at_ms
        self.trigger = trigger
        self.first_day = min(first_day, day)
        self.last_active = ledger.last_active(day)
        anchor = self.anchor = day if self.last_active is None else min(day, self.last_active + anchor_days)
        cols = self.cols = ledger.columns(anchor - RECENT_DAYS - BASELINE_DAYS + 1, day)
        self.recent = cols.usage(day - RECENT_DAYS + 1, day)
        self.window_sum = cols.usage(day - window_days + 1, day)
        self.window = self.window_sum.per_week(window_days)
        """Weekly means over the cadence's window (frequency, depth, core actions)."""
        self.baseline_days = min(BASELINE_DAYS, max(0, day - self.first_day + 1 - RECENT_DAYS))
        self.baseline = cols.usage(day - RECENT_DAYS - BASELINE_DAYS + 1, day - RECENT_DAYS)
        self.breadth = ledger.breadth(day - BASELINE_DAYS + 1, day)
        self.anchored: Usage | None = None
        self.weeks: list[Usage] = []
        if not peers_only:  # else only what ScoreModel.peer_buckets reads, until ``complete``
            self.complete(ledger, negative_days, escalation_days)

    def complete(self, ledger: Ledger, negative_days: int, escalation_days: int) -> "Facts":
        """The facts the peers do not need: the normal gap, marks, the usage-drop weeks (the
        ledger is the user's current one: the same days, possibly a fresh decoded copy)."""
        self.ledger = ledger
        day, anchor, cols = self.day, self.anchor, self.cols
        self.gap = normal_gap(ledger, day)
        self.negative = ledger.marks("negative", day - negative_days + 1, day)
        self.escalations = ledger.marks("escalations", day - escalation_days + 1, day)
        # The usage-drop windows end at most ``anchor_days`` after the last active day.
        if self.last_active is not None:
            self.anchored = cols.usage(anchor - RECENT_DAYS + 1, anchor)
            full = min(BASELINE_WEEKS, (anchor - self.first_day + 1 - RECENT_DAYS) // RECENT_DAYS)
            self.weeks = [cols.usage(anchor - RECENT_DAYS * (k + 1) + 1, anchor - RECENT_DAYS * k)
                          for k in range(1, full + 1)]
        return self

    @property
    def recency(self) -> int | None:
        return None if self.last_active is None else self.day - self.last_active

    @property
    def history_days(self) -> int:
        return self.day - self.first_day + 1

    def anchor_moves(self) -> bool:
        """Whether tomorrow's usage-drop windows differ from today's (they end at most
        ``anchor_days`` after the last active day, then stay put)."""
        return self.last_active is not None and self.day + 1 <= self.last_active + self.anchor_days

    def recency_on(self, day: int) -> int:
        """Days since the last activity on a later ``day`` (no activity meanwhile)."""
        return day - (self.last_active if self.last_active is not None else self.day)

    def later(self, day: int) -> "Facts":
        """The facts of a later ``day`` if the user sends nothing until then."""
        return Facts(self.ledger, day, self.first_day, self.at_ms, self.trigger, self.anchor_days,
                     0, 0, RECENT_DAYS)

    def gap_on(self, day: int) -> float | None:
        """The normal gap on a later ``day`` if the user sends nothing until then."""
        return normal_gap(self.ledger, day)

    def weekly_baseline(self) -> Usage | None:
        """The baseline as a weekly mean (None with less than two weeks of history before the recent week)."""
        if self.baseline_days < MIN_BASELINE_DAYS:
            return None
        return self.baseline.per_week(self.baseline_days)

    def trend(self) -> float | None:
        """Recent week over the weekly baseline, averaged over active days, minutes and core actions
        (each capped at 1.5); None without a baseline."""
        if self._trend is not _UNSET:
            return self._trend  # type: ignore[return-value]
        base = self.weekly_baseline()
        trend: float | None = None
        if base is not None:
            recent = self.recent
            ratios = [min(1.5, r / b) for r, b in ((recent.active_days, base.active_days),
                                                   (recent.minutes, base.minutes),
                                                   (recent.core_actions, base.core_actions)) if b > 0]
            trend = sum(ratios) / len(ratios) if ratios else 1.0 if recent.active_days else 0.0
        self._trend = trend
        return trend


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
        self.scale = PeerScale(cfg.horizon_days, self.core_kinds)

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

    def peer_buckets(self, facts: Facts) -> list[int]:
        """The buckets of the values each measure is ranked on among peers (higher is better), in
        ``SCORE_MEASURES`` order: the last active day, active days then visits, active minutes,
        core actions then breadth (all over the cadence window), the trend."""
        r = facts.window_sum
        return self.scale.buckets(facts.last_active if facts.last_active is not None else facts.day - 10 ** 4,
                                  int(r.active_days), int(r.visits), int(r.minutes), round(r.core_actions * CORE_UNITS),
                                  facts.breadth, facts.trend())

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
    """Judges one partition's users on their due days; announces facts; signals score crossings."""

    def __init__(self, ctx: "PartitionContext", shared: EngagementCapability) -> None:
        super().__init__(ctx)
        self.shared = shared
        self.clock = shared.clock
        self.horizon = shared.config.horizon_days
        self.levels: Counter[int] = Counter()
        """Users per score level (from their records, so restore rebuilds it)."""
        self.peers = PeerRanks(shared.model.scale)
        """The latest peer values of the users in scope (from their records, so restore rebuilds it)."""
        self.segments = SegmentReader(ctx)
        """The peer segment's value comes from the activity capability (its owner)."""
        self._counted: dict[bytes, Facts] = {}
        """Facts of the first pass, by user, until their second pass (the users of one due time)."""
        self._judging: bytes | None = None
        """The user whose second pass is running (their listeners' requests are gathered)."""
        self._asked: int | None = None

    # --- inputs ----------------------------------------------------------------------------
    def on_event(self, key: bytes, state: "UserState", event: "Event") -> None:
        if not event.is_activity:
            return
        shared = self.shared
        day = self.clock.day(event.ts)
        mask = shared.classifier.core_mask(event)
        ledger = Ledger.of(state)
        n = ledger.n
        if not mask and n is not None and day <= n and ledger.mask >> (n - day) & 1 \
                and event.name not in shared.marked:
            return  # the day is already active and the event adds nothing else (most events)
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
        # The day's inputs changed: judge the user when it closes (a day already judged: the next).
        evaluated = ledger.evaluated
        self._ask(key, ledger, day if evaluated is None or day > evaluated else evaluated + 1)
        if trigger:  # risk hears of a cancel intent or an escalation at once, not at the day's end
            facts = self._facts(ledger, state, day, event.ts, "event")
            self.ctx.notify(key, state, NOTICE, facts_payload(facts, event.account or state.account,
                                                              ledger.score, ledger.score))

    def on_notice(self, key: bytes, state: "UserState", kind: str, payload: Any) -> None:
        if kind != "session_closed":
            return
        Ledger.of(state).add_session(self.clock.day(int(payload["start_ms"])), int(payload.get("active_ms") or 0))
        self.ctx.mark_dirty(key, state)

    def _facts(self, ledger: Ledger, state: "UserState", day: int, at_ms: int, trigger: str,
               peers_only: bool = False) -> Facts:
        risk = self.shared.risk
        first = self.clock.day(state.first_ts) if state.first_ts else day
        return Facts(ledger, day, first, at_ms, trigger, risk.drop_anchor_days, risk.negative_days,
                     risk.escalation_days, self.shared.model.preset.window_days, peers_only)

    # --- due days --------------------------------------------------------------------------
    def request(self, key: bytes, state: "UserState", day: int) -> None:
        """Judge the user again at the close of ``day`` (or earlier, if they are due earlier).

        For the partition's other capabilities: a day on which their view of the user changes
        although the user sends nothing (an inactivity threshold, the end of a calm run, ...).
        Days after the user leaves scope are ignored: they are judged again with their next
        activity. Asked while the user's announcement is being heard, it sets their next due day.
        """
        if key == self._judging:
            if self._asked is None or day < self._asked:
                self._asked = day
            return
        ledger = Ledger.of(state)
        if ledger.evaluated is not None and day <= ledger.evaluated:
            return
        last = ledger.last_active(day)
        if last is None or day > last + self.horizon:
            return
        if self._ask(key, ledger, day):
            self.ctx.mark_dirty(key, state)

    def _ask(self, key: bytes, ledger: Ledger, day: int) -> bool:
        """Make ``day`` the user's due day if it is earlier than the one they have."""
        if ledger.due is not None and ledger.due <= day:
            return False
        ledger.due = day
        self.ctx.schedule(self.shared.due(day), key, PEERS)
        return True

    # --- recovery --------------------------------------------------------------------------
    def restore(self, key: bytes, state: "UserState") -> None:
        rec = state.ext.get(SLOT)
        if not rec:
            return
        ledger = Ledger.load(rec)
        if ledger.score is not None:
            self.levels[ledger.level] += 1
        if ledger.peer is not None:
            self.peers.add(ledger.peer[0], ledger.peer[1:])
        if ledger.due is None and ledger.peer is None and ledger.rested is None and ledger.n is not None \
                and (ledger.evaluated is None or ledger.evaluated < ledger.n + self.horizon):
            # A record written before due days were kept: judged from the day after its last judgement.
            ledger.due = ledger.n - (ledger.mask.bit_length() - 1) if ledger.evaluated is None \
                else ledger.evaluated + 1
            state.ext[SLOT] = ledger
        if ledger.due is not None:
            self.ctx.schedule(self.shared.due(ledger.due), key, PEERS)

    # --- judging ---------------------------------------------------------------------------
    def on_timer(self, key: bytes, state: "UserState", tag: str, due_ms: int) -> None:
        day = self.shared.day_of_due(due_ms)
        ledger = Ledger.of(state)
        if ledger.due != day or ledger.n is None:
            return  # stale: the user's due day moved (an earlier one was judged meanwhile)
        if tag == PEERS:
            counted = self._counted.get(key)
            if counted is None or counted.day != day:  # else a second timer for the same day
                self._count(key, state, ledger, day, due_ms)
            return
        counted = self._counted.pop(key, None)
        if ledger.peer is not None and (ledger.evaluated is None or ledger.evaluated < day):
            self._judge(key, state, ledger, day, due_ms, counted if counted is not None and counted.day == day else None)

    def _count(self, key: bytes, state: "UserState", ledger: Ledger, day: int, due_ms: int) -> None:
        """First pass: the user's values of ``day`` replace their previous ones in the peer counts
        (or, ``horizon_days`` after their last activity, they leave scope)."""
        last = ledger.last_active(day)
        if ledger.peer is not None:
            self.peers.remove(ledger.peer[0], ledger.peer[1:])
            ledger.peer = None
        self.ctx.mark_dirty(key, state)
        if last is None or day > last + self.horizon:
            ledger.due = None
            ledger.rested = day
            self.ctx.notify(key, state, RESTED, {"day": day, "account": state.account})
            later = ledger.next_active(day)  # activity of a later day already applied
            if later is not None:
                self._ask(key, ledger, later)
            return
        facts = self._facts(ledger, state, day, due_ms, "day", peers_only=True)
        group = self.segments.code_on(state, self.shared.peer_index, day) if self.shared.peer_index is not None \
            else None
        buckets = self.shared.model.peer_buckets(facts)
        self.peers.add(group, buckets)
        ledger.peer = [group, *buckets]
        self._counted[key] = facts
        self.ctx.schedule(due_ms, key, SCORE)  # after every first pass of the day (same due time)

    def _judge(self, key: bytes, state: "UserState", ledger: Ledger, day: int, at_ms: int,
               counted: Facts | None) -> None:
        """Second pass: percentiles, marks, score, signals, the announcement, the next due day."""
        shared = self.shared
        model = shared.model
        risk = shared.risk
        facts = counted.complete(ledger, risk.negative_days, risk.escalation_days) if counted is not None \
            else self._facts(ledger, state, day, at_ms, "day")
        peer = ledger.peer
        assert peer is not None
        ranks = self.peers.percentiles(peer[0], peer[1:], day)
        score = model.score(model.own(facts), dict(zip(SCORE_MEASURES, ranks)))
        previous, previous_day = ledger.score, ledger.evaluated
        in_scope_until = day if ledger.rested is None else ledger.rested
        skipped = 0 if previous_day is None else max(0, min(day, in_scope_until) - 1 - previous_day)
        ledger.evaluated, ledger.rested = day, None
        self._level(key, state, ledger, facts, score)
        payload = facts_payload(facts, state.account, score, previous)
        payload["skipped_days"] = skipped
        payload["facts"] = facts
        ledger.due = None
        self._judging, self._asked = key, self._own_due(ledger, facts)
        try:
            self.ctx.notify(key, state, NOTICE, payload)
        finally:
            self._judging = None
        asked, self._asked = self._asked, None
        if asked is not None:
            self._ask(key, ledger, asked)
        self.ctx.mark_dirty(key, state)

    def _own_due(self, ledger: Ledger, facts: Facts) -> int | None:
        """The score's own next due day: a later day whose inputs are already applied (events run
        ahead of the watermark), or the day the user leaves scope."""
        if facts.last_active is None:
            return None
        later = ledger.next_active(facts.day)
        return later if later is not None else facts.last_active + self.horizon + 1

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
