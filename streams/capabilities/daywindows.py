"""Days in event time: per-user sparse day counts, partition day figures, and day publishing.

Rolling-window figures ("distinct users who did X in the 28 days ending on day d", "uses in
the last 7 days") are kept exact and additive without a set of user ids per window:

* each user record keeps sparse per-day counts for the last ``USAGE_RETAIN_DAYS`` days, as a
  flat list ``[day offset, count, day offset, count, ...]`` relative to the record's base day;
* a partition keeps, per figure, a difference array over days (:class:`Coverage`): a user who
  did X on day x counts in the w-day window of every day in [x, x + w - 1], so adding a day adds
  one interval (minus what the user's neighbouring days already covered). Prefix sums give the
  count for any day; restore rebuilds the arrays from the records alone;
* sums over windows come from per-day totals (:class:`DayTotals`).
"""

from __future__ import annotations

import bisect
import time
from typing import Any, Callable, Iterable

from streams.config import Settings
from streams.core.calendar import DayClock
from streams.core.eventtime import NO_TIME


class Coverage:
    """How many users count on each day, as a difference array over days (exact, additive)."""

    __slots__ = ("base", "diff")

    def __init__(self) -> None:
        self.base = 0
        self.diff: dict[int, int] = {}

    def add(self, lo: int, hi: int | None, n: int = 1) -> None:
        """Count ``n`` more users on every day in [lo, hi] (hi None: from lo on, for good)."""
        diff = self.diff
        diff[lo] = diff.get(lo, 0) + n
        if hi is not None:
            diff[hi + 1] = diff.get(hi + 1, 0) - n

    def value(self, day: int) -> int:
        return self.base + sum(v for d, v in self.diff.items() if d <= day)

    def settle(self, day: int) -> None:
        """Fold days up to ``day`` into the base: nothing will change them any more."""
        old = [d for d in self.diff if d <= day]
        for d in old:
            self.base += self.diff.pop(d)


class DayTotals:
    """Per-day totals of a count, summed over windows."""

    __slots__ = ("days",)

    def __init__(self) -> None:
        self.days: dict[int, int] = {}

    def add(self, day: int, n: int) -> None:
        self.days[day] = self.days.get(day, 0) + n

    def window(self, day: int, width: int) -> int:
        lo = day - width + 1
        return sum(v for d, v in self.days.items() if lo <= d <= day)

    def settle(self, before: int) -> None:
        for d in [d for d in self.days if d < before]:
            del self.days[d]


# --- per-user sparse day lists ------------------------------------------------------------
def bump(days: list[int], offset: int, n: int) -> tuple[bool, int | None, int | None]:
    """Add ``n`` to the count at ``offset`` of a flat ``[offset, count, ...]`` list.

    Returns (first count that day, previous day offset, next day offset), which is what a
    :class:`Coverage` needs to add exactly the newly covered days.
    """
    offsets = days[0::2]
    i = bisect.bisect_left(offsets, offset)
    if i < len(offsets) and offsets[i] == offset:
        days[2 * i + 1] += n
        return False, None, None
    days[2 * i:2 * i] = [offset, n]
    prev = offsets[i - 1] if i > 0 else None
    nxt = offsets[i] if i < len(offsets) else None
    return True, prev, nxt


def newly_covered(x: int, prev: int | None, nxt: int | None, width: int) -> tuple[int, int] | None:
    """Days whose ``width``-day window gains its first count when day ``x`` is added."""
    lo = x if prev is None else max(x, prev + width)
    hi = x + width - 1 if nxt is None else min(x + width - 1, nxt - 1)
    return (lo, hi) if lo <= hi else None


def covered_runs(days: Iterable[int], width: int) -> Iterable[tuple[int, int]]:
    """The merged intervals of days whose ``width``-day window holds one of ``days`` (sorted)."""
    lo = hi = None
    for x in days:
        if hi is not None and x <= hi + 1:
            hi = max(hi, x + width - 1)
            continue
        if lo is not None:
            yield lo, hi  # type: ignore[misc]
        lo, hi = x, x + width - 1
    if lo is not None:
        yield lo, hi  # type: ignore[misc]


def shift(days: list[int], by: int, stride: int = 2) -> None:
    for i in range(0, len(days), stride):
        days[i] += by


def prune(days: list[int], below: int, stride: int = 2) -> None:
    """Drop entries with offsets below ``below`` (in place)."""
    cut = 0
    while cut < len(days) and days[cut] < below:
        cut += stride
    if cut:
        del days[:cut]


# --- publishing ---------------------------------------------------------------------------
def start_day(settings: Settings, clock: DayClock) -> int | None:
    """The configured first day every partition reports (``activity.start_date``), if any."""
    return clock.parse(settings.activity.start_date) if settings.activity.start_date else None


class DayPublisher:
    """Publishes one partition's share of a per-day snapshot kind.

    Day d is final once the watermark reaches the end of d plus ``settle_ms`` (how long after
    the day's end its figures can still change); finals go out in day order, each exactly once
    per partition assignment. While a day is open, a provisional share of the oldest open day
    goes out at most every ``interval_s`` seconds of wall time (0: never).
    """

    def __init__(self, clock: DayClock, publish: Callable[[str, str, dict[str, Any], bool], None],
                 kind: str, settle_ms: int, figures: Callable[[int], dict[str, Any]],
                 finalized: Callable[[int], None], interval_s: float = 0.0,
                 start_day: int | None = None) -> None:
        self.clock = clock
        self.start_day = start_day
        """A fresh partition reports every day from this one (``activity.start_date``), so the rollup
        can finish days before the partition's first event; after a restart it resumes instead."""
        self.resumed = False
        """Set by restore when the partition had records: days before the watermark were published."""
        self.publish = publish
        self.kind = kind
        self.settle_ms = settle_ms
        self.figures = figures
        self.finalized = finalized
        self.interval_s = interval_s
        self.next_day: int | None = None
        self._final_at = NO_TIME
        """Watermark at which ``next_day`` becomes final (checked on every watermark move)."""
        self._last_provisional = time.monotonic()

    def first_open_day(self, watermark: int) -> int:
        """Days before this one are final at this watermark."""
        return self.clock.day(watermark - self.settle_ms)

    def advance(self, watermark: int) -> None:
        if watermark < self._final_at and self.interval_s <= 0:
            return  # nothing due (most calls: the watermark moves on every event)
        if watermark == NO_TIME:
            return
        if self.next_day is None:
            first = self.first_open_day(watermark)
            if self.start_day is None:
                self.next_day = first
            else:
                self.next_day = max(first, self.start_day) if self.resumed else self.start_day
            self._final_at = self.clock.end(self.next_day) + self.settle_ms
        while watermark >= self._final_at:
            day = self.next_day
            self.publish(self.kind, self.clock.label(day), self.figures(day), True)
            self.finalized(day)
            self.next_day = day + 1
            self._final_at = self.clock.end(day + 1) + self.settle_ms
        if self.interval_s > 0 and time.monotonic() - self._last_provisional >= self.interval_s:
            self._last_provisional = time.monotonic()
            self.publish(self.kind, self.clock.label(self.next_day), self.figures(self.next_day), False)
