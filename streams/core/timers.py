"""Event-time timers of one partition: what is due once the watermark passes a time.

Capabilities judge absence (a session's gap, a day's close, a user's dormancy) by timers rather
than by sweeping every user, so the cost follows what falls due. A timer is
``(due, key, owner, tag)``: the capability at index ``owner`` hears ``on_timer(key, tag, due)`` once
the watermark is at or past ``due``, in due order (ties in scheduling order, so replays fire
them identically). Timers live in memory only; capabilities rebuild theirs from the recovered
records in ``restore``, and a stale timer (its record changed meanwhile) is the capability's to
ignore.

Per-user due times. Most timers of a partition share a few due times (every user to judge at a
day's close, every user whose session folds at midnight), and a partition may hold a pending
timer for each of a million users. So timers are packed: one ``bytearray`` per due time holding
``owner, tag, key length, key`` per timer (about 14 bytes for a typical key, against ~190 for a
heap entry of a tuple), with a heap of the distinct due times. A capability keeps at most one
live due time per user (in the user's record, or a small map for the few users with an open
session) and schedules again only when that due time moves earlier; an entry left behind by a
later due time is stale and skipped when it fires.

Firing is resumable: :meth:`Timers.pop` hands out one due timer at a time, so the processor can
fire a day's close in slices and leave the rest for the next turn of the event loop
(:meth:`streams.core.processor.PartitionProcessor.work`). A timer scheduled for the due time
being fired joins the end of it and fires in the same pass.
"""

from __future__ import annotations

import heapq

MAX_KEY_BYTES = 0xFFFF


class Timers:
    """Pending timers by due time: a heap of due times and one packed bucket per due time."""

    __slots__ = ("_heap", "_buckets", "_tags", "_tag_ids", "_count", "_firing", "_pos")

    def __init__(self) -> None:
        self._heap: list[int] = []
        self._buckets: dict[int, bytearray] = {}
        self._tags: list[str] = []
        self._tag_ids: dict[str, int] = {}
        self._count = 0
        self._firing: int | None = None
        """The due time whose bucket is being fired (it stays in ``_buckets`` until exhausted)."""
        self._pos = 0

    def schedule(self, due_ms: int, key: bytes, owner: int, tag: str) -> None:
        bucket = self._buckets.get(due_ms)
        if bucket is None:
            bucket = self._buckets[due_ms] = bytearray()
            heapq.heappush(self._heap, due_ms)
        tag_id = self._tag_ids.get(tag)
        if tag_id is None:
            if len(self._tags) > 0xFF:
                raise ValueError(f"more than 256 distinct timer tags (adding {tag!r})")
            tag_id = self._tag_ids[tag] = len(self._tags)
            self._tags.append(tag)
        size = len(key)
        if size > MAX_KEY_BYTES or owner > 0xFF:
            raise ValueError(f"timer key of {size} bytes or owner {owner} out of range")
        bucket += bytes((owner, tag_id, size >> 8, size & 0xFF))
        bucket += key
        self._count += 1

    def pop(self, watermark_ms: int) -> tuple[int, bytes, int, str] | None:
        """The oldest timer due at ``watermark_ms`` (removed), or None when nothing is due."""
        while True:
            due = self._firing
            if due is None:
                heap = self._heap
                if not heap or heap[0] > watermark_ms:
                    return None
                due = self._firing = heapq.heappop(heap)
                self._pos = 0
            bucket = self._buckets[due]
            at = self._pos
            if at >= len(bucket):
                del self._buckets[due]
                self._firing = None
                continue
            size = bucket[at + 2] << 8 | bucket[at + 3]
            key = bytes(bucket[at + 4:at + 4 + size])
            self._pos = at + 4 + size
            self._count -= 1
            return due, key, bucket[at], self._tags[bucket[at + 1]]

    def next_due(self) -> int | None:
        """The earliest due time pending (None: no timer)."""
        if self._firing is not None:
            return self._firing
        return self._heap[0] if self._heap else None

    def nbytes(self) -> int:
        """Bytes held by the packed timers (for memory accounting)."""
        return sum(len(b) for b in self._buckets.values())

    def __len__(self) -> int:
        return self._count
