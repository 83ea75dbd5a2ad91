"""Everything one partition does to a message, from raw bytes to applied state.

A partition reads two inputs: its partition of the events topic (``process``) and its partition
of the internal re-key topic (``process_rekeyed``, see :mod:`streams.core.rekey`). Each message of
the events topic ends in exactly one outcome (see ``config.OUTCOMES``), judged where it is read:

* ``dead_letter``: rejected by the contract (or stamped more than ``max_ahead_s`` ahead of what the
  partition's users agree on: reason ``ahead``); written to the dead-letter topic with the reason.
* ``late``: older than this partition's source watermark (:mod:`streams.core.sourceclock`);
  written to the dead-letter topic as ``late``.
* ``rekeyed``: on time, but its user lives in another partition; forwarded there on the re-key
  topic (never behind that partition's own backlog), applied there.
* ``duplicate``: already applied (a redelivery after a crash, or a retry with the same event_id).
* ``applied``: the user's record and every capability saw it (or will, see *lookahead*).

A forwarded event ends at its home partition as ``applied`` or ``duplicate`` (or ``late``, only
when its source partition had been idle and the home's watermark moved on without it).

Event time. The partition's watermark, the one the capabilities see, is the minimum over its
inputs (:mod:`streams.core.eventtime`). Capabilities are promised that an event reaches them no
more than the *lookahead* (allowed lateness + ``max_partition_skew_s``) ahead of that watermark:
what they keep per user (a day bitmap, five weeks of usage) is sized by it. An accepted event
further ahead (a device clock running ahead, a partition far ahead of another, the first events
after a quiet spell) is *parked* in its user's record and applied when the watermark comes within
the lookahead of it, before any timer that needs it fires. So a capability's outputs at any
watermark depend on the events up to it alone, in whatever order and however fast the inputs
were read.

Effectively once (see docs/architecture.md#delivery-effectively-once): a redelivered message of the
events topic is recognised by the user's newest applied offset, a forwarded one (after a crash of
either partition) by the newest source offset taken from its source, and a retry (a new message
with an event_id applied before) by the fingerprints every user record keeps of the event ids
applied within the de-duplication horizon: everything whose time is not older than the watermark
minus the allowed lateness. Anything older cannot be applied again anyway (it would be late), so
this catches every repeat, however many events a user sends, and costs nothing for users whose
last events are older.

The processor is synchronous and knows nothing of Faust, so it can be unit-tested with an
in-memory table and sink; :mod:`streams.runtime.partitions` drives it from the Faust agent.
"""

from __future__ import annotations

import hashlib
import heapq
import logging
import time
from typing import Any, Callable, Iterable

from streams.config import MARKER_STEP_MS, RESERVED_KEY_PREFIX, SOURCE_SNAPSHOTS, WATERMARK_NOTIFY_STEP_MS, Settings
from streams.core import rekey
from streams.core.calendar import DayClock
from streams.core.capability import Capability, PartitionCapability, PartitionContext, Sink
from streams.core.contract import Decoder, Event, Rejection
from streams.core.deadletter import dead_letter
from streams.core.eventtime import NO_TIME, Inputs, Watermark
from streams.core.routing import HomePartitions
from streams.core.sourceclock import SourceClock, evidence_id
from streams.core.state import FINGERPRINT_BYTES, UserState
from streams.core.timers import Timers
from streams.core.userstore import UserStore

log = logging.getLogger(__name__)
CLOSE_KEY = rekey.CLOSE_KEY
#: What a partition knows of another one's source watermark without a marker: (watermark, idle),
#: None when it must wait for the next marker (see ``Runtime.fresh_input``).
FreshInput = Callable[["PartitionProcessor", int], "tuple[int, bool] | None"]


def fingerprint(event_id: str) -> bytes:
    """A stable 64-bit digest of an event id (Python's ``hash`` changes between processes)."""
    return hashlib.blake2b(event_id.encode(), digest_size=FINGERPRINT_BYTES).digest()


def clock_key(partition: int) -> bytes:
    """The partition's event-time record in the state table (a reserved key: never a user id)."""
    return RESERVED_KEY_PREFIX + b"clock:%d" % partition


def settle_of(capabilities: Iterable[Capability]) -> int:
    """How long after a day's end every capability's outputs for it are final (the largest)."""
    return max([getattr(cap, "settle_ms", lambda: 0)() for cap in capabilities] or [0])


def _no_fresh(home: "PartitionProcessor", source: int) -> None:
    return None


