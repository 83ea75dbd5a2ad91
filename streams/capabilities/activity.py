"""Active users (DAU / WAU / MAU), stickiness and lifecycle, exact in event time.

Per user, :mod:`streams.capabilities.lifecycle` keeps a 32-day activity bitmap and segment history in
``state.ext["a"]``. Per partition, this capability keeps the day figures as running sums of
per-user *changes*: when a user's record changes (a new active day, a new segment value), the
difference it makes to every open day is added to ``stock[day]`` (users, WAU, MAU, lifecycle
states: effective from that day on) and ``flows[day]`` (that day's activity by lifecycle and users
turning dormant). So an event costs a few dictionary updates, however many users there are, and
the figures never hold a set of user ids.

Days close in event time: when the partition watermark passes the end of a day, the day's figures
are final here (a later event for it would be older than the watermark, which the processor
dead-letters as ``late``), and the partition's share is published to the partials topic; the
rollup (:mod:`streams.capabilities.snapshots`) adds up the partitions and publishes the snapshot. Lifecycle
changes become one signal each, at the moment they are final: an activity transition once every
earlier day is closed, dormancy when its day closes (an event-time check that runs as the
watermark passes the day, not at the user's next event).

After a restart, :meth:`PartitionActivity.restore` rebuilds the same sums from the recovered
records alone (each user anchored a day before the oldest day that can still be open), and the
pending checks.
"""

from __future__ import annotations

import hashlib
import time
from collections import Counter
from typing import TYPE_CHECKING, Any, Iterable, Iterator, Sequence

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from streams.capabilities.lifecycle import (
    DORMANT,
    IN_MAU,
    IN_WAU,
    STATE_NAMES,
    Rules,
    View,
    merge_into,
    newest_codes,
)
from streams.capabilities.segments import LabelCodes, SegmentSources
from streams.capabilities.snapshots import add_figures
from streams.config import LIFECYCLE_STATES, MAU_DAYS, METRIC_PREFIX, WAU_DAYS, Settings
from streams.core.calendar import DayClock
from streams.core.capability import Capability, Finisher, PartitionCapability, Shared
from streams.core.eventtime import NO_TIME, iso_ms

if TYPE_CHECKING:
    from streams.core.capability import PartitionContext
    from streams.core.contract import Event
    from streams.core.state import UserState

SLOT = "a"
NO_DAY = -(2**31)
KIND = "activity_day"
#: What a pending check looks at when its day closes (timer tags): the transition of the user's
#: next active day (an activity the day after), or whether the user turned dormant that day.
CHECK_ACTIVE = "activity:active"
CHECK_DORMANT = "activity:dormant"
P = METRIC_PREFIX
WINDOWS = (("1d", "dau"), ("7d", "wau"), ("30d", "mau"))


