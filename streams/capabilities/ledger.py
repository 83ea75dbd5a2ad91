"""A user's last five weeks of usage, day by day: the inputs of the engagement score and churn risk.

Why a ledger of its own: the score and the risk rules compare the recent week with the four
weeks before it, week by week (a drop is measured in the user's own week-to-week spread), and
need active minutes, visits and core actions per day over those 35 days. No other slot keeps that
span or that mix (usage keeps 30 days of counts, sessions keep closed sessions only until their
day is final), and their formats are private to their modules; reading them would tie the risk
rules to their internals. So this slot keeps exactly what the rules read, compactly:

``state.ext["e"]`` is a msgpack list ``[n, mask, days, cores, negative, escalations, evaluated,
score, level, due, peer, rested]`` (trailing empty fields left out):

* ``n``: the newest active day (days as in :mod:`streams.core.calendar`); every other day is stored as its
  age ``n - day``, so small integers (one msgpack byte) whatever the date;
* ``mask``: bit ``i`` set when day ``n - i`` was active (any track / page / screen event);
* ``days``: flat ``[age, visits, active_minutes, core_units, ...]`` for days with sessions or core
  actions, youngest first (``core_units``: core actions weighted, in quarters of a unit);
* ``cores``: per configured core action, the age of the last day it was done (breadth), or None;
* ``negative`` / ``escalations``: the ages of negative-intent / escalation events (one per event);
* ``evaluated``: the last day scored (absolute): a timer for a day already scored is a no-op,
  which is what makes a replay after a crash score each day exactly once;
* ``score``, ``level``: the last score and its threshold level (for crossings with hysteresis);
* ``due``: the next day the user is judged (absolute; None: out of scope until their next
  activity), the one live per-user timer of the engagement capability;
* ``peer``: ``[group, last active day, frequency, depth, core actions, trend]``, the values the user
  counts with among their peers (buckets of :mod:`streams.capabilities.peers`), None out of scope;
* ``rested``: the day the user left scope (``horizon_days`` after their last activity), until
  they are judged again.

Between flushes the ledger stays decoded in the record (a :class:`~streams.core.state.LiveSlot`).

Days older than :data:`KEEP_DAYS` are dropped as ``n`` moves on. Measured on the simulator's
users: about 50 bytes for a weekly user, 120 for a daily one.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from itertools import accumulate
from typing import TYPE_CHECKING, Any, NamedTuple

from streams.config import BASELINE_DAYS, RECENT_DAYS
from streams.core.state import LiveSlot

if TYPE_CHECKING:
    from streams.core.state import UserState

SLOT = "e"
#: Days kept: the recent week and the four baseline weeks, plus the recent week's anchor slack
#: and a day of lateness (a day may be scored after the next day's first events arrived).
KEEP_DAYS = BASELINE_DAYS + RECENT_DAYS + 2
#: Core-action weights are kept in quarters, so weighted counts stay small integers.
CORE_UNITS = 4
FIELDS = 12
MAX_MARKS = 16
"""At most this many negative-intent / escalation days are remembered (the newest)."""


class Usage(NamedTuple):
    """Sums over a span of days (or weekly means of them, see :meth:`per_week`)."""

    active_days: float
    visits: float
    minutes: float
    core_actions: float

    def measure(self, index: int) -> float:
        """0: active days, 1: active minutes, 2: core actions (the three a usage drop looks at)."""
        return (self.active_days, self.minutes, self.core_actions)[index]

    def per_week(self, days: float) -> "Usage":
        """Weekly means of sums over ``days`` days."""
        weeks = days / RECENT_DAYS
        return Usage(*(value / weeks for value in self))


NO_USAGE = Usage(0, 0, 0, 0.0)


class Ledger(LiveSlot):
    """A decoded ledger record, kept in the user's record between flushes (:meth:`of`)."""

    __slots__ = ("n", "mask", "days", "cores", "negative", "escalations", "evaluated", "score", "level", "due",
                 "peer", "rested")

    def __init__(self) -> None:
        self.n: int | None = None
        self.mask = 0
        self.days: list[int] = []
        self.cores: list[int | None] = []
        self.negative: list[int] = []
        self.escalations: list[int] = []
        self.evaluated: int | None = None
        self.score: int | None = None
        self.level = 0
        self.due: int | None = None
        self.peer: list[Any] | None = None
        self.rested: int | None = None

    @classmethod
    def of(cls, state: "UserState") -> "Ledger":
        """The user's ledger, decoded once and kept in the record until the next flush."""
        rec = state.ext.get(SLOT)
        if rec.__class__ is cls:
            return rec
        ledger = state.ext[SLOT] = cls.load(rec)
        return ledger

    def freeze(self, state: "UserState") -> list[Any]:
        return self.dump()

    @classmethod
    def load(cls, rec: "list[Any] | Ledger | None") -> "Ledger":
        if isinstance(rec, Ledger):
            return rec
        ledger = cls()
        if rec:
            rec = list(rec) + [None] * (FIELDS - len(rec))
            (ledger.n, mask, days, cores, negative, escalations, ledger.evaluated, ledger.score,
             level, ledger.due, ledger.peer, ledger.rested) = rec[:FIELDS]
            ledger.mask = mask or 0
            ledger.days = days or []
            ledger.cores = cores or []
            ledger.negative = negative or []
            ledger.escalations = escalations or []
            ledger.level = level or 0
        return ledger

    def dump(self) -> list[Any]:
        rec = [self.n, self.mask, self.days, self.cores, self.negative, self.escalations, self.evaluated,
               self.score, self.level, self.due, self.peer, self.rested]
        while rec and rec[-1] in (None, 0, []):
            rec.pop()
        return rec

    # --- updates ---------------------------------------------------------------------------
    def _age(self, day: int) -> int | None:
        """The age of ``day``, making it representable (None: older than anything kept)."""
        n = self.n
        if n is None:
            self.n = day
            return 0
        if day > n:
            self._shift(day - n)
            return 0
        age = n - day
        return age if age < KEEP_DAYS else None

    def _shift(self, by: int) -> None:
        """Make the newest day ``by`` days later: every age grows, the oldest fall off."""
        self.n = self.n + by  # type: ignore[operator]
        self.mask = (self.mask << by) & ((1 << KEEP_DAYS) - 1)
        days = self.days
        for i in range(0, len(days), 4):
            days[i] += by
        cut = next((i for i in range(0, len(days), 4) if days[i] >= KEEP_DAYS), len(days))
        del days[cut:]
        self.cores = [None if a is None or a + by >= KEEP_DAYS else a + by for a in self.cores]
        while self.cores and self.cores[-1] is None:
            self.cores.pop()
        self.negative = [a + by for a in self.negative if a + by < KEEP_DAYS]
        self.escalations = [a + by for a in self.escalations if a + by < KEEP_DAYS]

    def _entry(self, age: int) -> int:
        """Index of the day entry of ``age`` in ``days``, inserted if missing."""
        days = self.days
        i = 0
        while i < len(days) and days[i] < age:
            i += 4
        if i == len(days) or days[i] != age:
            days[i:i] = [age, 0, 0, 0]
        return i

    def mark_active(self, day: int) -> None:
        age = self._age(day)
        if age is not None:
            self.mask |= 1 << age

    def add_core(self, day: int, index: int, weight: float) -> None:
        age = self._age(day)
        if age is None:
            return
        self.days[self._entry(age) + 3] += max(1, round(weight * CORE_UNITS)) if weight > 0 else 0
        cores = self.cores
        if len(cores) <= index:
            cores.extend([None] * (index + 1 - len(cores)))
        if cores[index] is None or cores[index] > age:  # type: ignore[operator]
            cores[index] = age

    def add_session(self, day: int, active_ms: int) -> None:
        age = self._age(day)
        if age is None:
            return
        i = self._entry(age)
        self.days[i + 1] += 1
        self.days[i + 2] += round(active_ms / 60_000)

    def add_mark(self, kind: str, day: int) -> None:
        """Remember a negative-intent (``negative``) or escalation (``escalations``) event's day."""
        age = self._age(day)
        if age is None:
            return
        marks: list[int] = getattr(self, kind)
        marks.append(age)
        marks.sort()
        del marks[MAX_MARKS:]

    # --- reading -----------------------------------------------------------------------------
    def usage(self, lo: int, hi: int) -> Usage:
        """Sums over days ``lo..hi`` (inclusive)."""
        n = self.n
        if n is None or hi < lo:
            return NO_USAGE
        young, old = max(0, n - hi), n - lo
        if old < 0:
            return NO_USAGE
        bits = self.mask >> young
        if old - young + 1 < KEEP_DAYS:
            bits &= (1 << (old - young + 1)) - 1
        visits = minutes = units = 0
        days = self.days
        for i in range(0, len(days), 4):
            age = days[i]
            if age > old:
                break
            if age >= young:
                visits += days[i + 1]
                minutes += days[i + 2]
                units += days[i + 3]
        return Usage(bits.bit_count(), visits, minutes, units / CORE_UNITS)

    def columns(self, lo: int, hi: int) -> "DayColumns":
        """Day-by-day values over ``lo..hi``, for many window sums at once (scoring takes eight)."""
        return DayColumns(self, lo, hi)

    def last_active(self, day: int) -> int | None:
        """The last active day on or before ``day`` still kept (None: none)."""
        n = self.n
        if n is None:
            return None
        young = max(0, n - day)
        bits = self.mask >> young
        if not bits:
            return None
        return n - young - ((bits & -bits).bit_length() - 1)

    def next_active(self, day: int) -> int | None:
        """The first active day after ``day`` already in the ledger (None: none)."""
        n = self.n
        if n is None or n <= day:
            return None
        bits = self.mask & ((1 << min(n - day, KEEP_DAYS)) - 1)
        return n - (bits.bit_length() - 1) if bits else None

    def active_days(self) -> list[int]:
        """The active days kept, newest first."""
        out, bits, n = [], self.mask, self.n
        while bits:
            low = bits & -bits
            out.append(n - (low.bit_length() - 1))  # type: ignore[operator]
            bits ^= low
        return out

    def baseline_changes(self) -> list[int]:
        """The days whose baseline (the 28 days before their recent week) holds other active days
        than the day before's: an active day enters it 7 days later and leaves it 35 days later."""
        return [e for a in self.active_days() for e in (a + RECENT_DAYS, a + RECENT_DAYS + BASELINE_DAYS)]

    def mark_days(self, kind: str, days: int) -> list[int]:
        """The days on which a negative-intent / escalation mark leaves a ``days``-day window."""
        n = self.n
        return [] if n is None else [n - age + days for age in getattr(self, kind)]

    def active_span(self, lo: int, hi: int) -> tuple[int, int, int] | None:
        """(first, last, count) of the active days within ``lo..hi`` (None: none)."""
        n = self.n
        if n is None or hi < lo or n < lo:
            return None
        young, old = max(0, n - hi), min(n - lo, KEEP_DAYS - 1)
        if old < young:
            return None
        bits = (self.mask >> young) & ((1 << (old - young + 1)) - 1)
        if not bits:
            return None
        last = n - young - ((bits & -bits).bit_length() - 1)
        first = n - young - (bits.bit_length() - 1)
        return first, last, bits.bit_count()

    def breadth(self, lo: int, hi: int) -> int:
        """Distinct core actions done on some day in ``lo..hi`` (as far as the last day of each tells:
        an action done on day ``hi + 1`` hides an earlier one, which only happens when scoring a day
        after the next day's first events arrived)."""
        if self.n is None:
            return 0
        return sum(1 for age in self.cores if age is not None and lo <= self.n - age <= hi)

    def marks(self, kind: str, lo: int, hi: int) -> int:
        """Negative-intent or escalation events' days within ``lo..hi``."""
        if self.n is None:
            return 0
        return sum(1 for age in getattr(self, kind) if lo <= self.n - age <= hi)


