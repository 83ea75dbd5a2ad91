"""The watermark of one source partition: how far the events read from it say time has come.

Every event read from a partition of the events topic is judged *there*, against this clock: it
is late when its time is older than the clock's watermark. The clock depends on nothing but the
partition's log order, so the same log always gives the same judgements (whichever worker reads
it, however fast, after however many restarts).

Evidence, not a claim. A watermark moved by the newest event time (max - lateness) is moved by a
single event whose clock runs ahead: one device stamping events hours or weeks ahead would make
every later event of its partition late. Here the watermark follows what the recent events agree
on. Over a window of the last ``EVIDENCE_EVENTS`` events read (each user keeping at most its last
``EVIDENCE_PER_USER`` events in it, so one user flooding the partition cannot push the others
out), two robust statistics are taken, and the watermark follows the lower of them (minus the
allowed lateness):

* the r-th largest event time: a few events with a wrong clock (say 1 in 100, hours to weeks
  ahead) are fewer than r and move nothing, and they leave the window as the stream moves on;
* the r-th largest of the users' latest event times (each user counted once, with the time of
  its most recent event in the window): one device with a fast clock is one user, however many
  events it sends.

r is one in ``EVIDENCE_SHARE`` of what is counted (16 of 256 events); at least two events, and at
least three users once the window holds 8 users (two from 4). Events stamped ahead are still
applied, at their own times (nothing is lost); they are counted as *ahead*. A real new period
moves the watermark as soon as enough events and users show it: the first events of a day stamped
at 23:59:59 (a day-granular log), the first events after a weekend. A partition whose window holds
one to three users follows them closely (one event behind the newest): a single event with a wrong
clock cannot move it, one of those users sending several can.

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
from collections import deque
from typing import Any

from streams.config import EVIDENCE_EVENTS, EVIDENCE_FLOOR, EVIDENCE_PER_USER, EVIDENCE_SHARE
from streams.core.eventtime import NO_TIME


def evidence_needed(counted: int, users: int, events: bool) -> int:
    """How many of ``counted`` values (events, or users) must have reached a time for the
    watermark to follow it: one in ``EVIDENCE_SHARE``; at least two events (one event with a
    wrong clock never moves it); at least ``EVIDENCE_FLOOR`` users once the window holds 8 users,
    two from 4 (fewer users than that: one, there is nothing to outvote)."""
    share = 1 + (counted - 1) // EVIDENCE_SHARE
    if events:
        return max(share, min(2, counted))
    floor = EVIDENCE_FLOOR if users >= 2 * EVIDENCE_FLOOR + 2 else 2 if users >= EVIDENCE_FLOOR + 1 else 1
    return max(share, floor)


def evidence_id(user_key: bytes) -> int:
    """A stable 32-bit identity of a user for the evidence window (the same in every process)."""
    return zlib.crc32(user_key)


class SourceClock:
    """The watermark of the events read from one partition, advanced by evidence."""

    __slots__ = ("lateness_ms", "idle_ms", "value", "position", "closed", "idle", "window", "mine", "gone", "size",
                 "times", "latest", "users", "forwarded", "_seq", "_last_arrival")

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
        self.window: deque[tuple[int, int, int]] = deque()
        """(number, user, event time) of the events in the window, oldest first (some already
        taken out: their numbers are in ``gone``)."""
        self.mine: dict[int, deque[tuple[int, int]]] = {}
        """User -> its (number, event time) in the window, oldest first (at most ``EVIDENCE_PER_USER``)."""
        self.gone: set[int] = set()
        self.size = 0
        """Events in the window."""
        self.times: list[int] = []
        """The window's event times, sorted."""
        self.latest: dict[int, int] = {}
        """User -> the time of its most recent event in the window."""
        self.users: list[int] = []
        """The values of ``latest``, sorted."""
        self.forwarded: dict[int, int] = {}
        """Partition -> offset of the newest event read here and forwarded to it (ever: restored
        with the clock, so a partition owning both knows when nothing is in flight between them)."""
        self._seq = 0
        self._last_arrival = 0.0

    # --- reading ---------------------------------------------------------------------------
    def estimate(self) -> int:
        """The time the recent events and users agree on (NO_TIME before any event)."""
        times, users = self.times, self.users
        if not times:
            return NO_TIME
        n = len(users)
        by_event = times[len(times) - evidence_needed(len(times), n, True)]
        by_user = users[n - evidence_needed(n, n, False)]
        return by_event if by_event < by_user else by_user

    def is_late(self, ts: int) -> bool:
        return ts < self.value

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
        self._add(who, ts)
        candidate = self.estimate() - self.lateness_ms
        if candidate > self.value:
            self.value = candidate
            return True
        return False

    def _add(self, who: int, ts: int) -> None:
        """Put an event in the window: a user keeps at most ``EVIDENCE_PER_USER`` events there (its
        oldest goes), the window at most ``EVIDENCE_EVENTS`` (the oldest event goes)."""
        times, users, latest = self.times, self.users, self.latest
        number = self._seq = self._seq + 1
        self.window.append((number, who, ts))
        mine = self.mine.get(who)
        if mine is None:
            mine = self.mine[who] = deque()
        mine.append((number, ts))
        bisect.insort(times, ts)
        old = latest.get(who)
        if old is None:
            bisect.insort(users, ts)
        elif old != ts:
            del users[bisect.bisect_left(users, old)]
            bisect.insort(users, ts)
        latest[who] = ts
        self.size += 1
        if len(mine) > EVIDENCE_PER_USER:  # a user flooding the partition stays one of many
            gone, gone_ts = mine.popleft()
            self.gone.add(gone)
            del times[bisect.bisect_left(times, gone_ts)]
            self.size -= 1
        window = self.window
        while self.size > EVIDENCE_EVENTS or (window and window[0][0] in self.gone):
            number, gone_who, gone_ts = window.popleft()
            if number in self.gone:
                self.gone.discard(number)
                continue
            del times[bisect.bisect_left(times, gone_ts)]
            left = self.mine[gone_who]
            left.popleft()
            if not left:  # its last event in the window: the user leaves it
                del self.mine[gone_who]
                del users[bisect.bisect_left(users, latest.pop(gone_who))]
            self.size -= 1

    def ahead(self, ts: int) -> int:
        """How far ``ts`` is ahead of what the recent events agree on (0: not ahead)."""
        estimate = self.estimate()
        return max(0, ts - estimate) if estimate != NO_TIME else 0

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
        live = [(who, ts) for number, who, ts in self.window if number not in self.gone]
        return [self.position, self.value, self.closed,
                array("I", (w for w, _ in live)).tobytes(), array("q", (t for _, t in live)).tobytes(),
                {str(p): o for p, o in self.forwarded.items()}]

    def restore(self, snap: list[Any]) -> None:
        position, value, closed, whos, stamps, forwarded = snap
        self.position, self.value, self.closed = position, value, closed
        self.forwarded = {int(p): o for p, o in forwarded.items()}
        ids, times = array("I"), array("q")
        ids.frombytes(whos)
        times.frombytes(stamps)
        self.window, self.mine, self.gone, self.size = deque(), {}, set(), 0
        self.times, self.latest, self.users = [], {}, []
        for who, ts in zip(ids, times):
            self._add(who, ts)
