"""The one compact state record kept per user: the single source of truth for that user.

Everything a capability needs to know about a user lives here, so a user costs one table write
per flush however many metrics it feeds. Partition-wide figures (active-user counts, open
sessions, ...) are derived from these records and rebuilt from them after recovery, so a crash
in the middle of a flush can never leave a total disagreeing with its users.

The record is a msgpack array: small integers take one byte and fingerprints stay binary.
"""

from __future__ import annotations

from typing import Any

import msgpack

#: Bumped when the layout changes; records of another version are rejected loudly.
STATE_VERSION = 1
FINGERPRINT_BYTES = 8


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

    __slots__ = ("last_offset", "first_ts", "max_ts", "events", "account", "recent", "ext")

    def __init__(self) -> None:
        self.last_offset = -1
        """Source-partition offset of the newest event applied: redeliveries at or below it are skipped."""
        self.first_ts = 0
        """Event time of the first event applied (ms)."""
        self.max_ts = 0
        """Newest event time applied (ms); the partition watermark is rebuilt from these."""
        self.events = 0
        """Events applied (accepted, not duplicate, not late)."""
        self.account: str | None = None
        self.recent: list[bytes] = []
        """Fingerprints of the user's newest event ids, oldest first (bounded by ``dedupe_window``)."""
        self.ext: dict[str, Any] = {}

    @property
    def is_new(self) -> bool:
        return self.events == 0

    def seen(self, fingerprint: bytes) -> bool:
        return fingerprint in self.recent

    def remember(self, fingerprint: bytes, window: int) -> None:
        recent = self.recent
        recent.append(fingerprint)
        if len(recent) > window:
            del recent[: len(recent) - window]

    def encode(self) -> bytes:
        ext = self.ext
        for slot, value in ext.items():
            if isinstance(value, LiveSlot):
                ext[slot] = value.freeze(self)
        return msgpack.packb(
            [STATE_VERSION, self.last_offset, self.first_ts, self.max_ts, self.events, self.account,
             b"".join(self.recent), self.ext],
            use_bin_type=True,
        )

    @classmethod
    def decode(cls, blob: bytes) -> "UserState":
        fields = msgpack.unpackb(blob, raw=False, strict_map_key=False)
        if fields[0] != STATE_VERSION:
            raise ValueError(f"user state version {fields[0]} is not {STATE_VERSION}")
        state = cls()
        (_, state.last_offset, state.first_ts, state.max_ts, state.events, state.account,
         recent, state.ext) = fields
        state.recent = [recent[i:i + FINGERPRINT_BYTES] for i in range(0, len(recent), FINGERPRINT_BYTES)]
        return state
