"""Everything one source partition does to a message, from raw bytes to applied state.

Each consumed message ends in exactly one outcome (see ``config.OUTCOMES``):

* ``dead_letter``: rejected by the contract; written to the dead-letter topic with the reason.
* ``rekeyed``: valid, but not in its user's home partition; forwarded there, judged there.
* ``duplicate``: already applied (a redelivery after a crash, or a retry with the same event_id).
* ``late``: older than the partition watermark; written to the dead-letter topic as ``late``.
* ``applied``: the user's record and every capability saw it.

The processor is synchronous and knows nothing of Faust, so it can be unit-tested with an
in-memory table and sink; :mod:`streams.runtime` drives it from the Faust agent.
"""

from __future__ import annotations

import hashlib
import heapq
from typing import Any, Callable, Iterable, Protocol, TypeVar

import orjson

from streams.core.capability import Capability, PartitionCapability
from streams.core.eventtime import NO_TIME, Watermark
from streams.config import WATERMARK_NOTIFY_STEP_MS, Settings
from streams.core.contract import Decoder, Event, Rejection
from streams.core.deadletter import dead_letter
from streams.core.routing import HomePartitions
from streams.core.state import FINGERPRINT_BYTES, UserState
from streams.core.userstore import UserStore

_Cap = TypeVar("_Cap", bound=PartitionCapability)


class Sink(Protocol):
    """Where outputs go (a Faust producer in the worker, a list in unit tests)."""

    def send(self, topic: str, key: bytes | None, value: bytes, partition: int | None = None) -> None: ...


def fingerprint(event_id: str) -> bytes:
    """A stable 64-bit digest of an event id (Python's ``hash`` changes between processes)."""
    return hashlib.blake2b(event_id.encode(), digest_size=FINGERPRINT_BYTES).digest()


class PartitionContext:
    """What a capability may use: the partition's settings, watermark, records, timers and outputs."""

    def __init__(self, partition: int, settings: Settings, store: UserStore, sink: Sink,
                 watermark: Watermark) -> None:
        self.partition = partition
        self.settings = settings
        self.store = store
        self.sink = sink
        self.watermark = watermark
        self._timers: list[tuple[int, int, bytes, int, str]] = []
        self._seq = 0
        self._owner = 0
        self._capabilities: list[PartitionCapability] = []

    def emit(self, topic: str, key: bytes | str | None, value: Any) -> None:
        """Publish an output record (a dict is JSON-encoded); sent before the next offset commit."""
        if isinstance(key, str):
            key = key.encode()
        self.sink.send(topic, key, value if isinstance(value, bytes) else orjson.dumps(value))

    def publish_partial(self, kind: str, period: str, figures: dict[str, Any], final: bool) -> None:
        """Send this partition's additive share of a snapshot (e.g. kind "activity_day", period
        "2026-11-01") to the partials topic; the rollup sums the shares of all partitions and
        publishes the combined snapshot on the metrics topic (final once every partition is).
        """
        self.sink.send(self.settings.partials_topic, f"{kind}|{period}".encode(), orjson.dumps(
            {"kind": kind, "period": period, "partition": self.partition, "final": final,
             "watermark": self.watermark.value, "figures": figures}))

    def notify(self, key: bytes, state: UserState, kind: str, payload: dict[str, Any]) -> None:
        """Tell every other capability of this partition a fact about a user (``on_notice``).

        Delivered synchronously, in capability order, while the caller's event or timer runs;
        notices are not stored, so a receiver keeps in its own slot what it must remember.
        """
        sender = self._owner
        for index, cap in enumerate(self._capabilities):
            if index != sender:
                self._owner = index
                cap.on_notice(key, state, kind, payload)
        self._owner = sender

    def peer(self, kind: type[_Cap]) -> _Cap | None:
        """This partition's instance of another capability (None when it does not run), to use
        its public helpers (e.g. the activity capability's segment labels). Available once every
        capability of the partition exists, i.e. from ``restore`` / ``on_event`` on."""
        for cap in self._capabilities:
            if isinstance(cap, kind):
                return cap
        return None

    def schedule(self, due_ms: int, key: bytes, tag: str) -> None:
        """Call the scheduling capability's ``on_timer`` once the watermark passes ``due_ms``.

        Timers live in memory and are rebuilt by ``restore`` after a restart, so a capability
        checks in ``on_timer`` that the record still warrants it (stale timers are normal).
        """
        self._seq += 1
        heapq.heappush(self._timers, (due_ms, self._seq, key, self._owner, tag))

    def user(self, key: bytes) -> UserState | None:
        return self.store.get(self.partition, key)

    def mark_dirty(self, key: bytes, state: UserState) -> None:
        """Record that a timer or sweep changed a user's record, so the next flush writes it."""
        self.store.mark_dirty(self.partition, key, state)


