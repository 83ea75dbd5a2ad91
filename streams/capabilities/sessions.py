"""Sessions and active time, in event time, one message per closed session.

Definition (see docs/sessions-and-usage.md#sessions-active-time-core-actions-and-feature-usage): take a user's accepted activity events sorted by event time
(ties by event name). A session starts at an event and takes every following event until the gap
since the previous event exceeds the inactivity timeout, or the event is more than the maximum
length after the session's first event; that event starts the next session. Active time is the
sum of the gaps between the session's consecutive events, each capped at the idle threshold.

Why events wait in a buffer: the processor accepts events up to the allowed lateness out of
order. Kafka Streams handles them by extending or merging session windows, which works for
order-free aggregates but not for active time (a late event inside a session splits a gap whose
neighbours are no longer known) nor for the maximum length (a merge can move the cut into a
session whose events are gone). Here each accepted activity event waits in the user's record
until the watermark passes it and is then folded into the session in event-time order. Nothing
older than the watermark is accepted, so folding is final: an in-lateness event inside a session
extends it, one bridging two runs merges them, exactly as Kafka Streams would, and the max-length
cut and active time are exact too. A session is emitted once the watermark passes its last event
plus the timeout (or its start plus the maximum length); every later event is newer than the
watermark, so it can never join an emitted session. The buffer costs nothing in latency: a
session cannot close before the watermark passes its last event anyway. Waiting events are
folded in one go when the oldest one could close a session (its time plus the timeout), when its
day ends (visits must be counted before the day's snapshot is final) or when too many wait, so a
user costs about one timer per session, not one per event.

Per-user record (``state.ext["s"]``, present only while a session is open, events wait, or a
closed session's day is not final yet): ``z`` base time (ms), ``o`` the open session
``[last-z, active_ms, events, entry, exit, feature_mask, {core_action: count}]`` starting at
``z``, ``q`` waiting events ``[ts-z, name (None for heartbeats), core_mask, feature+1]`` sorted
by time (zeros trimmed; a heartbeat that is neither a core action nor a feature is the bare int
``ts-z``: most waiting events are, and they cost neither a list nor its bytes), ``h`` closed
sessions ``[end day, duration_ms, active_ms]`` until their day's ``sessions_day`` snapshot is
final (so a restart rebuilds it exactly).
"""

from __future__ import annotations

import bisect
import hashlib
from typing import TYPE_CHECKING, Any, Iterable, Iterator, Sequence

from prometheus_client.core import GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.utils import floatToGoString

from streams.capabilities.classify import Classifier
from streams.capabilities.daywindows import DayPublisher, start_day
from streams.capabilities.segment_reader import SegmentReader
from streams.config import ACTIVITY_TYPES, METRIC_PREFIX, SESSION_QUEUE_MAX, Settings
from streams.core.calendar import DayClock
from streams.core.capability import Capability, Finisher, PartitionCapability, Shared
from streams.core.eventtime import iso_ms

if TYPE_CHECKING:
    from streams.core.capability import PartitionContext
    from streams.core.contract import Event
    from streams.core.state import UserState

SLOT = "s"
NEVER = 1 << 62
#: Notices to the partition's other capabilities (``on_notice``): a session's first event was
#: folded (payload ``start_ms``); a session was emitted (payload: the session message plus integer
#: ``duration_ms``, ``active_ms`` and ``events``).
SESSION_STARTED = "session_started"
SESSION_CLOSED = "session_closed"
#: A waiting event: ``[rel, name, core_mask, feature + 1]`` (zeros trimmed), or just ``rel`` (an int)
#: for a heartbeat that is neither a core action nor a feature use.
Entry = Any


def session_id(user: str, start_ms: int) -> str:
    """Deterministic: a replay after a crash re-emits the same id for the same session."""
    return hashlib.blake2b(f"{user}|{start_ms}".encode(), digest_size=16).hexdigest()