class DayColumns:
    """A ledger's days over ``lo..hi`` ready for many window sums (scoring takes eight): running
    totals of visits, minutes and core units over its day entries, and the active-day bitmap, so
    each window sum is two binary searches and a bit count."""

    __slots__ = ("lo", "hi", "n", "mask", "ages", "visits", "minutes", "units")

    def __init__(self, ledger: Ledger, lo: int, hi: int) -> None:
        self.lo, self.hi, self.n, self.mask = lo, hi, ledger.n, ledger.mask
        days = ledger.days
        self.ages = days[0::4]
        self.visits = list(accumulate(days[1::4], initial=0))
        self.minutes = list(accumulate(days[2::4], initial=0))
        self.units = list(accumulate(days[3::4], initial=0))

    def usage(self, lo: int, hi: int) -> Usage:
        """Sums over days ``lo..hi`` (within the columns' span)."""
        lo, hi = max(lo, self.lo), min(hi, self.hi)
        n = self.n
        if n is None or hi < lo or n < lo:
            return NO_USAGE
        young, old = max(0, n - hi), n - lo
        bits = self.mask >> young
        if old - young + 1 < KEEP_DAYS:
            bits &= (1 << (old - young + 1)) - 1
        ages = self.ages
        a, b = bisect_left(ages, young), bisect_right(ages, old)
        return Usage(bits.bit_count(), self.visits[b] - self.visits[a], self.minutes[b] - self.minutes[a],
                     (self.units[b] - self.units[a]) / CORE_UNITS)