class PartitionProcessor:
    """Ingest, de-duplication, watermark and capabilities for one source partition."""

    def __init__(self, partition: int, settings: Settings, store: UserStore, sink: Sink,
                 capabilities: Iterable[Capability], decoder: Decoder, home: HomePartitions,
                 count: Callable[[str, str | None], None]) -> None:
        self.partition = partition
        self.settings = settings
        self.store = store
        self.sink = sink
        self.decoder = decoder
        self.home = home
        self.count = count
        self.watermark = Watermark(settings.allowed_lateness_ms, settings.idle_partition_ms)
        self.ctx = PartitionContext(partition, settings, store, sink, self.watermark)
        self.capabilities: list[PartitionCapability] = []
        for index, cap in enumerate(capabilities):
            self.ctx._owner = index
            self.capabilities.append(cap.for_partition(self.ctx))
        self.ctx._capabilities = self.capabilities
        self.users = 0
        self.events = 0
        self._notified = NO_TIME

    # --- recovery -------------------------------------------------------------------------
    def restore(self, wall_ms: float) -> int:
        """Rebuild partition figures, timers and the watermark from the recovered user records."""
        newest = NO_TIME
        for key, state in self.store.items(self.partition):
            self.users += 1
            self.events += state.events
            if state.max_ts > newest:
                newest = state.max_ts
            for index, cap in enumerate(self.capabilities):
                self.ctx._owner = index
                cap.restore(key, state)
        self.watermark.restore(newest, wall_ms)
        self._advance(force=True)
        return self.users

    # --- the hot path ---------------------------------------------------------------------
    def process(self, key: bytes | None, raw: bytes | None, offset: int, received_ms: int,
                wall_ms: float) -> str:
        """Judge and apply one message; returns its outcome."""
        event = self.decoder.decode(raw, received_ms)
        if event.__class__ is Rejection:
            self._dead_letter(event.reason, event.message, raw, key, offset, received_ms)  # type: ignore[union-attr]
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
        for index, cap in enumerate(self.capabilities):
            self.ctx._owner = index
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
        """Keep a quiet partition's event time moving (see :mod:`streams.clock`)."""
        if self.watermark.idle_advance(wall_ms):
            self._advance()

    def _advance(self, force: bool = False) -> None:
        """Fire due timers, then tell every capability where the watermark is.

        Timers fire exactly. ``on_watermark`` runs when the watermark has moved at least
        ``WATERMARK_NOTIFY_STEP_MS`` since the last call: in a busy partition the watermark moves
        by milliseconds with nearly every event, and capabilities only act on coarse boundaries
        (a day's end, a snapshot interval). The step depends on event time only, so replays see
        the same calls.
        """
        watermark = self.watermark.value
        timers = self.ctx._timers
        while timers and timers[0][0] <= watermark:
            due, _, key, owner, tag = heapq.heappop(timers)
            state = self.store.get(self.partition, key)
            if state is not None:
                self.ctx._owner = owner
                self.capabilities[owner].on_timer(key, state, tag, due)
        if not force and watermark - self._notified < WATERMARK_NOTIFY_STEP_MS:
            return
        self._notified = watermark
        for index, cap in enumerate(self.capabilities):
            self.ctx._owner = index
            cap.on_watermark(watermark)

    def figures(self) -> dict[str, Any]:
        """Partition figures: the core counts plus every capability's, all additive."""
        out: dict[str, Any] = {"users": self.users, "events": self.events,
                               "watermark_ms": self.watermark.value, "max_event_ms": self.watermark.max_ts}
        for cap in self.capabilities:
            out.update(cap.figures())
        return out