class Session:
    """An open session, decoded from the record while it is being folded into."""

    __slots__ = ("start", "last", "active", "events", "entry", "exit", "features", "cores")

    def __init__(self, start: int) -> None:
        self.start = start
        self.last = start
        self.active = 0
        self.events = 0
        self.entry: str | None = None
        self.exit: str | None = None
        self.features = 0
        self.cores: dict[int, int] = {}

    @property
    def duration(self) -> int:
        return self.last - self.start

    def note(self, entry: list[Any]) -> None:
        """Take a folded event's name, core actions and feature (a heartbeat has none of them)."""
        name = entry[1]
        if name is not None:
            if self.entry is None:
                self.entry = name
            self.exit = name
        if len(entry) > 3 and entry[3]:
            self.features |= 1 << (entry[3] - 1)
        core_mask = entry[2] if len(entry) > 2 else 0
        while core_mask:
            low = core_mask & -core_mask
            index = low.bit_length() - 1
            self.cores[index] = self.cores.get(index, 0) + 1
            core_mask ^= low

    def encode(self) -> list[Any]:
        return [self.last - self.start, self.active, self.events, self.entry, self.exit,
                self.features, self.cores]

    @classmethod
    def decode(cls, start: int, fields: list[Any]) -> "Session":
        session = cls(start)
        (last, session.active, session.events, session.entry, session.exit, session.features,
         cores) = fields
        session.last = start + last
        session.cores = {int(k): v for k, v in cores.items()}
        return session


class BucketCounts:
    """Histogram bucket counts (not cumulative) and the sum, in integer milliseconds so that
    partition shares add up exactly; bounds are given in seconds."""

    def __init__(self, bounds_s: Sequence[float]) -> None:
        self.bounds = list(bounds_s)
        self._bounds_ms = [round(b * 1000) for b in bounds_s]
        self.counts = [0] * (len(self.bounds) + 1)
        self.sum_ms = 0

    def add(self, ms: int) -> None:
        self.counts[bisect.bisect_left(self._bounds_ms, ms)] += 1
        self.sum_ms += ms

    def merge(self, other: "BucketCounts") -> None:
        self.counts = [a + b for a, b in zip(self.counts, other.counts)]
        self.sum_ms += other.sum_ms

    def cumulative(self) -> dict[str, int]:
        """Cumulative counts by upper bound in seconds (Prometheus ``le``): {"60": n, ..., "+Inf": n}."""
        out, running = {}, 0
        for bound, count in zip([*(f"{b:g}" for b in self.bounds), "+Inf"], self.counts):
            running += count
            out[bound] = running
        return out

    def family(self, name: str, doc: str) -> HistogramMetricFamily:
        bounds = [floatToGoString(b) for b in self.bounds] + ["+Inf"]
        return HistogramMetricFamily(name, doc, buckets=list(zip(bounds, self.cumulative().values())),
                                     sum_value=self.sum_ms / 1000)


def _entry(rel: int, name: str | None, core_mask: int, feature: int) -> Entry:
    if feature:
        return [rel, name, core_mask, feature]
    if core_mask:
        return [rel, name, core_mask]
    if name is None:
        return rel  # a heartbeat (most events): the bare time, no list
    return [rel, name]


def _time(entry: Entry) -> int:
    """A waiting entry's time relative to the slot's base ``z``."""
    return entry if entry.__class__ is int else entry[0]


def _entry_order(entry: Entry) -> tuple[int, str]:
    if entry.__class__ is int:
        return entry, ""
    return entry[0], entry[1] or ""


def _rebased(entries: list[Entry], by: int) -> list[Entry]:
    """Waiting entries with their times moved by ``by`` ms (a new base)."""
    if not by:
        return entries
    return [e + by if e.__class__ is int else [e[0] + by, *e[1:]] for e in entries]


