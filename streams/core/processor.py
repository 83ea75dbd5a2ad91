"""Everything one source partition does to a message, from raw bytes to applied state.

Each consumed message ends in exactly one outcome (see ``config.OUTCOMES``):

* ``dead_letter``: rejected by the contract; written to the dead-letter topic with the reason.
* ``rekeyed``: valid, but not in its user's home partition; forwarded there, judged there.
* ``duplicate``: already applied (a redelivery after a crash, or a retry with the same event_id).
* ``late``: older than the partition watermark; written to the dead-letter topic as ``late``.
* ``applied``: the user's record and every capability saw it.

The processor is synchronous and knows nothing of Faust, so it can be unit-tested with an
in-memory table and sink; :mod:`streams.runtime.partitions` drives it from the Faust agent.
"""

from __future__ import annotations

import hashlib
import time
from typing import Any, Callable, Iterable

from streams.config import WATERMARK_NOTIFY_STEP_MS, Settings
from streams.core.capability import Capability, PartitionCapability, PartitionContext, Sink
from streams.core.contract import Decoder, Event, Rejection
from streams.core.deadletter import dead_letter
from streams.core.eventtime import NO_TIME, Watermark
from streams.core.routing import HomePartitions
from streams.core.state import FINGERPRINT_BYTES, UserState
from streams.core.timers import Timers
from streams.core.userstore import UserStore


def fingerprint(event_id: str) -> bytes:
    """A stable 64-bit digest of an event id (Python's ``hash`` changes between processes)."""
    return hashlib.blake2b(event_id.encode(), digest_size=FINGERPRINT_BYTES).digest()


