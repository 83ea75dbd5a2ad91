"""Event-time timers of one partition: what is due once the watermark passes a time.

Capabilities judge absence (a session's gap, a day's close, a user's dormancy) by timers rather
than by sweeping every user, so the cost follows what falls due. A timer is
``(due, key, owner, tag)``: the capability at index ``owner`` hears ``on_timer(key, tag, due)`` once
the watermark is at or past ``due``, in due order (ties in scheduling order, so replays fire
them identically). Timers live in memory only; capabilities rebuild theirs from the recovered
records in ``restore``, and a stale timer (its record changed meanwhile) is the capability's to
ignore.
"""

from __future__ import annotations

import heapq
from typing import Iterator


class Timers:
    """A heap of pending timers, ordered by due time, then by scheduling order."""

    __slots__ = ("_heap", "_seq")

    def __init__(self) -> None:
        self._heap: list[tuple[int, int, bytes, int, str]] = []
        self._seq = 0

    def schedule(self, due_ms: int, key: bytes, owner: int, tag: str) -> None:
        self._seq += 1
        heapq.heappush(self._heap, (due_ms, self._seq, key, owner, tag))

    def due(self, watermark_ms: int) -> Iterator[tuple[int, bytes, int, str]]:
        """Pop every timer due at ``watermark_ms``, oldest first; timers scheduled while iterating
        fire in the same pass when they are due too."""
        heap = self._heap
        while heap and heap[0][0] <= watermark_ms:
            due, _, key, owner, tag = heapq.heappop(heap)
            yield due, key, owner, tag

    def next_due(self) -> int | None:
        """When the next timer falls due (None: none pending)."""
        return self._heap[0][0] if self._heap else None

    def __len__(self) -> int:
        return len(self._heap)