class SessionsPartition(PartitionCapability):
    """Sessionization of one partition's users; emits closed sessions, keeps partition figures."""

    def __init__(self, ctx: "PartitionContext", owner: "Sessions") -> None:
        super().__init__(ctx)
        cfg = owner.settings.sessions
        self.topic = owner.settings.sessions_topic
        self.timeout = cfg.timeout_ms
        self.max_length = cfg.max_length_ms
        self.idle = cfg.idle_ms
        self.heartbeat = cfg.heartbeat_event
        self.classifier = owner.classifier
        self.segments = SegmentReader(ctx)
        self.in_progress = 0
        """Users with an open session or activity waiting for the watermark (rebuilt in restore)."""
        self.pending: dict[bytes, int] = {}
        """Due time of each user's one live timer (timers live in memory; restore re-arms them)."""
        self.duration = BucketCounts(cfg.duration_buckets_s)
        self.active_time = BucketCounts(cfg.active_time_buckets_s)
        self._buckets = (cfg.duration_buckets_s, cfg.active_time_buckets_s)
        self.days: dict[int, SessionDay] = {}
        """Closed sessions by the day of their last event, for days whose snapshot is not final yet
        (rebuilt from ``h``). A day is final once the watermark passes its end plus the timeout:
        every session that ended on it has closed by then."""
        self.clock: DayClock = owner.clock
        self.publisher = DayPublisher(self.clock, ctx.publish_partial, "sessions_day", self.timeout,
                                      self._day_figures, self._day_final, start_day=owner.start_day)

    def describe(self, key: bytes, state: "UserState") -> dict[str, Any]:
        """The open session (folded events) and the events still waiting for the watermark."""
        slot = state.ext.get(SLOT) or {}
        z = slot.get("z", 0)
        open_ = slot.get("o")
        queue = slot.get("q") or []
        out: dict[str, Any] = {"open_session": None if not open_ else {
            "start": iso_ms(z), "last_event": iso_ms(z + open_[0]), "active_time_s": open_[1] / 1000,
            "events": open_[2], "entry": open_[3]}}
        out["waiting_events"] = len(queue)
        if queue:
            out["waiting_since"] = iso_ms(z + _time(queue[0]))
        return out

    # --- timers --------------------------------------------------------------------------
    def _need(self, slot: dict[str, Any]) -> int:
        """When the watermark must next look at this user, the earliest of: fold the waiting
        events (when the oldest could end a session, when its day ends, or when too many wait),
        close the open session, drop closed-session stats of days whose snapshot is final."""
        due = NEVER
        queue = slot.get("q")
        if queue:
            oldest = slot["z"] + _time(queue[0])
            due = oldest + 1 if len(queue) >= SESSION_QUEUE_MAX else \
                min(oldest + self.timeout + 1, self.clock.end(self.clock.day(oldest)))
        open_ = slot.get("o")
        if open_ is not None:
            z = slot["z"]
            close = min(z + open_[0] + self.timeout, z + self.max_length) + 1
            if close < due:
                due = close
        history = slot.get("h")
        if history:
            final = self.clock.end(history[0][0]) + self.timeout
            if final < due:
                due = final
        return due

    def _arm(self, key: bytes, slot: dict[str, Any], need: int | None = None) -> None:
        """Keep exactly one live timer per user, never later than its need (a later need is met by
        moving the timer forward when it fires, an earlier one by a new timer)."""
        if need is None:
            need = self._need(slot)
        current = self.pending.get(key)
        if current is None or need < current:
            self.pending[key] = need
            self.ctx.schedule(need, key, SLOT)

    def restore(self, key: bytes, state: "UserState") -> None:
        self.publisher.resumed = True
        slot = state.ext.get(SLOT)
        if slot is None:
            return
        if "o" in slot or "q" in slot:
            self.in_progress += 1
        for day, duration, active in slot.get("h", ()):
            self._day(day).add(duration, active)
        self._arm(key, slot)

    def on_event(self, key: bytes, state: "UserState", event: "Event") -> None:
        if event.type not in ACTIVITY_TYPES:
            return
        name = event.name or None
        if name == self.heartbeat:
            name = None
        core_mask, feature = self.classifier.classify(event)
        ts = event.ts
        slot = state.ext.get(SLOT)
        if slot is None:
            slot = state.ext[SLOT] = {}
        queue = slot.get("q")
        if queue:
            rel = ts - slot["z"]
            entry = rel if name is None and not core_mask and feature < 0 else \
                _entry(rel, name, core_mask, feature + 1)
            last = queue[-1]
            # The usual case: in time order (ties by name), and the need is unchanged unless the
            # queue is full. Compared without building sort keys: this runs for every event.
            if last.__class__ is int:
                in_order = rel >= last
            else:
                in_order = rel > last[0] or (rel == last[0] and (name or "") >= (last[1] or ""))
            if in_order:
                queue.append(entry)
                if len(queue) == SESSION_QUEUE_MAX:
                    self._arm(key, slot)
                return
            bisect.insort(queue, entry, key=_entry_order)
        else:
            if "z" not in slot:
                slot["z"] = ts
                self.in_progress += 1
            slot["q"] = [_entry(ts - slot["z"], name, core_mask, feature + 1)]
        self._arm(key, slot)

    def on_timer(self, key: bytes, state: "UserState", tag: str, due_ms: int) -> None:
        if self.pending.get(key) != due_ms:
            return  # stale: superseded by an earlier timer
        del self.pending[key]
        slot = state.ext.get(SLOT)
        if slot is None:
            return
        watermark = self.ctx.watermark.value
        need = self._need(slot)
        if need > watermark:  # nothing due yet (the need moved later): move the timer
            self._arm(key, slot, need)
            return
        if "z" in slot:
            self._fold(key, state, slot, watermark)
        history = slot.get("h")
        if history:
            keep = [h for h in history if self.clock.end(h[0]) + self.timeout > watermark]
            if keep:
                slot["h"] = keep
            else:
                del slot["h"]
        self.ctx.mark_dirty(key, state)
        if slot:
            self._arm(key, slot)
        else:
            del state.ext[SLOT]

    # --- folding -------------------------------------------------------------------------
    def _fold(self, key: bytes, state: "UserState", slot: dict[str, Any], watermark: int) -> None:
        """Apply waiting events older than the watermark in time order; close what cannot grow.

        Runs once per waiting event, so the open session's times and count live in locals here
        (written back before the session is closed or stored), and heartbeats skip the rest.
        """
        z = slot["z"]
        open_ = slot.get("o")
        session = Session.decode(z, open_) if open_ is not None else None
        start = last = active = events = gap = 0
        if session is not None:
            start, last, active, events = session.start, session.last, session.active, session.events
        queue = slot.get("q") or []
        timeout, max_length, idle = self.timeout, self.max_length, self.idle
        ready = 0
        for entry in queue:
            heartbeat = entry.__class__ is int
            ts = z + (entry if heartbeat else entry[0])
            if ts >= watermark:
                break
            ready += 1
            if session is not None:
                gap = ts - last
                if gap > timeout or ts - start > max_length:
                    session.last, session.active, session.events = last, active, events
                    self._close(key, state, slot, session)
                    session = None
            if session is None:
                session = Session(ts)
                self.ctx.notify(key, state, SESSION_STARTED, {"start_ms": ts})
                start = last = ts
                active = 0
                events = 1
            else:
                active += gap if gap < idle else idle
                last = ts
                events += 1
            if not heartbeat:
                session.note(entry)
        if session is not None:
            session.last, session.active, session.events = last, active, events
        rest = queue[ready:]
        if session is not None and (watermark > session.last + self.timeout
                                    or watermark > session.start + self.max_length):
            self._close(key, state, slot, session)
            session = None

        if session is not None:
            base = session.start
            slot["o"] = session.encode()
        elif rest:
            base = z + _time(rest[0])
            slot.pop("o", None)
        else:
            for field in ("z", "o", "q"):
                slot.pop(field, None)
            self.in_progress -= 1
            return
        if rest:
            slot["q"] = _rebased(rest, z - base)
        else:
            slot.pop("q", None)
        slot["z"] = base

    def _close(self, key: bytes, state: "UserState", slot: dict[str, Any], session: Session) -> None:
        closed_by = "max_length" if session.last + self.timeout > session.start + self.max_length \
            else "inactivity"
        user = key.decode()
        cores = {self.classifier.core_actions[i].name: n for i, n in sorted(session.cores.items())} \
            if session.cores else {}
        message = {
            "session_id": session_id(user, session.start),
            "user_id": user,
            "account_id": state.account,
            "start": iso_ms(session.start),
            "end": iso_ms(session.last),
            "start_ms": session.start,
            "end_ms": session.last,
            "duration_s": session.duration / 1000,
            "active_time_s": session.active / 1000,
            "event_count": session.events,
            "core_actions": cores,
            "core_action_count": sum(cores.values()),
            "features": self.classifier.feature_names(session.features),
            "entry_event": session.entry,
            "exit_event": session.exit,
            "segments": self.segments.names(state),
            "closed_by": closed_by,
        }
        self.ctx.emit(self.topic, key, message)
        self.duration.add(session.duration)
        self.active_time.add(session.active)
        day = self.clock.day(session.last)
        slot.setdefault("h", []).append([day, session.duration, session.active])
        slot["h"].sort()
        self._day(day).add(session.duration, session.active)
        # The message is serialized by now, so the notice can extend it rather than copy it.
        message.update(duration_ms=session.duration, active_ms=session.active, events=session.events)
        self.ctx.notify(key, state, SESSION_CLOSED, message)

    # --- day snapshots -------------------------------------------------------------------
    def _day(self, day: int) -> "SessionDay":
        stats = self.days.get(day)
        if stats is None:
            stats = self.days[day] = SessionDay(*self._buckets)
        return stats

    def _day_figures(self, day: int) -> dict[str, Any]:
        stats = self.days.get(day) or SessionDay(*self._buckets)
        return stats.figures()

    def _day_final(self, day: int) -> None:
        for old in [d for d in self.days if d <= day]:  # older ones: rebuilt from records, published before
            del self.days[old]

    def on_watermark(self, watermark_ms: int) -> None:
        self.publisher.advance(watermark_ms)

    def figures(self) -> dict[str, Any]:
        return {"sessions_in_progress": self.in_progress}


