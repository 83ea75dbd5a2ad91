"""Everything one partition does to a message, from raw bytes to applied state.

A partition reads two inputs: its partition of the events topic (``process``) and its partition
of the internal re-key topic (``process_rekeyed``, see :mod:`streams.core.rekey`). Each message of
the events topic ends in exactly one outcome (see ``config.OUTCOMES``), judged where it is read:

* ``dead_letter``: rejected by the contract; written to the dead-letter topic with the reason.
* ``late``: older than this partition's source watermark (:mod:`streams.core.sourceclock`);
  written to the dead-letter topic as ``late``.
* ``rekeyed``: on time, but its user lives in another partition; forwarded there on the re-key
  topic (never behind that partition's own backlog), applied there.
* ``duplicate``: already applied (a redelivery after a crash, or a retry with the same event_id).
* ``applied``: the user's record and every capability saw it.

A forwarded event ends at its home partition as ``applied`` or ``duplicate`` (or ``late``, only
when its source partition had been idle and the home's watermark moved on without it).

The partition's watermark, the one the capabilities see, is the minimum over its inputs
(:mod:`streams.core.eventtime`); timers fire and capabilities hear of it as it moves.

Effectively once (see docs/architecture.md#delivery-effectively-once): a redelivered message of the
events topic is recognised by the user's newest applied offset, a forwarded one (after a crash of
either partition) by the newest source offset applied from its source, and a retry (a new message
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
import logging
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


def fingerprint(event_id: str) -> bytes:
    """A stable 64-bit digest of an event id (Python's ``hash`` changes between processes)."""
    return hashlib.blake2b(event_id.encode(), digest_size=FINGERPRINT_BYTES).digest()


def clock_key(partition: int) -> bytes:
    """The partition's event-time record in the state table (a reserved key: never a user id)."""
    return RESERVED_KEY_PREFIX + b"clock:%d" % partition


def settle_of(capabilities: Iterable[Capability]) -> int:
    """How long after a day's end every capability's outputs for it are final (the largest)."""
    return max([getattr(cap, "settle_ms", lambda: 0)() for cap in capabilities] or [0])


class PartitionProcessor:
    """Ingest, de-duplication, event time and capabilities for one partition."""

    def __init__(self, partition: int, settings: Settings, store: UserStore, sink: Sink,
                 capabilities: Iterable[Capability], decoder: Decoder, home: HomePartitions,
                 count: Callable[[str, str | None], None]) -> None:
        capabilities = list(capabilities)
        self.partition = partition
        self.settings = settings
        self.store = store
        self.sink = sink
        self.decoder = decoder
        self.home = home
        self.count = count
        self.rekey_topic = settings.rekey_topic
        self.source = SourceClock(settings.allowed_lateness_ms, settings.idle_partition_ms)
        """This partition's source watermark: judges the events read from the events topic."""
        self.watermark = Watermark()
        """The partition's watermark (the minimum over its inputs): what the capabilities see."""
        self.inputs = Inputs(partition, settings.partitions)
        self.progress: dict[int, int] = {}
        """Source partition -> the newest source offset of a forwarded event taken from it."""
        self.snapshots: list[list[Any]] = []
        """The source clock at the last flushes (oldest first), to resume exactly where Kafka does."""
        self.paused = False
        """Reading the events topic is paused (set by the runtime: the partition runs ahead)."""
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

    # --- recovery -------------------------------------------------------------------------
    def restore(self, wall_ms: float) -> int:
        """Rebuild the event-time state from the partition's record, then the partition figures
        and timers from the recovered user records."""
        record = self.store.get(self.partition, self.key)
        saved = record.ext.get("k") if record is not None else None
        if saved:
            self.watermark.value, self.watermark.max_ts = saved["c"], saved["x"]
            self.inputs.restore(saved["m"])
            self.progress = {int(source): offset for source, offset in saved["g"].items()}
            self.snapshots = saved["s"]
            self._dropped_snapshots = saved["d"]
            if self.snapshots:
                self.source.restore(self.snapshots[-1])
                self._pick_snapshot = True
        self.source.touch(wall_ms)
        for key, state in self.store.items(self.partition):
            self.users += 1
            self.events += state.events
            for cap in self.capabilities:
                cap.restore(key, state)
        self._advance(force=True)
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
        self.snapshots = kept or [chosen]
        if chosen[0] != offset:
            log.warning("partition %d resumes at offset %d, its event-time record is of offset %d: "
                        "lateness of the first messages may be judged differently", self.partition,
                        offset, chosen[0])
        self.source.restore(chosen)

    def checkpoint(self) -> None:
        """Record the event-time state with the users' records (written after them, so whenever
        it is recovered, so are they); called at every flush, i.e. before every offset commit."""
        snap = self.source.snapshot()
        snapshots = [s for s in self.snapshots if s[0] != snap[0]] + [snap]
        self._dropped_snapshots = self._dropped_snapshots or len(snapshots) > SOURCE_SNAPSHOTS
        self.snapshots = snapshots[-SOURCE_SNAPSHOTS:]
        horizon = self.watermark.value - self.settings.allowed_lateness_ms
        for state in self.store.dirty_states(self.partition):
            state.forget_before(horizon)
        saved = {"c": self.watermark.value, "x": self.watermark.max_ts, "m": self.inputs.state(),
                 "g": {str(s): o for s, o in self.progress.items()}, "s": self.snapshots,
                 "d": self._dropped_snapshots}
        record = self.store.get(self.partition, self.key) or UserState()
        if record.ext.get("k") != saved:
            record.ext["k"] = saved
            self.store.mark_dirty(self.partition, self.key, record)

    # --- the events topic -----------------------------------------------------------------
    def process(self, key: bytes | None, raw: bytes | None, offset: int, received_ms: int,
                wall_ms: float) -> str:
        """Judge one message of the events topic; returns its outcome (``closed`` for a close record)."""
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
        if source.ahead(ts):
            self.count("ahead", None)
        moved = source.observe(evidence_id(user_key), ts)
        home = self.home(user_key)
        if home != self.partition:
            self.sink.send(self.rekey_topic, user_key,
                           rekey.forwarded(self.partition, offset, ts, received_ms, raw), home)  # type: ignore[arg-type]
            outcome = "rekeyed"
        else:
            outcome = self._apply(user_key, event, offset)
        if moved:
            self._moved()
        return outcome

    def _close(self, raw: bytes | None, offset: int, received_ms: int) -> str:
        through = rekey.close_through(raw)
        if through is None:
            self._dead_letter("schema", "close record without an integer close_through_ms", raw, CLOSE_KEY,
                              self.partition, offset, received_ms)
            return "dead_letter"
        if self.source.close(self.close_watermark(through)):
            self._moved()
        self.send_marker(force=True)
        return "closed"

    def close_watermark(self, through_ms: int) -> int:
        """The watermark at which everything up to the day of ``through_ms`` is final: the end of
        that day plus the longest time any capability's outputs of a day can still change."""
        return self.days.end(self.days.day(through_ms)) + self.settle_ms

    # --- the re-key topic -----------------------------------------------------------------
    def process_rekeyed(self, key: bytes | None, value: bytes | None, offset: int) -> str | None:
        """Take one record of the re-key topic: a forwarded event's outcome, None for a marker."""
        record = rekey.parse(value or b"")
        if record is None:
            return None
        if isinstance(record, rekey.Mark):
            if self.inputs.mark(record.source, record.watermark, record.idle):
                self._moved()
            return None
        source, source_offset = record.source, record.offset
        if source_offset <= self.progress.get(source, -1):
            return "duplicate"  # forwarded again after a crash of its source, or re-read after ours
        self.progress[source] = source_offset
        if record.ts < self.watermark.value:
            self._late(record.ts, self.watermark.value, record.raw, key, source, source_offset, record.received_ms,
                       f" (forwarded from partition {source}, which had been idle)")
            return "late"
        event = self.decoder.rebuild(record.raw, record.ts)
        return self._apply(event.user.encode(), event, None)

    # --- applying -------------------------------------------------------------------------
    def _apply(self, user_key: bytes, event: Event, offset: int | None) -> str:
        """Apply an on-time event to its user (``offset``: its offset on this partition of the
        events topic, None for a forwarded one)."""
        store = self.store
        state = store.get(self.partition, user_key)
        fp = fingerprint(event.event_id)
        if state is not None and ((offset is not None and offset <= state.last_offset) or fp in state.recent):
            return "duplicate"
        if state is None:
            state = UserState()
            state.first_ts = event.ts
            self.users += 1
        for cap in self.capabilities:
            cap.on_event(user_key, state, event)
        if offset is not None:
            state.last_offset = offset
        state.events += 1
        ts = event.ts
        if ts > state.max_ts:
            state.max_ts = ts
        if ts < state.first_ts:
            state.first_ts = ts
        if event.account:
            state.account = event.account
        state.remember(fp, ts)
        store.mark_dirty(self.partition, user_key, state)
        self.events += 1
        if ts > self.watermark.max_ts:
            self.watermark.max_ts = ts
        return "applied"

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
            self._moved()
        self.send_marker()

    def _moved(self) -> None:
        """An input moved: recompute the minimum over the inputs; act when the watermark rose."""
        combined = self.inputs.combined(self.source.value, self.source.idle)
        if combined > self.watermark.value:
            self.watermark.value = combined
            self._advance()

    def _advance(self, force: bool = False) -> None:
        """Fire due timers, then tell every capability where the watermark is.

        Timers fire exactly. ``on_watermark`` runs when the watermark has moved at least
        ``WATERMARK_NOTIFY_STEP_MS`` since the last call: in a busy partition the watermark moves
        by milliseconds with nearly every event, and capabilities only act on coarse boundaries
        (a day's end, a snapshot interval).
        """
        watermark = self.watermark.value
        for due, key, owner, tag in self.timers.due(watermark):
            state = self.store.get(self.partition, key)
            if state is not None:
                self.capabilities[owner].on_timer(key, state, tag, due)
        if not force and watermark - self._notified < WATERMARK_NOTIFY_STEP_MS:
            return
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
                "waiting_for": [s for s, v in enumerate(self.inputs.marks)
                                if s != self.partition and not self.inputs.idle[s] and v <= self.watermark.value]}