class ActivityCapability(Capability):
    """The configured activity capability: one :class:`PartitionActivity` per partition."""

    name = "activity"
    slot = SLOT

    def __init__(self, settings: Settings, shared: Shared | None = None) -> None:
        super().__init__(settings, shared or Shared())
        self.config = settings.activity
        self.dims = tuple(self.config.segments)
        self.sources = SegmentSources(self.dims)
        self.clock = DayClock(self.config.timezone)
        self.rules = Rules(self.config.dormant_days, self.clock.days_covering(settings.allowed_lateness_ms),
                           len(self.dims))
        self.start_day = self.clock.parse(self.config.start_date) if self.config.start_date else None
        self.provisional_s = self.config.provisional_interval_s
        #: Lifecycle signals this worker emitted, by new state (a counter: never goes down on revoke).
        self.transitions: Counter[str] = Counter()

    def for_partition(self, ctx: "PartitionContext") -> "PartitionActivity":
        return PartitionActivity(ctx, self)

    def finishers(self) -> dict[str, Finisher]:
        return {KIND: finish_activity_day}

    def collect(self, parts: Sequence[PartitionCapability]) -> Iterable[Metric]:
        """Gauges of the open day, summed over this worker's partitions (sum over workers is exact).

        Counts only: stickiness is a ratio and cannot be summed across workers, so Prometheus
        divides the summed counts (recording rules in docs/active-users.md#active-users-stickiness-and-lifecycle).
        """
        total: dict[str, Any] = {}
        for part in parts:
            if isinstance(part, PartitionActivity):
                total = add_figures(total, part.current_figures())
        group = total or empty_group()
        active = GaugeMetricFamily(f"{P}_active_users", "Distinct users active in the window ending "
                                   "with the open day (1d = DAU, 7d = WAU, 30d = MAU), event time.",
                                   labels=["window"])
        for window, name in WINDOWS:
            active.add_metric([window], group.get(name, 0))
        yield active
        yield GaugeMetricFamily(f"{P}_activated_users", "Users with at least one activity event so far "
                                "(all lifecycle states).", value=group.get("users", 0))
        states = GaugeMetricFamily(f"{P}_lifecycle_users", "Users per lifecycle state at the open day.",
                                   labels=["state"])
        for state in LIFECYCLE_STATES:
            states.add_metric([state], group.get("lifecycle", {}).get(state, 0))
        yield states
        seg_active = GaugeMetricFamily(f"{P}_segment_active_users", "Active users per segment value "
                                       "(bounded: configured or first admitted values, other, unknown).",
                                       labels=["dimension", "value", "window"])
        seg_states = GaugeMetricFamily(f"{P}_segment_lifecycle_users", "Users per lifecycle state per "
                                       "segment value.", labels=["dimension", "value", "state"])
        for dim, values in sorted(group.get("segments", {}).items()):
            for value, figures in sorted(values.items()):
                for window, name in WINDOWS:
                    seg_active.add_metric([dim, value, window], figures.get(name, 0))
                for state in LIFECYCLE_STATES:
                    seg_states.add_metric([dim, value, state], figures["lifecycle"].get(state, 0))
        yield seg_active
        yield seg_states
        transitions = CounterMetricFamily(f"{P}_lifecycle_transitions", "Lifecycle signals emitted by "
                                          "this worker, by the state entered.", labels=["to"])
        for state in LIFECYCLE_STATES:
            transitions.add_metric([state], self.transitions.get(state, 0))
        yield transitions
        day = GaugeMetricFamily(f"{P}_activity_open_day_timestamp_seconds", "Start of the open day "
                                "(the day the activity gauges describe) per owned partition.",
                                labels=["partition"])
        for part in parts:
            if isinstance(part, PartitionActivity) and part.open_day is not None:
                day.add_metric([str(part.ctx.partition)], self.clock.start(part.open_day) / 1000)
        yield day