class SessionDay:
    """Closed sessions that ended (last event) on one day: count, time sums and histograms (additive)."""

    __slots__ = ("sessions", "duration", "active")

    def __init__(self, duration_bounds: Sequence[float], active_bounds: Sequence[float]) -> None:
        self.sessions = 0
        self.duration = BucketCounts(duration_bounds)
        self.active = BucketCounts(active_bounds)

    def add(self, duration_ms: int, active_ms: int) -> None:
        self.sessions += 1
        self.duration.add(duration_ms)
        self.active.add(active_ms)

    def figures(self) -> dict[str, Any]:
        return {"sessions": self.sessions,
                "duration_ms_sum": self.duration.sum_ms, "active_time_ms_sum": self.active.sum_ms,
                "duration_seconds_buckets": self.duration.cumulative(),
                "active_time_seconds_buckets": self.active.cumulative()}


def finish_sessions_day(figures: dict[str, Any]) -> dict[str, Any]:
    """Averages after summing the partitions (a ratio of sums)."""
    sessions = figures.get("sessions", 0)
    for name in ("duration", "active_time"):
        figures[f"{name}_seconds_avg"] = figures.get(f"{name}_ms_sum", 0) / 1000 / sessions if sessions else None
    return figures


class Sessions(Capability):
    """The sessions capability: one :class:`SessionsPartition` per assigned partition."""

    name = "sessions"
    slot = SLOT

    def __init__(self, settings: Settings, shared: Shared | None = None) -> None:
        super().__init__(settings, shared or Shared())
        self.classifier = self.shared.get(Classifier, lambda: Classifier(settings.usage))
        self.clock = DayClock(settings.activity.timezone)
        self.start_day = start_day(settings, self.clock)
        self._instances: list[SessionsPartition] = []
        self._retired_duration = BucketCounts(settings.sessions.duration_buckets_s)
        self._retired_active = BucketCounts(settings.sessions.active_time_buckets_s)

    def finishers(self) -> dict[str, Finisher]:
        return {"sessions_day": finish_sessions_day}

    def settle_ms(self) -> int:
        """A session ending on a day closes a timeout after its last event."""
        return self.settings.sessions.timeout_ms

    def for_partition(self, ctx: "PartitionContext") -> SessionsPartition:
        # A partition assigned again replaces its old instance: at most one kept per partition.
        self._retire([p for p in self._instances if p.ctx.partition != ctx.partition])
        part = SessionsPartition(ctx, self)
        self._instances.append(part)
        return part

    def _retire(self, live: Sequence[SessionsPartition]) -> None:
        """Keep the histogram counts of partitions handed over, so this worker's counters never go
        down (Prometheus would read a drop as a restart)."""
        current = {id(p) for p in live}
        for part in [p for p in self._instances if id(p) not in current]:
            self._retired_duration.merge(part.duration)
            self._retired_active.merge(part.active_time)
            self._instances.remove(part)

    def collect(self, parts: Sequence[PartitionCapability]) -> Iterable[Metric]:
        live = [p for p in parts if isinstance(p, SessionsPartition)]
        self._retire(live)
        return self._families(live)

    def _families(self, live: list[SessionsPartition]) -> Iterator[Metric]:
        p = METRIC_PREFIX
        yield GaugeMetricFamily(f"{p}_sessions_open", "Sessions in progress: users with an open session "
                                "or activity waiting for the watermark (owned partitions).",
                                value=sum(x.in_progress for x in live))
        duration = BucketCounts(self.settings.sessions.duration_buckets_s)
        active = BucketCounts(self.settings.sessions.active_time_buckets_s)
        duration.merge(self._retired_duration)
        active.merge(self._retired_active)
        for part in live:
            duration.merge(part.duration)
            active.merge(part.active_time)
        yield duration.family(f"{p}_session_duration_seconds",
                              "Duration of closed sessions (first to last event) emitted by this worker.")
        yield active.family(f"{p}_session_active_time_seconds",
                            "Active time of closed sessions (gaps capped at the idle threshold).")
