"""A user's activity days and segment values, and what they make of the user on any day.

Everything here is a pure function of a user's record, which is what makes the partition
figures exact and rebuildable: the figures of day ``d`` are the sum over users of
:meth:`Rules.membership` (stock: users, WAU, MAU, lifecycle state) and :meth:`Rules.flow`
(today's activity by lifecycle, users turning dormant) evaluated at ``d``.

The per-user record (``state.ext["a"]``) is a short msgpack list ``[n, n - f, bits, seg...]``,
packed to bytes:

* ``n``: the newest active day, ``f``: the first active day (days as in :mod:`streams.core.calendar`);
* ``bits``: bit ``i`` set when day ``n - i`` was active. Only the last :attr:`Rules.span` days
  are kept (32 with the defaults: one msgpack uint32), which is all the definitions ever look at;
* one entry per segment dimension: the label code valid since before the kept window (a plain
  int), or a flat list ``[n - day, code, age, ...]`` of the days the value changed (``None`` for
  since ever). ``age`` is how much older than the user's newest event (``state.max_ts``) the
  day's latest observation is, usually 0 (one byte); it is kept only while the day is open, so
  an out-of-order observation can tell whether it is the day's latest.

Definitions (also in docs/active-users.md#active-users-stickiness-and-lifecycle), with ``L`` the last active day on or before ``d``:

* ``new``: ``L`` is the first active day; ``returning``: the active day before ``L`` is at most
  ``dormant_days`` earlier; ``resurrected``: it is longer ago (the user had gone dormant);
* ``dormant``: ``d - L >= dormant_days`` (a whole ``dormant_days`` without activity);
* WAU / MAU membership: ``d - L < 7`` / ``< 30``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Iterator

import msgpack

from streams.config import LIFECYCLE_STATES, MAU_DAYS, WAU_DAYS
from streams.core.state import LiveSlot

if TYPE_CHECKING:
    from streams.core.state import UserState

NEW, RETURNING, RESURRECTED, DORMANT = 1, 2, 3, 4
STATE_NAMES = {code: name for code, name in zip((NEW, RETURNING, RESURRECTED, DORMANT), LIFECYCLE_STATES)}
#: ``day`` of a segment entry valid since before the kept window.
SINCE_EVER = -1

# Window membership of a user on a day: 2 = within WAU (and MAU), 1 = MAU only, 0 = neither.
IN_WAU, IN_MAU, OUTSIDE = 2, 1, 0

Membership = tuple  # (state, window, labels): one user's share of a day's stock figures
Flow = tuple  # (lifecycle code, labels): what the user did that day (active as ..., or became dormant)


class View(LiveSlot):
    """A decoded activity record. Mutated in place; :meth:`dump` gives the stored form.

    Kept decoded in the user's record between flushes (a :class:`~streams.core.state.LiveSlot`).
    """

    __slots__ = ("n", "f", "bits", "segs", "newest")

    def __init__(self, n: int | None, f: int | None, bits: int, segs: list[list[tuple[int, Any, int | None]]]) -> None:
        self.n = n
        self.f = f
        self.bits = bits
        self.segs = segs
        self.newest: list[Any] | None = None
        """Each dimension's newest code, once asked (see :func:`newest_codes`); reset by changes."""

    @classmethod
    def load(cls, stored: bytes | None, dims: int, max_ts: int = 0) -> "View":
        """``max_ts``: the record's ``UserState.max_ts`` (observation times are stored relative to it)."""
        if not stored:
            return cls(None, None, 0, [[] for _ in range(dims)])
        rec = msgpack.unpackb(stored)
        n = rec[0]
        base = n if n is not None else 0
        segs = [_load_seg(s, base, max_ts) for s in rec[3:3 + dims]]
        segs.extend([] for _ in range(dims - len(segs)))  # a dimension appended to the config
        bits = rec[2] if rec[2].__class__ is int else int.from_bytes(rec[2], "big")
        return cls(n, None if n is None else n - rec[1], bits, segs)

    def dump(self, max_ts: int) -> bytes:
        """The stored form; ``max_ts`` is what ``UserState.max_ts`` will be when it is written.

        Packed to bytes once here, so a decoded user record holds one small bytes object for this
        slot instead of nested lists (decoded records are cached by the hundred thousand).
        """
        n = self.n
        base = n if n is not None else 0
        bits: int | bytes = self.bits
        if self.bits >= 1 << 64:  # more than 64 days kept (dormant_days above 31): msgpack ints stop at 64 bits
            bits = self.bits.to_bytes((self.bits.bit_length() + 7) // 8, "big")
        return msgpack.packb([n, None if n is None or self.f is None else n - self.f, bits,
                              *(_dump_seg(s, base, max_ts) for s in self.segs)])

    def freeze(self, state: "UserState") -> bytes:
        return self.dump(state.max_ts)

    def copy(self) -> "View":
        return View(self.n, self.f, self.bits, [list(s) for s in self.segs])

    def active_days(self) -> Iterator[int]:
        bits, n = self.bits, self.n
        while bits:
            low = bits & -bits
            yield n - (low.bit_length() - 1)  # type: ignore[operator]
            bits ^= low

    def label(self, dim: int, day: int) -> Any:
        """The segment code of dimension ``dim`` on ``day`` (None: no value seen yet)."""
        code = None
        for entry in self.segs[dim]:
            if entry[0] > day:
                break
            code = entry[1]
        return code

    def labels(self, day: int) -> tuple[Any, ...]:
        return tuple(self.label(i, day) for i in range(len(self.segs)))

    def note(self, dim: int, day: int, ts: int, code: Any) -> bool:
        """:meth:`observe` for the usual case, where the value stays what it is from ``day`` on:
        True when handled so (the observation time recorded as observe would), False when the
        value may change (nothing done: call :meth:`observe`)."""
        entries = self.segs[dim]
        if not entries:
            return False
        d, c, t = entries[-1]
        if c != code or d > day:
            return False
        if d == day:
            if t is None or t < ts:
                entries[-1] = (day, code, ts)
        else:
            entries.append((day, code, ts))
        return True

    def observe(self, dim: int, day: int, ts: int, code: Any) -> bool:
        """Record that an event at ``ts`` (within ``day``) carried ``code``; True when the
        dimension's value from ``day`` on changed (the latest observation of a day wins)."""
        self.newest = None
        entries = self.segs[dim]
        before = None
        for index, (d, c, t) in enumerate(entries):
            if d == day:
                if t is not None and (t > ts or (t == ts and _order(c) >= _order(code))):
                    return False
                entries[index] = (day, code, ts)
                return c != code
            if d > day:
                entries.insert(index, (day, code, ts))
                return before != code
            before = c
        entries.append((day, code, ts))
        return before != code


def _order(code: Any) -> tuple[int, Any]:
    """Tie-break for two observations at the same millisecond (deterministic, if arbitrary)."""
    return (0, "") if code is None else (1, str(code))


def newest_codes(stored: "bytes | View | None", dims: int) -> list[Any]:
    """Each dimension's newest segment code (None: no value yet), read straight from a stored
    record without building a :class:`View` (for readers on the hot path, e.g. usage)."""
    if stored.__class__ is View:  # a live record: asked for every event, changed rarely
        codes = stored.newest
        if codes is None:
            codes = stored.newest = [entries[-1][1] if entries else None for entries in stored.segs]
        return codes
    if not stored:
        return [None] * dims
    rec = msgpack.unpackb(stored)
    out = [seg[-2] if seg.__class__ is list else seg for seg in rec[3:3 + dims]]
    out.extend([None] * (dims - len(out)))
    return out


# Stored entry days count back from the newest active day, and observation times back from the
# user's newest event: both are usually 0-2, one byte each instead of three and nine. The
# since-ever entry's day is stored as None.
def _load_seg(stored: Any, base: int, max_ts: int) -> list[tuple[int, Any, int | None]]:
    if stored is None:
        return []
    if stored.__class__ is not list:
        return [(SINCE_EVER, stored, None)]
    return [(SINCE_EVER if stored[i] is None else base - stored[i], stored[i + 1],
             None if stored[i + 2] is None else max_ts - stored[i + 2]) for i in range(0, len(stored), 3)]


def _dump_seg(entries: list[tuple[int, Any, int | None]], base: int, max_ts: int) -> Any:
    if not entries:
        return None
    if len(entries) == 1 and entries[0][0] == SINCE_EVER:
        return entries[0][1]
    return [x for d, c, t in entries
            for x in (None if d == SINCE_EVER else base - d, c, None if t is None else max_ts - t)]


class Rules:
    """The definitions, parameterised by the dormancy threshold and how many days ahead of the
    watermark an event can reach the capability (the processor's lookahead)."""

    def __init__(self, dormant_days: int, lateness_days: int, dims: int) -> None:
        self.dormant = dormant_days
        self.dims = dims
        #: Days before ``d`` that evaluating ``d`` can look at (MAU window; the gap before ``L``).
        self.history = max(MAU_DAYS - 1, 2 * dormant_days - 1)
        #: Evaluation days are never older than ``n - margin``: a day older than the newest active
        #: one by more than the lookahead is closed (its figures are final) in every partition state
        #: that holds the record, and the restore anchor sits one day before the oldest open day.
        self.margin = lateness_days + 1
        self.span = self.margin + self.history + 1
        self.mask = (1 << self.span) - 1
        self._steps = (0, WAU_DAYS, MAU_DAYS, dormant_days)

    def new_view(self, stored: "bytes | View | None", max_ts: int = 0) -> View:
        """The record's view: the live one if the record holds it, else decoded (not stored)."""
        if stored.__class__ is View:
            return stored
        return View.load(stored, self.dims, max_ts)  # type: ignore[arg-type]

    # --- mutation ------------------------------------------------------------------------
    def add_day(self, view: View, day: int) -> bool:
        """Mark ``day`` active; True when it was not already."""
        n = view.n
        if n is None:
            view.n = view.f = day
            view.bits = 1
            return True
        if day > n:
            view.bits = ((view.bits << (day - n)) & self.mask) | 1
            view.n = day
        elif self.is_active(view, day):
            return False
        else:
            view.bits |= 1 << (n - day)
        if day < view.f:  # type: ignore[operator]
            view.f = day
        return True

    def compact(self, view: View, open_day: int | None) -> None:
        """Drop what no evaluation can need any more (segment history before the window, the
        within-day times of closed days, repeated values), keeping the record small."""
        anchor = view.n if view.n is not None else open_day
        if anchor is None:
            return
        floor = anchor - self.margin
        closed = open_day if open_day is not None else floor
        for dim, entries in enumerate(view.segs):
            if not entries:
                continue
            kept: list[tuple[int, Any, int | None]] = []
            for d, c, t in entries:
                if d <= floor:
                    kept = [(SINCE_EVER, c, None)]
                    continue
                if d < closed:
                    t = None
                    if kept and kept[-1][1] == c:
                        continue
                kept.append((d, c, t))
            view.segs[dim] = kept
        view.newest = None

    # --- evaluation ----------------------------------------------------------------------
    def is_active(self, view: View, day: int) -> bool:
        n = view.n
        if n is None or day > n or n - day >= self.span:
            return False
        return bool((view.bits >> (n - day)) & 1)

    def last_active(self, view: View, day: int) -> int | None:
        """The last active day on or before ``day`` within the kept window (None: none there)."""
        n = view.n
        if n is None:
            return None
        if day >= n:
            return n
        shifted = view.bits >> (n - day)
        if not shifted:
            return None
        return day - ((shifted & -shifted).bit_length() - 1)

    def klass(self, view: View, day: int) -> int:
        """How the user came to be active on active day ``day``: new, returning or resurrected."""
        if day == view.f:
            return NEW
        before = self.last_active(view, day - 1)
        if before is not None and day - before <= self.dormant:
            return RETURNING
        return RESURRECTED

    def status(self, view: View, day: int) -> tuple[int | None, int | None]:
        """(lifecycle state at the end of ``day``, last active day) — (None, None) before the first."""
        f = view.f
        if f is None or day < f:
            return None, None
        last = self.last_active(view, day)
        if last is None or day - last >= self.dormant:
            return DORMANT, last
        return self.klass(view, last), last

    def evaluate(self, view: View, day: int, labels: tuple[Any, ...] | None = None) -> tuple[Membership | None, Flow | None]:
        """The user's share of ``day``'s stock figures and of its own counts (``labels``: the
        segment codes on ``day`` when the caller knows them)."""
        f = view.f
        if f is None or day < f:
            return None, None
        active = self.is_active(view, day)
        last = day if active else self.last_active(view, day)
        if last is None or day - last >= self.dormant:
            state = DORMANT
        else:
            state = self.klass(view, last)
        if labels is None:
            labels = self.labels(view, day)
        age = MAU_DAYS if last is None else day - last
        window = IN_WAU if age < WAU_DAYS else IN_MAU if age < MAU_DAYS else OUTSIDE
        if active:
            flow: Flow | None = (state, labels)
        elif last is not None and day - last == self.dormant:
            flow = (DORMANT, labels)
        else:
            flow = None
        return (state, window, labels), flow

    def membership(self, view: View, day: int) -> Membership | None:
        return self.evaluate(view, day)[0]

    def flow(self, view: View, day: int) -> Flow | None:
        return self.evaluate(view, day)[1]

    def labels(self, view: View, day: int) -> tuple[Any, ...]:
        return view.labels(day) if self.dims else ()

    def transition(self, view: View, day: int) -> tuple[int | None, int | None]:
        """(state at the end of the day before, state at the end of ``day``)."""
        return self.status(view, day - 1)[0], self.status(view, day)[0]

    # --- contributions -------------------------------------------------------------------
    def change_days(self, view: View, since: int) -> set[int]:
        """Every day >= ``since`` on which the user's membership or flow can differ from the day before."""
        days = {since}
        following = None  # active days come newest first
        longest = self._steps[-1] if self._steps[-1] > MAU_DAYS else MAU_DAYS
        for a in view.active_days():
            if a + longest < since:
                break
            for step in self._steps:
                # a's window or dormancy ends at a + step only if a is still the last active day then
                if a + step >= since and (following is None or a + step < following):
                    days.add(a + step)
            following = a
        if view.f is not None and view.f >= since:
            days.add(view.f)
        for entries in view.segs:
            for d, _, _ in entries:
                if d >= since:
                    days.add(d)
        return days

    def contribute(self, old: View | None, new: View, since: int, stock: dict[int, dict], flows: dict[int, dict]) -> None:
        """Add to the per-day deltas the difference the change ``old`` -> ``new`` makes from ``since`` on.

        ``stock[d]`` holds membership deltas effective from day ``d`` (a day's stock is the running
        sum); ``flows[d]`` holds day ``d``'s own counts. ``old`` None adds the user from ``since``
        (recovery: an anchor at ``since`` plus the later changes). The two views must agree on
        every day before ``since``.
        """
        days = self.change_days(new, since)
        if old is not None:
            days |= self.change_days(old, since)
        old_labels = self._constant_labels(old, since) if old is not None else None
        new_labels = self._constant_labels(new, since)
        prev_a = prev_b = None
        for day in sorted(days):
            a, fa = self.evaluate(old, day, old_labels) if old is not None else (None, None)
            b, fb = self.evaluate(new, day, new_labels)
            if a != prev_a or b != prev_b:
                if a != b or prev_a != prev_b:
                    bucket = stock.get(day)
                    if bucket is None:
                        bucket = stock[day] = {}
                    if b != prev_b:
                        _add(bucket, b, 1)
                        _add(bucket, prev_b, -1)
                    if a != prev_a:
                        _add(bucket, a, -1)
                        _add(bucket, prev_a, 1)
                prev_a, prev_b = a, b
            if fa != fb:
                bucket = flows.get(day)
                if bucket is None:
                    bucket = flows[day] = {}
                _add(bucket, fb, 1)
                _add(bucket, fa, -1)

    def _constant_labels(self, view: View, since: int) -> tuple[Any, ...] | None:
        """The segment codes on every day from ``since`` on, when no value changes after ``since``."""
        for entries in view.segs:
            if entries and entries[-1][0] > since:
                return None
        return self.labels(view, since)

def _add(bucket: dict, key: Any, count: int) -> None:
    if key is None:
        return
    value = bucket.get(key, 0) + count
    if value:
        bucket[key] = value
    else:
        del bucket[key]


def merge_into(total: dict, delta: dict) -> None:
    """Add one count map to another, dropping zeros (stock deltas of a day into the running stock)."""
    for key, count in delta.items():
        _add(total, key, count)