class PartitionProcessor:
    """Ingest, de-duplication, watermark and capabilities for one source partition."""

    def __init__(self, partition: int, settings: Settings, store: UserStore, sink: Sink,
                 capabilities: Iterable[Capability], decoder: Decoder, home: HomePartitions,
                 count: Callable[[str, str | None], None], slice_s: float | None = None) -> None:
        self.partition = partition
        self.slice_s = slice_s
        """Longest time one call fires timers for (None: no limit; see :meth:`_advance`)."""
        self.settings = settings
        self.store = store
        self.sink = sink
        self.decoder = decoder
        self.home = home
        self.count = count
        self.watermark = Watermark(settings.allowed_lateness_ms, settings.idle_partition_ms)
        self.timers = Timers()
        self.capabilities: list[PartitionCapability] = []
        for index, cap in enumerate(capabilities):
            ctx = PartitionContext(partition, settings, store, sink, self.watermark, self.timers, index,
                                   self.capabilities)
            self.capabilities.append(cap.for_partition(ctx))
        self.users = 0
        self.events = 0
        self._notified = NO_TIME
        self._force_notify = False
        self.backlog = False
        """Due timers not fired yet (sliced work for :meth:`work`)."""

    # --- recovery -------------------------------------------------------------------------
    def restore(self, wall_ms: float) -> int:
        """Rebuild partition figures, timers and the watermark from the recovered user records."""
        newest = NO_TIME
        for key, state in self.store.items(self.partition):
            self.users += 1
            self.events += state.events
            if state.max_ts > newest:
                newest = state.max_ts
            for cap in self.capabilities:
                cap.restore(key, state)
        self.watermark.restore(newest, wall_ms)
        self._advance(force=True)
        return self.users

    # --- the hot path ---------------------------------------------------------------------
    def process(self, key: bytes | None, raw: bytes | None, offset: int, received_ms: int,
                wall_ms: float) -> str:
        """Judge and apply one message; returns its outcome."""
        if self.backlog:  # every timer due before this message fires first (the runtime drains it)
            self.work()
        event = self.decoder.decode(raw, received_ms)
        if event.__class__ is Rejection:
            self._dead_letter(event.reason, event.message, raw, key, offset, received_ms)
            return "dead_letter"
        assert isinstance(event, Event)
        user_key = event.user.encode()
        home = self.home(user_key)
        if home != self.partition or key != user_key:
            self.sink.send(self.settings.events_topic, user_key, raw, home)  # type: ignore[arg-type]
            return "rekeyed"

        state = self.store.get(self.partition, user_key)
        fp = fingerprint(event.event_id)
        if state is not None and (offset <= state.last_offset or fp in state.recent):
            return "duplicate"
        if event.ts < self.watermark.value:
            self._dead_letter("late", f"event time {event.ts} is older than the watermark "
                              f"{self.watermark.value} (allowed lateness {self.settings.allowed_lateness_s}s)",
                              raw, key, offset, received_ms)
            return "late"

        if state is None:
            state = UserState()
            state.first_ts = event.ts
            self.users += 1
        for cap in self.capabilities:
            cap.on_event(user_key, state, event)
        state.last_offset = offset
        state.events += 1
        if event.ts > state.max_ts:
            state.max_ts = event.ts
        if event.ts < state.first_ts:
            state.first_ts = event.ts
        if event.account:
            state.account = event.account
        state.remember(fp, self.settings.dedupe_window)
        self.store.mark_dirty(self.partition, user_key, state)
        self.events += 1
        if self.watermark.observe(event.ts, wall_ms):
            self._advance()
        return "applied"

    def _dead_letter(self, reason: str, message: str, raw: bytes | None, key: bytes | None,
                     offset: int, received_ms: int) -> None:
        record = dead_letter(reason, message, raw, key, self.settings.events_topic, self.partition,
                             offset, received_ms, self.settings.dead_letter_payload_bytes)
        self.sink.send(self.settings.dead_letter_topic, key, record)
        self.count("dead_letter_reason", reason)

    # --- event time -----------------------------------------------------------------------
    def tick(self, wall_ms: float) -> None:
        """Keep a quiet partition's event time moving (see :mod:`streams.core.eventtime`)."""
        if self.watermark.idle_advance(wall_ms):
            self._advance()

    def _advance(self, force: bool = False) -> None:
        """Fire due timers, then tell every capability where the watermark is.

        Timers fire exactly, in due order. With a time slice (``slice_s``) the processor fires
        what fits in it and keeps the rest as :attr:`backlog` for :meth:`work`, which the runtime
        calls on the next turns of the event loop (a day's close can hold a timer for each of a
        million users); every due timer fires before the next event is applied, sliced or not
        (:meth:`process` finishes a backlog first). ``on_watermark`` runs once the timers due at
        the watermark have fired, when the watermark has moved at least
        ``WATERMARK_NOTIFY_STEP_MS`` since the last call: in a busy partition the watermark moves
        by milliseconds with nearly every event, and capabilities only act on coarse boundaries
        (a day's end, a snapshot interval). The step depends on event time only, so replays see
        the same calls.
        """
        self._force_notify = self._force_notify or force
        self.backlog = True
        self.work(None if force or self.slice_s is None else time.perf_counter() + self.slice_s)

    def work(self, deadline: float | None = None) -> bool:
        """Continue firing due timers until ``deadline`` (``time.perf_counter()``; None: all of
        them), then notify the capabilities; True while a backlog remains."""
        if not self.backlog:
            return False
        watermark = self.watermark.value
        pop, get, caps, partition = self.timers.pop, self.store.get, self.capabilities, self.partition
        fired = 0
        while True:
            timer = pop(watermark)
            if timer is None:
                break
            due, key, owner, tag = timer
            state = get(partition, key)
            if state is not None:
                caps[owner].on_timer(key, state, tag, due)
            fired += 1
            if deadline is not None and not fired & 15 and time.perf_counter() >= deadline:
                return True
        self.backlog = False
        if not self._force_notify and watermark - self._notified < WATERMARK_NOTIFY_STEP_MS:
            return False
        self._force_notify = False
        self._notified = watermark
        for cap in self.capabilities:
            cap.on_watermark(watermark)
        return False

    def figures(self) -> dict[str, Any]:
        """Partition figures: the core counts plus every capability's, all additive."""
        out: dict[str, Any] = {"users": self.users, "events": self.events,
                               "watermark_ms": self.watermark.value, "max_event_ms": self.watermark.max_ts}
        for cap in self.capabilities:
            out.update(cap.figures())
        return out
