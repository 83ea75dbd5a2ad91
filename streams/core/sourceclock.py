"""The watermark of one source partition: how far the events read from it say time has come.

Every event read from a partition of the events topic is judged *there*, against this clock: it
is late when its time is older than the clock's watermark. The clock depends on nothing but the
partition's log order, so the same log always gives the same judgements (whichever worker reads
it, however fast, after however many restarts).

Evidence, not a claim. A watermark moved by the newest event time (max - lateness) is moved by a
single event whose clock runs ahead: one device stamping events hours or weeks ahead would make
every later event of its partition late. Here the watermark follows what *several users* agree
on: the clock keeps each recently seen user's latest event time (the last ``EVIDENCE_USERS``
distinct users, least recently seen dropped first) and takes the r-th largest of them, where r is
one in ``EVIDENCE_SHARE`` of the users kept (at least one): with 256 users, 16 must have reached a
time before the watermark follows it (watermark = that time - allowed lateness). A device with a
fast clock is one user however many events it sends; fewer than r of them move nothing. Its
events are still applied, at their own times (nothing is lost); they are counted as *ahead*.

A real new period moves the clock as soon as r users show it: the first events of a day stamped
at 23:59:59 (a day-granular log), the first events after a weekend. A partition with few users
follows them closely (r = 1 below 17 users), with no protection against a fast clock then.

The wall clock decides one thing only: when a partition has read nothing for ``idle_ms``, it is
*idle* (its input is exhausted or quiet); its watermark then advances with the wall clock from its
estimate, as a partition living in real time would, and it tells the other partitions so they stop
waiting for it (see :mod:`streams.core.eventtime`). A closed partition (``streams close``) does
not advance by the wall clock: its end was declared.

Restarts: :meth:`snapshot` is taken at every state flush, which Faust runs just before it commits
the offsets handled so far; the processor keeps the last few and restores the one taken at the
offset the partition is re-read from, so a replay after a crash judges every message as the first
reading did.
"""

from __future__ import annotations

import bisect
import zlib
from array import array
from collections import OrderedDict
from typing import Any

from streams.config import EVIDENCE_SHARE, EVIDENCE_USERS
from streams.core.eventtime import NO_TIME


def evidence_id(user_key: bytes) -> int:
    """A stable 32-bit identity of a user for the evidence window (the same in every process)."""
    return zlib.crc32(user_key)


class SourceClock:
    """The watermark of the events read from one partition, advanced by evidence."""

    __slots__ = ("lateness_ms", "idle_ms", "value", "position", "closed", "idle", "latest", "times",
                 "forwarded", "_last_arrival")

    def __init__(self, lateness_ms: int, idle_ms: int) -> None:
        self.lateness_ms = lateness_ms
        self.idle_ms = idle_ms
        self.value = NO_TIME
        """The watermark: events older than this are late."""
        self.position = 0
        """The offset after the last message read (where a restart resumes)."""
        self.closed = False
        """A close record was read and no event since: no wall-clock advance."""
        self.idle = False
        """Nothing read for ``idle_ms`` (wall clock): the other partitions do not wait for it."""
        self.latest: OrderedDict[int, int] = OrderedDict()
        """User identity -> latest event time, least recently seen first."""
        self.times: list[int] = []
        """The values of ``latest``, sorted."""
        self.forwarded: dict[int, int] = {}
        """Partition -> offset of the newest event read here and forwarded to it (ever: restored
        with the clock, so a partition owning both knows when nothing is in flight between them)."""
        self._last_arrival = 0.0

    # --- reading ---------------------------------------------------------------------------
    def estimate(self) -> int:
        """The time at least r of the recently seen users have reached (NO_TIME before any)."""
        times = self.times
        if not times:
            return NO_TIME
        return times[(len(times) - 1) - (len(times) - 1) // EVIDENCE_SHARE]

    def is_late(self, ts: int) -> bool:
        return ts < self.value

    def ahead(self, ts: int) -> bool:
        """Is ``ts`` further ahead of what the users agree on than the allowed lateness?"""
        times = self.times
        return bool(times) and ts - self.lateness_ms > self.estimate()

    def read(self, offset: int, wall_ms: float) -> None:
        """A message was read at ``offset`` (whatever it was)."""
        self.position = offset + 1
        self._last_arrival = wall_ms
        self.idle = False

    def touch(self, wall_ms: float) -> None:
        """Start the idle timer afresh (the partition was just assigned, or resumed)."""
        self._last_arrival = wall_ms

    def observe(self, who: int, ts: int) -> bool:
        """Take an on-time event of user ``who`` into account; True when the watermark moved."""
        self.closed = False
        latest, times = self.latest, self.times
        old = latest.pop(who, None)
        if old is None:
            bisect.insort(times, ts)
            if len(latest) >= EVIDENCE_USERS:
                _, gone = latest.popitem(last=False)
                del times[bisect.bisect_left(times, gone)]
        elif old != ts:
            del times[bisect.bisect_left(times, old)]
            bisect.insort(times, ts)
        latest[who] = ts
        candidate = times[(len(times) - 1) - (len(times) - 1) // EVIDENCE_SHARE] - self.lateness_ms
        if candidate > self.value:
            self.value = candidate
            return True
        return False

    # --- time passing without events ------------------------------------------------------
    def idle_check(self, wall_ms: float, paused: bool) -> bool:
        """Declare the partition idle after ``idle_ms`` without a message (never while its reading
        is paused), and advance an idle, not closed partition with the wall clock from its
        estimate. True when the watermark or the idle flag changed."""
        if paused:
            self._last_arrival = wall_ms
            return False
        silent = wall_ms - self._last_arrival
        if silent < self.idle_ms:
            return False
        changed = not self.idle
        self.idle = True
        estimate = self.estimate()
        if self.closed or estimate == NO_TIME:
            return changed
        candidate = int(estimate + silent - self.lateness_ms)
        if candidate > self.value:
            self.value = candidate
            return True
        return changed

    def close(self, watermark: int) -> bool:
        """The input was declared finished through ``watermark`` (a close record); True when the
        watermark moved."""
        self.closed = True
        if watermark > self.value:
            self.value = watermark
            return True
        return False

    # --- restarts --------------------------------------------------------------------------
    def snapshot(self) -> list[Any]:
        """What :meth:`restore` needs to judge the messages from ``position`` on as before."""
        return [self.position, self.value, self.closed,
                array("I", self.latest.keys()).tobytes(), array("q", self.latest.values()).tobytes(),
                {str(p): o for p, o in self.forwarded.items()}]

    def restore(self, snap: list[Any]) -> None:
        position, value, closed, whos, times, forwarded = snap
        self.position, self.value, self.closed = position, value, closed
        self.forwarded = {int(p): o for p, o in forwarded.items()}
        ids, stamps = array("I"), array("q")
        ids.frombytes(whos)
        stamps.frombytes(times)
        self.latest = OrderedDict(zip(ids, stamps))
        self.times = sorted(stamps)
