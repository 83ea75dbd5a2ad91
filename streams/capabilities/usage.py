"""Usage depth: core actions, feature usage, visit frequency and the engagement figure.

Every figure is a count over days in event time, kept exact and additive across partitions
(see :mod:`streams.capabilities.daywindows`): per user, sparse per-day counts of the last 30 days; per
partition, difference arrays for distinct users in rolling windows and per-day totals for sums.
Definitions and formulas are in docs/sessions-and-usage.md#sessions-active-time-core-actions-and-feature-usage.

Per-user record (``state.ext["u"]``, absent for users with no activity and no segment):
``b`` base day; ``a`` activity-day bit mask (bit i: active on day b + i); ``v`` visits (sessions
started) ``[offset, count, ...]``; ``<i>`` (an integer, core action i) and ``<16 + j>`` (feature
j) ``[offset, count, ...]``; ``g`` the segment label codes (one per dimension, the activity
capability's codes) the user is counted under. Light users cost a few bytes: a base, a mask and a
short list.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Iterable, Iterator, Mapping, Sequence

from prometheus_client.core import GaugeMetricFamily, Metric

from streams.capabilities.classify import Classifier
from streams.capabilities.daywindows import (
    Coverage,
    DayPublisher,
    DayTotals,
    bump,
    covered_runs,
    newly_covered,
    prune,
    shift,
    start_day,
)
from streams.capabilities.segment_reader import Codes, SegmentReader
from streams.capabilities.sessions import SESSION_STARTED
from streams.capabilities.snapshots import add_figures
from streams.config import (
    ACTIVE_WINDOWS,
    ACTIVITY_TYPES,
    CADENCE_DAYS,
    CORE_ACTION_WINDOWS,
    FEATURE_WINDOWS,
    MAX_CORE_ACTIONS,
    METRIC_PREFIX,
    USAGE_RETAIN_DAYS,
    VISIT_WINDOWS,
    Settings,
)
from streams.core.calendar import DayClock
from streams.core.capability import Capability, Finisher, PartitionCapability, Shared
from streams.core.eventtime import NO_TIME

if TYPE_CHECKING:
    from streams.core.capability import PartitionContext
    from streams.core.contract import Event
    from streams.core.state import UserState

SLOT = "u"
#: Timer tag: a segment value of the user takes effect (see ``_follow_labels``).
LABELS = "g"
FEATURE_KEY = MAX_CORE_ACTIONS
"""Counter key of feature j is FEATURE_KEY + j; core action i is i."""
CADENCE_WINDOW = 7
SEGMENT_WINDOW = 30
KIND = "usage_day"


def _bits(mask: int) -> list[int]:
    out = []
    while mask:
        low = mask & -mask
        out.append(low.bit_length() - 1)
        mask ^= low
    return out


def _neighbours(mask: int, bit: int) -> tuple[int | None, int | None]:
    """The nearest set bits below and above ``bit``."""
    below = mask & ((1 << bit) - 1)
    above = mask >> (bit + 1)
    return (below.bit_length() - 1 if below else None,
            bit + (above & -above).bit_length() if above else None)


def _count_in(mask: int, lo: int, hi: int) -> int:
    """Set bits of ``mask`` in positions [lo, hi]."""
    lo = max(lo, 0)
    if hi < lo:
        return 0
    return (mask >> lo & ((1 << (hi - lo + 1)) - 1)).bit_count()


def user_usage(state: "UserState", day: int, classifier: Classifier) -> dict[str, Any]:
    """One user's counts in the windows ending on ``day``: core actions (1 / 7 / 28 days),
    features (1 / 28) and visits (7 / 30), from their record (for per-user scores and lookups).
    Exact for days the record still holds (the last ``USAGE_RETAIN_DAYS`` before the watermark)."""
    u = state.ext.get(SLOT) or {}
    base = u.get("b", day)

    def window(key: Any, width: int) -> int:
        days = u.get(key) or []
        return sum(days[i + 1] for i in range(0, len(days), 2) if day - width < base + days[i] <= day)

    return {
        "core_actions": {a.name: {f"{w}d": window(i, w) for w in CORE_ACTION_WINDOWS}
                         for i, a in enumerate(classifier.core_actions)},
        "features": {f: {f"{w}d": window(FEATURE_KEY + j, w) for w in FEATURE_WINDOWS}
                     for j, f in enumerate(classifier.features)},
        "visits": {f"{w}d": window("v", w) for w in VISIT_WINDOWS},
    }


class SegmentFigures:
    """Per segment value: total users, users active in 30 days, visits in 30 days."""

    __slots__ = ("users", "active", "visits")

    def __init__(self) -> None:
        self.users = Coverage()
        self.active = Coverage()
        self.visits = DayTotals()


class UsagePartition(PartitionCapability):
    """One partition's usage figures; listens to the partition's sessions for visits."""

    def __init__(self, ctx: "PartitionContext", owner: "Usage") -> None:
        super().__init__(ctx)
        self.clock = owner.clock
        self.classifier = owner.classifier
        self.cadence = owner.settings.usage.cadence
        self.cadence_days = owner.cadence_days
        self.windows: dict[int, tuple[int, ...]] = {i: CORE_ACTION_WINDOWS for i in range(len(owner.classifier.core_actions))}
        self.windows.update({FEATURE_KEY + j: FEATURE_WINDOWS for j in range(len(owner.classifier.features))})
        self.users = Coverage()
        self.active = {w: Coverage() for w in ACTIVE_WINDOWS}
        self.on_cadence = Coverage()
        self.visits = DayTotals()
        self.counts = {key: DayTotals() for key in self.windows}
        self.reach = {(key, w): Coverage() for key, windows in self.windows.items() for w in windows}
        self.reader = SegmentReader(ctx)
        self.segments: dict[tuple[str, str], SegmentFigures] = {}
        self._by_codes: dict[tuple[Any, ...], list[SegmentFigures]] = {}
        self.publisher = DayPublisher(self.clock, ctx.publish_partial, KIND, 0, self.day_figures, self._settle,
                                      owner.settings.activity.provisional_interval_s, owner.start_day)
        self._keep_from = self._keep_lo = self._keep_hi = 0
        self._keep_window(NO_TIME)

    # --- the user record -----------------------------------------------------------------
    def _record(self, state: "UserState", day: int) -> dict[str, Any]:
        """The user's slot, with ``day`` representable (base at or before it) and old days dropped."""
        u = state.ext.get(SLOT)
        if u is None:
            u = state.ext[SLOT] = {"b": day}
            return u
        base = u.get("b")
        if base is None:
            u["b"] = day
            return u
        if day < base:
            self._rebase(u, day - base)
        else:
            watermark = self.ctx.watermark.value
            if not self._keep_lo <= watermark < self._keep_hi:
                self._keep_window(watermark)
            if self._keep_from > base:
                self._rebase(u, self._keep_from - base)
        return u

    def _keep_window(self, watermark: int) -> None:
        """The oldest day a record keeps at this watermark, and the watermarks it holds for (the
        watermark's day): looked up per event, it changes once a day."""
        if watermark > 0:
            day = self.clock.day(watermark)
            self._keep_from = day - (USAGE_RETAIN_DAYS - 1)
            self._keep_lo, self._keep_hi = max(self.clock.start(day), 1), self.clock.end(day)
        else:  # no watermark yet: keep everything
            self._keep_from, self._keep_lo, self._keep_hi = NO_TIME, NO_TIME, 1

    def _rebase(self, u: dict[Any, Any], by: int) -> None:
        """Move the base day by ``by`` days (negative: earlier), dropping days before the new base."""
        u["b"] += by
        if "a" in u:
            mask = u["a"] >> by if by > 0 else u["a"] << -by
            if mask:
                u["a"] = mask
            else:
                del u["a"]
        for key in [k for k in u if k not in ("b", "a", "g")]:
            days = u[key]
            if by > 0:
                prune(days, by)
            shift(days, -by)
            if not days:
                del u[key]

    # --- events --------------------------------------------------------------------------
    def on_event(self, key: bytes, state: "UserState", event: "Event") -> None:
        clock = self.clock
        ts = event.ts
        day = clock.day(ts)
        is_new = state.is_new
        if is_new:
            self.users.add(day, None)
        elif ts < state.first_ts:
            first_day = clock.day(state.first_ts)
            if day != first_day:
                self._move_first_day(state, first_day, day)
        codes = self.reader.current(state)
        if codes is not None:
            u = state.ext.get(SLOT)
            if u is None or u.get("g") != codes:  # the labels changed (rare): move the user's figures
                first_day = day if is_new or ts < state.first_ts else clock.day(state.first_ts)
                self._follow_labels(key, state, first_day, is_new, day)
        if event.type not in ACTIVITY_TYPES:
            return
        u = self._record(state, day)
        offset = day - u["b"]
        mask = u.get("a", 0)
        if not mask >> offset & 1:
            self._new_active_day(state, u, mask, offset, day)
        core_mask, feature = self.classifier.classify(event)
        while core_mask:
            low = core_mask & -core_mask
            self._count(u, low.bit_length() - 1, offset, day)
            core_mask ^= low
        if feature >= 0:
            self._count(u, FEATURE_KEY + feature, offset, day)

    def _new_active_day(self, state: "UserState", u: dict[Any, Any], mask: int, offset: int, day: int) -> None:
        prev, nxt = _neighbours(mask, offset)
        base = u["b"]
        prev_day = None if prev is None else base + prev
        next_day = None if nxt is None else base + nxt
        for width, coverage in self.active.items():
            span = newly_covered(day, prev_day, next_day, width)
            if span:
                coverage.add(*span)
        mask |= 1 << offset
        u["a"] = mask
        need = -(-CADENCE_WINDOW // self.cadence_days)
        for d in range(day, day + CADENCE_WINDOW):  # windows the new day falls in: count reaches need?
            if _count_in(mask, d - base - CADENCE_WINDOW + 1, d - base) == need:
                self.on_cadence.add(d, d)
        for seg in self._user_segments(u):
            span = newly_covered(day, prev_day, next_day, SEGMENT_WINDOW)
            if span:
                seg.active.add(*span)

    def _count(self, u: dict[Any, Any], key: int, offset: int, day: int) -> None:
        days = u.get(key)
        if days is None:
            days = u[key] = []
        first, prev, nxt = bump(days, offset, 1)
        self.counts[key].add(day, 1)
        if first:
            base = u["b"]
            for width in self.windows[key]:
                span = newly_covered(day, None if prev is None else base + prev,
                                     None if nxt is None else base + nxt, width)
                if span:
                    self.reach[(key, width)].add(*span)

    def _move_first_day(self, state: "UserState", old: int, new: int) -> None:
        """A late event moved the user's first day earlier (only possible within the lateness)."""
        self.users.add(old, None, -1)
        self.users.add(new, None)
        u = state.ext.get(SLOT)
        for seg in (self._user_segments(u) if u else ()):
            seg.users.add(old, None, -1)
            seg.users.add(new, None)

    # --- sessions ------------------------------------------------------------------------
    def on_notice(self, key: bytes, state: "UserState", kind: str, payload: Mapping[str, Any]) -> None:
        if kind == SESSION_STARTED:
            self._visit(key, state, payload["start_ms"])

    def _visit(self, key: bytes, state: "UserState", start_ms: int) -> None:
        """A session started: one visit on its start day."""
        day = self.clock.day(start_ms)
        u = self._record(state, day)
        visits = u.get("v")
        if visits is None:
            visits = u["v"] = []
        bump(visits, day - u["b"], 1)
        self.visits.add(day, 1)
        for seg in self._user_segments(u):
            seg.visits.add(day, 1)
        self.ctx.mark_dirty(key, state)

    # --- segments ------------------------------------------------------------------------
    def _user_segments(self, u: dict[Any, Any]) -> list[SegmentFigures]:
        """The figures of the labels the user is counted under (``g``: one label code per dimension)."""
        codes = u.get("g")
        if codes is None:
            return []
        codes = tuple(codes)
        figures = self._by_codes.get(codes)
        if figures is None:
            figures = self._by_codes[codes] = []
            for label in self.reader.labels(codes):
                seg = self.segments.get(label)
                if seg is None:
                    seg = self.segments[label] = SegmentFigures()
                figures.append(seg)
        return figures

    def _labels_day(self, fallback: int) -> int:
        """The day whose segment labels the user's figures count under: the first day not yet
        published (every unpublished day is summed from the same running figures)."""
        if self.publisher.next_day is not None:
            return self.publisher.next_day
        watermark = self.ctx.watermark.value
        return self.clock.day(watermark) if watermark != NO_TIME else fallback

    def _follow_labels(self, key: bytes, state: "UserState", first_day: int, is_new: bool, fallback: int) -> None:
        """Count the user under their labels as of the first unpublished day (an event can reach
        this capability hours before the watermark passes the days before it: those days' figures
        must not see its values); a later change is followed when the watermark reaches its day."""
        on = self._labels_day(fallback)
        codes = self.reader.codes_on(state, on)
        u = state.ext.get(SLOT)
        if codes is not None and (u is None or tuple(u.get("g") or ()) != codes):
            self._follow_segments(state, codes, first_day, is_new)
            self.ctx.mark_dirty(key, state)
        self._follow_later(key, state, on)

    def _follow_later(self, key: bytes, state: "UserState", on: int) -> None:
        """A label of the user changes after day ``on``: follow it just after that day's start,
        when every timer of the days before (the sessions' visits among them) has fired."""
        change = self.reader.next_change(state, on)
        if change is not None:
            self.ctx.schedule(self.clock.start(change) + 1, key, LABELS)

    def on_timer(self, key: bytes, state: "UserState", tag: str, due_ms: int) -> None:
        """A segment value of the user takes effect (its day begins): publish the days before it
        first (with the old labels), then move the user's figures."""
        if tag != LABELS:
            return
        self.publisher.advance(due_ms)
        self._follow_labels(key, state, self.clock.day(state.first_ts), False, self.clock.day(due_ms))

    def _follow_segments(self, state: "UserState", codes: Codes, first_day: int, is_new: bool) -> None:
        """Count the user under their current segment labels ``codes`` (changed), moving their figures."""
        u = state.ext.get(SLOT)
        if u is None:
            u = state.ext[SLOT] = {}
        elif not is_new:
            self._attribute(u, first_day, -1)
        self._count_under(u, codes, first_day)

    def _count_under(self, u: dict[Any, Any], codes: Codes, first_day: int) -> None:
        u["g"] = list(codes)
        self._attribute(u, first_day, 1)

    def _attribute(self, u: dict[Any, Any], first_day: int, sign: int) -> None:
        """Add (or, with sign -1, remove) the user's share of every segment figure."""
        segments = self._user_segments(u)
        if not segments:
            return
        base = u.get("b", 0)
        active_days = [base + b for b in _bits(u.get("a", 0))]
        runs = list(covered_runs(active_days, SEGMENT_WINDOW))
        visits = u.get("v", [])
        for seg in segments:
            seg.users.add(first_day, None, sign)
            for lo, hi in runs:
                seg.active.add(lo, hi, sign)
            for i in range(0, len(visits), 2):
                seg.visits.add(base + visits[i], sign * visits[i + 1])

    # --- recovery ------------------------------------------------------------------------
    def restore(self, key: bytes, state: "UserState") -> None:
        self.publisher.resumed = True
        first_day = self.clock.day(state.first_ts)
        self.users.add(first_day, None)
        u = state.ext.get(SLOT)
        if u is not None:
            self._restore_figures(u)
        on = self._labels_day(self.clock.day(state.max_ts))
        codes = self.reader.codes_on(state, on)
        if codes is not None:
            if u is None:
                u = state.ext[SLOT] = {}
            if tuple(u.get("g", ())) != codes:  # first seen, or labels resolved differently after a restart
                self.ctx.mark_dirty(key, state)
            self._count_under(u, codes, first_day)
            self._follow_later(key, state, on)

    def _restore_figures(self, u: dict[Any, Any]) -> None:
        """Add a recovered user's days to the overall figures."""
        base = u.get("b", 0)
        mask = u.get("a", 0)
        active_days = [base + b for b in _bits(mask)]
        for width, coverage in self.active.items():
            for lo, hi in covered_runs(active_days, width):
                coverage.add(lo, hi)
        need = -(-CADENCE_WINDOW // self.cadence_days)
        for d in sorted({d for x in active_days for d in range(x, x + CADENCE_WINDOW)}):
            if _count_in(mask, d - base - CADENCE_WINDOW + 1, d - base) >= need:
                self.on_cadence.add(d, d)
        visits = u.get("v", [])
        for i in range(0, len(visits), 2):
            self.visits.add(base + visits[i], visits[i + 1])
        for key, windows in self.windows.items():
            days = u.get(key)
            if not days:
                continue
            totals = self.counts[key]
            for i in range(0, len(days), 2):
                totals.add(base + days[i], days[i + 1])
            for width in windows:
                for lo, hi in covered_runs([base + d for d in days[0::2]], width):
                    self.reach[(key, width)].add(lo, hi)

    # --- figures -------------------------------------------------------------------------
    def day_figures(self, day: int) -> dict[str, Any]:
        """This partition's additive share of the usage snapshot for ``day`` (windows end on it)."""
        counts, reach = self.counts, self.reach
        out: dict[str, Any] = {
            "cadence": self.cadence,
            "users_total": self.users.value(day),
            "active_users": {f"{w}d": c.value(day) for w, c in self.active.items()},
            f"on_cadence_users_{CADENCE_WINDOW}d": self.on_cadence.value(day),
            "visits": {f"{w}d": self.visits.window(day, w) for w in (1, *VISIT_WINDOWS)},
        }
        core: dict[str, Any] = {}
        weighted = dict.fromkeys((f"{w}d" for w in CORE_ACTION_WINDOWS), 0.0)
        for i, action in enumerate(self.classifier.core_actions):
            count = {f"{w}d": counts[i].window(day, w) for w in CORE_ACTION_WINDOWS}
            core[action.name] = {"count": count,
                                 "users": {f"{w}d": reach[(i, w)].value(day) for w in CORE_ACTION_WINDOWS}}
            for window, n in count.items():
                weighted[window] += action.weight * n
        out["core_actions"] = core
        out["core_actions_weighted"] = weighted
        out["features"] = {
            feature: {"uses": {f"{w}d": counts[FEATURE_KEY + j].window(day, w) for w in FEATURE_WINDOWS},
                      "users": {f"{w}d": reach[(FEATURE_KEY + j, w)].value(day) for w in FEATURE_WINDOWS}}
            for j, feature in enumerate(self.classifier.features)}
        if self.segments:
            segments: dict[str, dict[str, Any]] = {}
            for (dim, label), seg in sorted(self.segments.items()):
                segments.setdefault(dim, {})[label] = {
                    "users_total": seg.users.value(day),
                    f"active_users_{SEGMENT_WINDOW}d": seg.active.value(day),
                    f"visits_{SEGMENT_WINDOW}d": seg.visits.window(day, SEGMENT_WINDOW)}
            out["segments"] = segments
        return out

    def _settle(self, day: int) -> None:
        """``day`` is final: fold its difference arrays and drop totals no window needs any more."""
        oldest = day + 1 - (USAGE_RETAIN_DAYS - 1)
        coverages: list[Coverage] = [self.users, self.on_cadence, *self.active.values(), *self.reach.values()]
        totals: list[DayTotals] = [self.visits, *self.counts.values()]
        for seg in self.segments.values():
            coverages += [seg.users, seg.active]
            totals.append(seg.visits)
        for coverage in coverages:
            coverage.settle(day)
        for total in totals:
            total.settle(oldest)

    def current_day(self) -> int | None:
        watermark = self.ctx.watermark.value
        return self.clock.day(watermark) if watermark > 0 else None

    def on_watermark(self, watermark_ms: int) -> None:
        self.publisher.advance(watermark_ms)

    def describe(self, key: bytes, state: "UserState") -> dict[str, Any]:
        """The user's core actions, features and visits in the windows ending on the current day."""
        if not state.ext.get(SLOT):
            return {}
        day = self.current_day()
        if day is None or day < self.clock.day(state.max_ts):
            day = self.clock.day(state.max_ts)
        return {"as_of_day": self.clock.label(day), **user_usage(state, day, self.classifier)}

    def figures(self) -> dict[str, Any]:
        day = self.current_day()
        if day is None:
            return {}
        figures = self.day_figures(day)
        out = {"usage_users_total": figures["users_total"]}
        for window, n in figures["active_users"].items():
            out[f"usage_active_users_{window}"] = n
        for window, n in figures["visits"].items():
            out[f"usage_visits_{window}"] = n
        return out


def _ratio(part: float, whole: float) -> float | None:
    return part / whole if whole else None


def finish_usage_day(figures: dict[str, Any]) -> dict[str, Any]:
    """Ratios of the summed partitions (never sums of ratios): engagement, visit frequency against
    the cadence, feature adoption, overall and per segment."""
    active, visits = figures.get("active_users", {}), figures.get("visits", {})
    total = figures.get("users_total", 0)
    figures["engagement"] = _engagement(total, active.get("30d", 0), visits.get("30d", 0))
    per_user = {f"{w}d": _ratio(visits.get(f"{w}d", 0), active.get(f"{w}d", 0)) for w in VISIT_WINDOWS}
    days = CADENCE_DAYS.get(figures.get("cadence", ""), 1)
    expected = {f"{w}d": w / days for w in VISIT_WINDOWS}
    figures["visits_per_active_user"] = per_user
    figures["expected_visits_per_active_user"] = expected
    figures["cadence_ratio"] = {w: None if v is None else v / expected[w] for w, v in per_user.items()}
    figures[f"on_cadence_share_{CADENCE_WINDOW}d"] = _ratio(
        figures.get(f"on_cadence_users_{CADENCE_WINDOW}d", 0), active.get(f"{CADENCE_WINDOW}d", 0))
    for feature in figures.get("features", {}).values():
        feature["adoption"] = {w: _ratio(n, active.get(w, 0)) for w, n in feature.get("users", {}).items()}
    for labels in figures.get("segments", {}).values():
        for seg in labels.values():
            seg["engagement"] = _engagement(seg.get("users_total", 0), seg.get(f"active_users_{SEGMENT_WINDOW}d", 0),
                                            seg.get(f"visits_{SEGMENT_WINDOW}d", 0))
    return figures


def _engagement(total: int, active: int, visits: int) -> float | None:
    """(active users / total users) x (average visits per active user), 30 days."""
    if not total:
        return None
    return active / total * (visits / active if active else 0.0)


class Usage(Capability):
    """The usage capability: one :class:`UsagePartition` per assigned partition."""

    name = "usage"
    slot = SLOT

    def __init__(self, settings: Settings, shared: Shared | None = None) -> None:
        super().__init__(settings, shared or Shared())
        self.classifier = self.shared.get(Classifier, lambda: Classifier(settings.usage))
        self.cadence_days = CADENCE_DAYS[settings.usage.cadence]
        self.clock = DayClock(settings.activity.timezone)
        self.start_day = start_day(settings, self.clock)

    def finishers(self) -> dict[str, Finisher]:
        return {KIND: finish_usage_day}

    def for_partition(self, ctx: "PartitionContext") -> UsagePartition:
        return UsagePartition(ctx, self)

    def collect(self, parts: Sequence[PartitionCapability]) -> Iterable[Metric]:
        return self._families([p for p in parts if isinstance(p, UsagePartition)])

    def _families(self, live: list[UsagePartition]) -> Iterator[Metric]:
        p = METRIC_PREFIX
        total: dict[str, Any] = {}
        for part in live:
            day = part.current_day()
            if day is not None:
                total = add_figures(total, part.day_figures(day))
        active = GaugeMetricFamily(f"{p}_usage_active_users", "Users with activity in the window ending on "
                                   "the current day of each owned partition (sum over workers).", labels=["window"])
        for width in ACTIVE_WINDOWS:
            active.add_metric([f"{width}d"], total.get("active_users", {}).get(f"{width}d", 0))
        yield active
        visits = GaugeMetricFamily(f"{p}_visits", "Sessions started in the window (visits); divided by "
                                   f"{p}_usage_active_users: sessions per active user.", labels=["window"])
        for width in (1, *VISIT_WINDOWS):
            visits.add_metric([f"{width}d"], total.get("visits", {}).get(f"{width}d", 0))
        yield visits
        yield GaugeMetricFamily(f"{p}_on_cadence_users", f"Users active on at least as many of the last "
                                f"{CADENCE_WINDOW} days as the expected cadence asks.",
                                value=total.get(f"on_cadence_users_{CADENCE_WINDOW}d", 0))
        count = GaugeMetricFamily(f"{p}_core_actions", "Core actions done in the window.", labels=["action", "window"])
        users = GaugeMetricFamily(f"{p}_core_action_users", "Distinct users who did the core action in the window.",
                                  labels=["action", "window"])
        core = total.get("core_actions", {})
        for action in self.classifier.core_actions:
            figures = core.get(action.name, {})
            for width in CORE_ACTION_WINDOWS:
                count.add_metric([action.name, f"{width}d"], figures.get("count", {}).get(f"{width}d", 0))
                users.add_metric([action.name, f"{width}d"], figures.get("users", {}).get(f"{width}d", 0))
        yield count
        yield users
        uses = GaugeMetricFamily(f"{p}_feature_uses", "Uses of the feature in the window.", labels=["feature", "window"])
        adopters = GaugeMetricFamily(f"{p}_feature_users", "Distinct users of the feature in the window; divided "
                                     f"by {p}_usage_active_users: adoption.", labels=["feature", "window"])
        features = total.get("features", {})
        for feature in self.classifier.features:
            figures = features.get(feature, {})
            for width in FEATURE_WINDOWS:
                uses.add_metric([feature, f"{width}d"], figures.get("uses", {}).get(f"{width}d", 0))
                adopters.add_metric([feature, f"{width}d"], figures.get("users", {}).get(f"{width}d", 0))
        yield uses
        yield adopters