class PartitionProcessor:
    """Ingest, de-duplication, event time and capabilities for one partition."""

    def __init__(self, partition: int, settings: Settings, store: UserStore, sink: Sink,
                 capabilities: Iterable[Capability], decoder: Decoder, home: HomePartitions,
                 count: Callable[[str, str | None], None], fresh: FreshInput = _no_fresh,
                 slice_s: float | None = None) -> None:
        capabilities = list(capabilities)
        self.partition = partition
        self.slice_s = slice_s
        """Longest time one call fires timers for (None: no limit; see :meth:`_advance`)."""
        self.settings = settings
        self.store = store
        self.sink = sink
        self.decoder = decoder
        self.home = home
        self.count = count
        self.fresh = fresh
        self.rekey_topic = settings.rekey_topic
        self.lookahead = settings.lookahead_ms
        self.max_ahead = settings.max_ahead_ms
        self.source = SourceClock(settings.allowed_lateness_ms, settings.idle_partition_ms)
        """This partition's source watermark: judges the events read from the events topic."""
        self.watermark = Watermark()
        """The partition's watermark (the minimum over its inputs): what the capabilities see."""
        self.inputs = Inputs(partition, settings.partitions)
        self.progress: dict[int, int] = {}
        """Source partition -> the newest source offset of a forwarded event taken from it."""
        self.parked: list[tuple[int, bytes]] = []
        """(when to apply, user): users whose records hold parked events, by the earliest."""
        self.snapshots: list[list[Any]] = []
        """The source clock at the last flushes (oldest first), to resume exactly where Kafka does."""
        self.paused = False
        """Reading the events topic is held back (set by the runtime: the partition runs ahead)."""
        self.key = clock_key(partition)
        store.write_last(self.key)
        self.days = DayClock(settings.activity.timezone)
        self.settle_ms = settle_of(capabilities)
        self.timers = Timers()
        self.capabilities: list[PartitionCapability] = []
        for index, cap in enumerate(capabilities):
            ctx = PartitionContext(partition, settings, store, sink, self.watermark, self.timers, index,
                                   self.capabilities)
            self.capabilities.append(cap.for_partition(ctx))
        self.users = 0
        self.events = 0
        self._notified = NO_TIME
        self._marked = NO_TIME
        self._marked_idle = False
        self._pick_snapshot = False
        self._dropped_snapshots = False
        self._saved: dict[str, Any] | None = None
        self._target = NO_TIME
        """Where the watermark is going (it gets there once the backlog is done)."""
        self._force_notify = False
        self.backlog = False
        """Due timers or parked events not taken yet (sliced work for :meth:`work`)."""

    # --- recovery -------------------------------------------------------------------------
    def restore(self, wall_ms: float) -> int:
        """Rebuild the event-time state from the partition's record, then the partition figures,
        timers and parked events from the recovered user records."""
        record = self.store.get(self.partition, self.key)
        saved = record.ext.get("k") if record is not None else None
        if saved:
            self._saved = saved
            self.watermark.value, self.watermark.max_ts = saved["c"], saved["x"]
            self.inputs.restore(saved["m"])
            self.progress = {int(source): offset for source, offset in saved["g"].items()}
            self.snapshots, self._dropped_snapshots = saved["s"], saved["d"]
            if self.snapshots:
                self.source.restore(self.snapshots[-1])
                self._pick_snapshot = True
        self.source.touch(wall_ms)
        for key, state in self.store.items(self.partition):
            for ts, _ in state.parked:
                heapq.heappush(self.parked, (ts - self.lookahead, key))
            if not state.events:
                continue  # only parked events yet: no capability has seen this user
            self.users += 1
            self.events += state.events
            for cap in self.capabilities:
                cap.restore(key, state)
        self._advance(self.watermark.value, force=True)
        return self.users

    def _resume_at(self, offset: int) -> None:
        """The first message read after a restart: judge from the source clock as it was when
        the offset Kafka resumes from was committed (flushes run just before commits). Before the
        oldest flush kept, nothing was ever committed when no flush was dropped yet: a fresh clock."""
        self._pick_snapshot = False
        kept = [snap for snap in self.snapshots if snap[0] <= offset]
        if kept:
            chosen = kept[-1]
        elif not self._dropped_snapshots:
            self.snapshots = []
            self.source = SourceClock(self.settings.allowed_lateness_ms, self.settings.idle_partition_ms)
            return
        else:
            chosen = self.snapshots[0]
        if chosen[0] != offset:
            log.warning("partition %d resumes at offset %d, its event-time record is of offset %d: "
                        "lateness of the first messages may be judged differently", self.partition,
                        offset, chosen[0])
        self.snapshots = kept or [chosen]
        self.source.restore(chosen)

    def checkpoint(self, committed: list[Any] | None = None) -> None:
        """Record the event-time state with the users' records (written after them, so whenever
        it is recovered, so are they); called at every flush, i.e. before every offset commit.
        ``committed``: the source clock at the offset the commit stops at, when messages after it
        were handled but are not acknowledged yet (default: as it is now)."""
        snap = committed if committed is not None else self.source.snapshot()
        snapshots = [s for s in self.snapshots if s[0] != snap[0]] + [snap]
        self._dropped_snapshots = self._dropped_snapshots or len(snapshots) > SOURCE_SNAPSHOTS
        self.snapshots = snapshots[-SOURCE_SNAPSHOTS:]
        horizon = self.watermark.value - self.settings.allowed_lateness_ms
        for state in self.store.dirty_states(self.partition):
            state.forget_before(horizon)
        saved = {"c": self.watermark.value, "x": self.watermark.max_ts, "m": self.inputs.state(),
                 "g": {str(s): o for s, o in self.progress.items()}, "s": self.snapshots,
                 "d": self._dropped_snapshots}
        if saved != self._saved:
            self._saved = saved
            record = self.store.get(self.partition, self.key) or UserState()
            record.ext["k"] = saved
            self.store.mark_dirty(self.partition, self.key, record)

    # --- the events topic -----------------------------------------------------------------
    def process(self, key: bytes | None, raw: bytes | None, offset: int, received_ms: int,
                wall_ms: float) -> str:
        """Judge one message of the events topic; returns its outcome (``closed`` for a close record)."""
        if self.backlog:  # every timer due before this message fires first (the runtime drains it)
            self.work()
        source = self.source
        if self._pick_snapshot:
            self._resume_at(offset)
        source.read(offset, wall_ms)
        if key == CLOSE_KEY:
            return self._close(raw, offset, received_ms)
        event = self.decoder.decode(raw, received_ms)
        if event.__class__ is Rejection:
            self._dead_letter(event.reason, event.message, raw, key, self.partition, offset, received_ms)
            return "dead_letter"
        assert isinstance(event, Event)
        ts = event.ts
        if ts < source.value:
            self._late(ts, source.value, raw, key, self.partition, offset, received_ms)
            return "late"
        user_key = event.user.encode()
        moved = source.observe(evidence_id(user_key), ts)
        ahead = source.ahead(ts)
        if ahead > self.max_ahead:
            self._dead_letter("ahead", f"event time {ts} is {ahead / 86_400_000:.1f} days ahead of what this "
                              f"partition's recent events agree on; the limit is max_ahead_s = "
                              f"{self.max_ahead // 1000}", raw, key, self.partition, offset, received_ms)
            outcome = "dead_letter"
        else:
            if ahead > self.settings.allowed_lateness_ms:
                self.count("ahead", None)
            home = self.home(user_key)
            if home != self.partition:
                self.source.forwarded[home] = offset
                self.sink.send(self.rekey_topic, user_key, rekey.forwarded(self.partition, offset, ts, received_ms,
                                                                           raw), home)  # type: ignore[arg-type]
                outcome = "rekeyed"
            else:
                outcome = self._accept(user_key, event, raw, offset, (key, self.partition, offset, received_ms))  # type: ignore[arg-type]
        if moved:
            self.refresh()
        return outcome

    def _close(self, raw: bytes | None, offset: int, received_ms: int) -> str:
        through = rekey.close_through(raw)
        if through is None:
            self._dead_letter("schema", "close record without an integer close_through_ms", raw, CLOSE_KEY,
                              self.partition, offset, received_ms)
            return "dead_letter"
        if self.source.close(self.close_watermark(through)):
            self.refresh()
        self.send_marker(force=True)
        return "closed"

    def close_watermark(self, through_ms: int) -> int:
        """The watermark at which everything up to the day of ``through_ms`` is final: the end of
        that day plus the longest time any capability's outputs of a day can still change."""
        return self.days.end(self.days.day(through_ms)) + self.settle_ms

    # --- the re-key topic -----------------------------------------------------------------
    def process_rekeyed(self, key: bytes | None, value: bytes | None, offset: int) -> str | None:
        """Take one record of the re-key topic: a forwarded event's outcome, None for a marker."""
        if self.backlog:
            self.work()
        record = rekey.parse(value or b"")
        if record is None:
            return None
        if isinstance(record, rekey.Mark):
            if self.inputs.mark(record.source, record.watermark, record.idle):
                self.refresh()
            return None
        source, source_offset = record.source, record.offset
        if source_offset <= self.progress.get(source, -1):
            return "duplicate"  # forwarded again after a crash of its source, or re-read after ours
        self.progress[source] = source_offset
        event = self.decoder.rebuild(record.raw, record.ts)
        return self._accept(event.user.encode(), event, record.raw, None, (key, source, source_offset, record.received_ms))

    # --- applying -------------------------------------------------------------------------
    def _accept(self, user_key: bytes, event: Event, raw: bytes, offset: int | None,
                origin: tuple[bytes | None, int, int, int]) -> str:
        """Take an event its source judged on time for its user (``offset``: its offset on this
        partition of the events topic, None for a forwarded one; ``origin``: key, partition,
        offset and Kafka timestamp where it was read): apply it, or park it when it is further
        ahead of the watermark than the capabilities are promised.

        It is late here only when older than this partition's watermark, which happens only after
        its source turned idle and the watermark moved on without it (the wall clock decided)."""
        store = self.store
        state = store.get(self.partition, user_key)
        fp = fingerprint(event.event_id)
        if state is None:
            state = UserState()
        elif (offset is not None and offset <= state.last_offset) or fp in state.recent:
            return "duplicate"
        if event.ts < self.watermark.value:
            key, partition, source_offset, received_ms = origin
            self._late(event.ts, self.watermark.value, raw, key, partition, source_offset, received_ms,
                       f" (read on partition {partition} after it had been idle)")
            return "late"
        if offset is not None:
            state.last_offset = offset
        state.remember(fp, event.ts)
        if event.ts - self.watermark.value > self.lookahead:
            state.parked.append([event.ts, raw])
            heapq.heappush(self.parked, (event.ts - self.lookahead, user_key))
        else:
            self._apply(user_key, state, event)
        store.mark_dirty(self.partition, user_key, state)
        return "applied"

    def _apply(self, user_key: bytes, state: UserState, event: Event) -> None:
        """Every capability sees the event, then the core fields take it."""
        ts = event.ts
        if state.events == 0:
            state.first_ts = ts
            self.users += 1
        for cap in self.capabilities:
            cap.on_event(user_key, state, event)
        state.events += 1
        if ts > state.max_ts:
            state.max_ts = ts
        if ts < state.first_ts:
            state.first_ts = ts
        if event.account:
            state.account = event.account
        self.events += 1
        if ts > self.watermark.max_ts:
            self.watermark.max_ts = ts

    def _unpark(self, user_key: bytes) -> None:
        """Apply the user's parked events the watermark has come within reach of, oldest first."""
        state = self.store.get(self.partition, user_key)
        if state is None or not state.parked:
            return
        reach = self.watermark.value + self.lookahead
        due = sorted((p for p in state.parked if p[0] <= reach), key=lambda p: p[0])
        if not due:
            return
        state.parked = [p for p in state.parked if p[0] > reach]
        for ts, raw in due:
            self._apply(user_key, state, self.decoder.rebuild(raw, ts))
        self.store.mark_dirty(self.partition, user_key, state)

    def _late(self, ts: int, watermark: int, raw: bytes | None, key: bytes | None, partition: int, offset: int,
              received_ms: int, why: str = "") -> None:
        self._dead_letter("late", f"event time {ts} is older than the watermark {watermark} (allowed lateness "
                          f"{self.settings.allowed_lateness_s:g}s){why}", raw, key, partition, offset, received_ms)

    def _dead_letter(self, reason: str, message: str, raw: bytes | None, key: bytes | None, partition: int,
                     offset: int, received_ms: int) -> None:
        record = dead_letter(reason, message, raw, key, self.settings.events_topic, partition,
                             offset, received_ms, self.settings.dead_letter_payload_bytes)
        self.sink.send(self.settings.dead_letter_topic, key, record)
        self.count("dead_letter_reason", reason)

    # --- event time -----------------------------------------------------------------------
    def send_marker(self, force: bool = False) -> None:
        """Tell every other partition where this partition's source watermark is (after the events
        it forwarded so far): when it moved by ``MARKER_STEP_MS`` since the last marker, when the
        partition became idle or busy again, or when ``force``d (a close record)."""
        source = self.source
        if not force and source.idle == self._marked_idle and source.value - self._marked < MARKER_STEP_MS:
            return
        self._marked, self._marked_idle = source.value, source.idle
        value = rekey.mark(self.partition, source.value, source.idle)
        for target in range(self.settings.partitions):
            if target != self.partition:
                self.sink.send(self.rekey_topic, None, value, target)

    def tick(self, wall_ms: float) -> None:
        """Let the wall clock declare a quiet partition idle (and advance it, see
        :mod:`streams.core.sourceclock`), then tell the others."""
        if self.source.idle_check(wall_ms, self.paused):
            self.refresh()
        self.send_marker()

    def refresh(self) -> None:
        """Recompute the minimum over the inputs (an input moved); act when the watermark rose.

        Another partition's input is its latest marker, or its source watermark as it is now when
        the runtime can vouch that nothing it sent here is still in flight (``fresh``)."""
        inputs, own = self.inputs, self.partition
        lowest = quiet = None
        for source in range(len(inputs.marks)):
            if source == own:
                value, idle = self.source.value, self.source.idle
            else:
                fresh = self.fresh(self, source)
                value, idle = fresh if fresh is not None else (inputs.marks[source], inputs.idle[source])
            if idle:
                if value != NO_TIME:  # an input that never had an event has no time to wait for
                    quiet = value if quiet is None else min(quiet, value)
            elif lowest is None or value < lowest:
                lowest = value
        combined = lowest if lowest is not None else quiet
        if combined is not None and combined > max(self.watermark.value, self._target):
            self._advance(combined)

    def _advance(self, target: int, force: bool = False) -> None:
        """Move the watermark to ``target``: in steps, each at the next of a parked event coming
        within reach, a timer falling due, the target; at each step the parked events within reach
        are applied, then the due timers fire, in due order; every capability hears where the
        watermark is at each step (in steps of at least ``WATERMARK_NOTIFY_STEP_MS``) and at the end.

        With a time slice (``slice_s``) the processor does what fits in it and keeps the rest as
        :attr:`backlog` for :meth:`work`, which the runtime calls on the next turns of the event
        loop (a day's close can hold a timer for each of a million users); all of it is done before
        the next message is taken, sliced or not. ``on_watermark`` runs once the target is
        reached, when the watermark has moved at least ``WATERMARK_NOTIFY_STEP_MS`` since the last
        call: in a busy partition the watermark moves by milliseconds with nearly every event, and
        capabilities only act on coarse boundaries (a day's end, a snapshot interval). The step
        depends on event time only, so replays see the same calls.
        """
        self._target = max(self._target, target)
        self._force_notify = self._force_notify or force
        self.backlog = True
        self.work(None if force or self.slice_s is None else time.perf_counter() + self.slice_s)

    def work(self, deadline: float | None = None) -> bool:
        """Continue towards the target until ``deadline`` (``time.perf_counter()``; None: all the
        way), then notify the capabilities; True while a backlog remains."""
        if not self.backlog:
            return False
        parked, timers, watermark, target = self.parked, self.timers, self.watermark, self._target
        get, caps, partition = self.store.get, self.capabilities, self.partition
        fired = 0
        while True:
            step = target
            if parked and parked[0][0] < step:
                step = max(watermark.value, parked[0][0])
            due = timers.next_due()
            if due is not None and due < step:
                step = max(watermark.value, due)
            watermark.value = step
            while parked and parked[0][0] <= step:
                self._unpark(heapq.heappop(parked)[1])
            while True:
                timer = timers.pop(step)
                if timer is None:
                    break
                due_ms, key, owner, tag = timer
                state = get(partition, key)
                if state is not None:
                    caps[owner].on_timer(key, state, tag, due_ms)
                fired += 1
                if deadline is not None and not fired & 15 and time.perf_counter() >= deadline:
                    return True
            if step >= target:
                break
            if step - self._notified >= WATERMARK_NOTIFY_STEP_MS:
                self._notify(step)  # days the watermark passes close before what comes after them
        self.backlog = False
        if self._force_notify or target - self._notified >= WATERMARK_NOTIFY_STEP_MS:
            self._notify(target)
        return False

    def _notify(self, watermark: int) -> None:
        self._force_notify = False
        self._notified = watermark
        for cap in self.capabilities:
            cap.on_watermark(watermark)

    def figures(self) -> dict[str, Any]:
        """Partition figures: the core counts plus every capability's, all additive."""
        out: dict[str, Any] = {"users": self.users, "events": self.events,
                               "watermark_ms": self.watermark.value, "max_event_ms": self.watermark.max_ts}
        for cap in self.capabilities:
            out.update(cap.figures())
        return out

    def clock(self) -> dict[str, Any]:
        """The partition's event-time state, for the worker's ``/figures`` page."""
        return {"watermark_ms": self.watermark.value, "source_watermark_ms": self.source.value,
                "idle": self.source.idle, "paused": self.paused, "closed": self.source.closed,
                "parked_users": len(self.parked),
                "inputs": [{"watermark_ms": mark, "idle": idle}  # as this partition last heard of them
                           for mark, idle in zip(self.inputs.marks, self.inputs.idle)]}
