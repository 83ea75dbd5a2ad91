"""The one compact state record kept per user: the single source of truth for that user.

Everything a capability needs to know about a user lives here, so a user costs one table write
per flush however many metrics it feeds. Partition-wide figures (active-user counts, open
sessions, ...) are derived from these records and rebuilt from them after recovery, so a crash
in the middle of a flush can never leave a total disagreeing with its users.

The record is a msgpack array: small integers take one byte and fingerprints stay binary.
"""

from __future__ import annotations

import struct
from typing import Any

import msgpack

#: Bumped when the layout changes; records of another version are rejected loudly.
STATE_VERSION = 2
FINGERPRINT_BYTES = 8
#: A remembered event id: its fingerprint and its event time in whole seconds (big-endian).
_SEEN = struct.Struct(">8sI")


class LiveSlot:
    """A capability's per-user data kept decoded between flushes.

    Decoding and re-encoding a slot on every event of a user costs more than the event's own
    logic. A capability may instead keep a decoded object in ``state.ext`` and let
    :meth:`UserState.encode` turn it into its stored form once per flush (:meth:`freeze`). The
    record then holds the stored form again, so records waiting in the cache stay compact.
    """

    __slots__ = ()

    def freeze(self, state: "UserState") -> Any:
        """The stored form, for ``state`` as it is being written."""
        raise NotImplementedError


class UserState:
    """Core fields owned by ingest; ``ext`` holds one small slot per capability (by short name)."""

    __slots__ = ("last_offset", "first_ts", "max_ts", "events", "account", "recent", "parked", "ext")

    def __init__(self) -> None:
        self.last_offset = -1
        """Offset of the newest event applied from the user's own partition of the events topic:
        redeliveries at or below it are skipped."""
        self.first_ts = 0
        """Event time of the first event applied (ms)."""
        self.max_ts = 0
        """Newest event time applied (ms)."""
        self.events = 0
        """Events applied (accepted, not duplicate, not late)."""
        self.account: str | None = None
        self.recent: dict[bytes, int] = {}
        """Fingerprints of the event ids applied whose time is within the de-duplication horizon,
        with their event time in seconds (see :meth:`forget_before`)."""
        self.parked: list[list[Any]] = []
        """Accepted events too far ahead of the partition's watermark for the capabilities yet, as
        ``[event time, message bytes]``: applied once the watermark comes within reach (see
        :mod:`streams.core.processor`). Empty nearly always."""
        self.ext: dict[str, Any] = {}

    @property
    def is_new(self) -> bool:
        return self.events == 0

    def remember(self, fingerprint: bytes, ts_ms: int) -> None:
        self.recent[fingerprint] = min(max(0, ts_ms // 1000), 0xFFFFFFFF)

    def forget_before(self, horizon_ms: int) -> None:
        """Drop the fingerprints of events older than ``horizon_ms`` (a second of slack): no copy
        of them can be applied any more, so nothing needs to recognise one."""
        recent = self.recent
        if recent:
            horizon_s = horizon_ms // 1000 - 1
            for fingerprint in [f for f, seconds in recent.items() if seconds < horizon_s]:
                del recent[fingerprint]

    def encode(self) -> bytes:
        ext = self.ext
        for slot, value in ext.items():
            if isinstance(value, LiveSlot):
                ext[slot] = value.freeze(self)
        fields: list[Any] = [STATE_VERSION, self.last_offset, self.first_ts, self.max_ts, self.events, self.account,
                  b"".join(_SEEN.pack(f, s) for f, s in self.recent.items()), self.ext]
        if self.parked:
            fields.append(self.parked)
        return msgpack.packb(fields, use_bin_type=True)

    @classmethod
    def decode(cls, blob: bytes) -> "UserState":
        fields = msgpack.unpackb(blob, raw=False, strict_map_key=False)
        if fields[0] != STATE_VERSION:
            raise ValueError(f"user state version {fields[0]} is not {STATE_VERSION}")
        state = cls()
        (_, state.last_offset, state.first_ts, state.max_ts, state.events, state.account,
         recent, state.ext) = fields[:8]
        state.recent = dict(_SEEN.iter_unpack(recent)) if recent else {}
        if len(fields) > 8:
            state.parked = fields[8]
        return state