class PartitionActivity(PartitionCapability):
    """Day figures, day closing and lifecycle signals of one partition."""

    def __init__(self, ctx: "PartitionContext", shared: ActivityCapability) -> None:
        super().__init__(ctx)
        self.shared = shared
        self.rules = shared.rules
        self.clock = shared.clock
        self.codes = LabelCodes(shared.dims, ctx)
        self.base: dict[tuple, int] = {}
        """Memberships summed up to the end of the last closed day."""
        self.stock: dict[int, dict[tuple, int]] = {}
        """Membership changes per day not yet closed (a day's stock: base + changes up to it)."""
        self.flows: dict[int, dict[tuple, int]] = {}
        """Each open day's own counts (active as new / returning / resurrected, became dormant)."""
        self.open_day: int | None = None
        """The oldest day not yet closed (None until the partition has data)."""
        self.restoring = False
        self._provisional_at = time.monotonic()
        self._first_open, self._open_until = NO_DAY, NO_TIME
        """The day the watermark is in, and that day's end (saves a day computation per event)."""

    # --- events --------------------------------------------------------------------------
    def on_event(self, key: bytes, state: "UserState", event: "Event") -> None:
        observed = self.shared.sources.observe(event)
        active = event.is_activity
        if not active and not observed:
            return
        rules, clock = self.rules, self.clock
        watermark = self.ctx.watermark.value
        if watermark >= self._open_until:  # earlier days are closed
            self._first_open = NO_DAY if watermark == NO_TIME else clock.day(watermark)
            self._open_until = NO_TIME + 1 if watermark == NO_TIME else clock.end(self._first_open)
        first_open = self._first_open  # the checks of every earlier day have run (timers, fired at once)
        view = state.ext.get(SLOT)
        if view.__class__ is not View:  # decoded once per user per flush, then kept live
            view = state.ext[SLOT] = rules.new_view(view, state.max_ts)
        day = clock.day(event.ts)
        ts = event.ts
        known = self.codes.codes
        codes = []
        for dim, value in observed:
            code = known[dim].get(value)
            codes.append((dim, self.codes.code(dim, value) if code is None else code))
        new_day = active and not rules.is_active(view, day)
        if not new_day:
            # The common case (another event of a day already counted, same segment values): no
            # figure moves; only the day's latest observation times do.
            note = view.note
            for dim, code in codes:
                if not note(dim, day, ts, code):
                    break
            else:
                return
        old = view.copy()
        if new_day:
            rules.add_day(view, day)
        since = day if new_day else None
        for dim, code in codes:
            if view.observe(dim, day, ts, code):
                since = day
        if since is not None:
            rules.contribute(old, view, since, self.stock, self.flows)
        # The processor moves the watermark right after this call; days before it are closed then.
        after = ts - self.ctx.settings.allowed_lateness_ms
        rules.compact(view, clock.day(max(watermark, after)))
        if new_day:
            if day <= first_open:  # every earlier day is closed: the transition is final now
                self._signal(key, view, day, event.account or state.account)
            else:
                self.check(day - 1, CHECK_ACTIVE, key)
            if old.n is None or old.n + rules.dormant < first_open:  # its dormancy check has run
                self.check(view.n + rules.dormant, CHECK_DORMANT, key)  # type: ignore[operator]

    def check(self, day: int, kind: str, key: bytes) -> None:
        """Look at the user again when ``day`` closes: an event-time timer (packed with the
        partition's others: every user active in the last ``dormant_days`` has one pending, at
        about 14 bytes each). A check can be stale (the user was active again since); it finds
        out from the record."""
        self.ctx.schedule(self.clock.end(day), key, kind)

    def on_timer(self, key: bytes, state: "UserState", tag: str, due_ms: int) -> None:
        """A check of a day that just closed (``check``), oldest day first."""
        day = self.clock.day(due_ms - 1)
        view = self.rules.new_view(state.ext.get(SLOT), state.max_ts)
        if view.n is None:
            return
        if tag == CHECK_ACTIVE:
            if not self.restoring:
                self._signal(key, view, day + 1, state.account)
            return
        if not self.restoring:
            self._signal(key, view, day, state.account, only=DORMANT)
        if view.n + self.rules.dormant > day:  # active again since: check at its new dormancy day
            self.check(view.n + self.rules.dormant, CHECK_DORMANT, key)

    def _signal(self, key: bytes, view: View, day: int, account: str | None, only: int | None = None) -> None:
        """One message per lifecycle change, with an id that a replay reproduces."""
        before, after = self.rules.transition(view, day)
        if before == after or after is None or (only is not None and after != only):
            return
        user = key.decode("utf-8", "replace")
        old, new = STATE_NAMES.get(before) if before else None, STATE_NAMES[after]
        label = self.clock.label(day)
        # Activity changes take effect when the day starts, dormancy when it ends.
        at = self.clock.end(day) if after == DORMANT else self.clock.start(day)
        self.ctx.emit(self.ctx.settings.signals_topic, key, {
            "id": signal_id(user, old, new, label), "type": "lifecycle", "user_id": user,
            "account_id": account, "from": old, "to": new, "day": label,
            "event_time": iso_ms(at), "event_time_ms": at, "reason": self._reason(view, day, after)})
        self.shared.transitions[new] += 1

    def _reason(self, view: View, day: int, after: int) -> str:
        rules, label = self.rules, self.clock.label
        dormant = rules.dormant
        if after == DORMANT:
            return f"no activity for {dormant} days since {label(day - dormant)}"
        before = rules.last_active(view, day - 1)
        if before is None and day == view.f:
            return f"first activity on {label(day)}"
        if before is None:
            return f"active on {label(day)} after more than {rules.span} days without activity"
        gap = day - before - 1
        if gap >= dormant:
            return (f"active on {label(day)} after {gap} days without activity "
                    f"(dormant after {dormant}); previous activity on {label(before)}")
        return f"active on {label(day)}; previous activity on {label(before)}"

    # --- recovery ------------------------------------------------------------------------
    def restore(self, key: bytes, state: "UserState") -> None:
        """Add a recovered user to the sums (from an anchor day that is surely closed) and re-arm
        the checks of transitions that may still be pending. Checks of days that turn out to be
        closed at the restored watermark run during recovery and are not re-signalled (their
        signals went out before the restart; see ``restoring``)."""
        self.restoring = True
        rec = state.ext.get(SLOT)
        if not rec:
            return
        view = self.rules.new_view(rec, state.max_ts)
        if view.n is None:
            return
        self.rules.contribute(None, view, view.n - self.rules.margin, self.stock, self.flows)
        # The restored watermark is at least this user's newest event minus the lateness.
        first_open = self.clock.day(state.max_ts - self.ctx.settings.allowed_lateness_ms)
        if view.n + self.rules.dormant >= first_open:
            self.check(view.n + self.rules.dormant, CHECK_DORMANT, key)
        for day in view.active_days():
            if day > first_open:
                self.check(day - 1, CHECK_ACTIVE, key)

    # --- event time ----------------------------------------------------------------------
    def on_watermark(self, watermark_ms: int) -> None:
        """Close every day the watermark has passed: its figures are final, publish them."""
        if watermark_ms == NO_TIME:  # a partition without events yet
            self.restoring = False
            return
        limit = self.clock.day(watermark_ms)
        if self.open_day is None:
            self.open_day = self._first_day()
            if self.open_day is None:
                self.restoring = False
                return
        while self.open_day < limit:
            day = self.open_day
            merge_into(self.base, self.stock.pop(day, {}))
            flows = self.flows.pop(day, {})
            if not self.restoring:  # after recovery, closed days were published before the restart
                self.ctx.publish_partial(KIND, self.clock.label(day), self.expand(self.base, flows), final=True)
            self.open_day = day + 1
        self.restoring = False
        interval = self.shared.provisional_s
        if interval and time.monotonic() - self._provisional_at >= interval:
            self.publish_provisional()

    def publish_provisional(self) -> None:
        """Send the open days' figures so far (up to the newest event's day), marked not final."""
        self._provisional_at = time.monotonic()
        if self.ctx.watermark.max_ts == NO_TIME:
            return
        for day, stock, flows in self.open_days(self.clock.day(self.ctx.watermark.max_ts)):
            self.ctx.publish_partial(KIND, self.clock.label(day), self.expand(stock, flows), final=False)

    def _first_day(self) -> int | None:
        """The first day this partition reports: its first activity (or ``start_date``)."""
        known = [*self.stock, *self.flows]
        if self.shared.start_day is not None:
            known.append(self.shared.start_day)
        return min(known) if known else None

    def open_days(self, last: int) -> Iterator[tuple[int, dict, dict]]:
        """(day, stock, flows) of each open day up to ``last``."""
        first = self.open_day if self.open_day is not None else self._first_day()
        if first is None:
            return
        stock = dict(self.base)
        for day in range(first, last + 1):
            merge_into(stock, self.stock.get(day, {}))
            yield day, stock, self.flows.get(day, {})

    def current_figures(self) -> dict[str, Any]:
        """The open day's figures (what the gauges show)."""
        first = self.open_day if self.open_day is not None else self._first_day()
        if first is None:
            return {}
        for _, stock, flows in self.open_days(first):
            return self.expand(stock, flows)
        return {}

    def figures(self) -> dict[str, Any]:
        group = self.current_figures() or empty_group()
        out = {f"active_users_{window}": group[name] for window, name in WINDOWS}
        out["activated_users"] = group["users"]
        for state in LIFECYCLE_STATES:
            out[f"lifecycle_{state}"] = group["lifecycle"][state]
        return out

    def describe(self, key: bytes, state: "UserState") -> dict[str, Any]:
        """Lifecycle state and active days on the partition's current day (the user's newest
        active day, if later), and the user's newest segment values."""
        rec = state.ext.get(SLOT)
        view = self.rules.new_view(rec, state.max_ts) if rec else None
        if view is None or view.n is None:
            return {}
        watermark = self.ctx.watermark.value
        day = view.n if watermark == NO_TIME else max(view.n, self.clock.day(watermark))
        code, last = self.rules.status(view, day)
        label = self.clock.label
        recent = sorted(d for d in view.active_days() if day - d < MAU_DAYS)
        dims = self.shared.dims
        segments = {dim.name: self.codes.name(i, code) for i, (dim, code)
                    in enumerate(zip(dims, newest_codes(view, len(dims)))) if code is not None}
        return {"lifecycle": STATE_NAMES[code] if code else None, "as_of_day": label(day),
                "first_active_day": label(view.f) if view.f is not None else None,
                "last_active_day": label(last) if last is not None else None,
                "active_days_7d": sum(1 for d in recent if day - d < WAU_DAYS), "active_days_30d": len(recent),
                "active_days": [label(d) for d in recent], "segments": segments}

    # --- figures -------------------------------------------------------------------------
    def expand(self, stock: dict[tuple, int], flows: dict[tuple, int]) -> dict[str, Any]:
        """Counts by membership -> the snapshot figures, overall and per segment value."""
        overall = empty_group()
        segments: dict[str, dict[str, dict[str, Any]]] = {dim.name: {} for dim in self.shared.dims}
        names = [dim.name for dim in self.shared.dims]
        name_of = self.codes.name
        for (state, window, labels), count in stock.items():
            groups = [overall, *(_segment(segments[names[i]], name_of(i, code)) for i, code in enumerate(labels))]
            state_name = STATE_NAMES[state]
            for group in groups:
                group["users"] += count
                group["lifecycle"][state_name] += count
                if window >= IN_MAU:
                    group["mau"] += count
                    if window == IN_WAU:
                        group["wau"] += count
        for (code, labels), count in flows.items():
            groups = [overall, *(_segment(segments[names[i]], name_of(i, c)) for i, c in enumerate(labels))]
            name = STATE_NAMES[code]
            for group in groups:
                group["daily"][name] += count
                if code != DORMANT:
                    group["dau"] += count
        if segments:
            overall["segments"] = segments
        return overall


def empty_group() -> dict[str, Any]:
    return {"dau": 0, "wau": 0, "mau": 0, "users": 0, "lifecycle": dict.fromkeys(LIFECYCLE_STATES, 0),
            "daily": dict.fromkeys(LIFECYCLE_STATES, 0)}


def _segment(values: dict[str, dict[str, Any]], name: str) -> dict[str, Any]:
    group = values.get(name)
    if group is None:
        group = values[name] = empty_group()
    return group


def signal_id(user: str, before: str | None, after: str, day: str) -> str:
    """Deterministic: the same change on the same day always has the same id."""
    return hashlib.blake2b(f"lifecycle|{user}|{before}|{after}|{day}".encode(), digest_size=16).hexdigest()


def ratio(part: int, whole: int) -> float | None:
    return part / whole if whole else None


def finish_activity_day(figures: dict[str, Any]) -> dict[str, Any]:
    """Stickiness after summing (a ratio of sums, never a sum of ratios), overall and per segment."""
    def finish(group: dict[str, Any]) -> None:
        group["stickiness"] = {"dau_mau": ratio(group.get("dau", 0), group.get("mau", 0)),
                               "wau_mau": ratio(group.get("wau", 0), group.get("mau", 0))}

    finish(figures)
    for values in figures.get("segments", {}).values():
        for group in values.values():
            finish(group)
    return figures
