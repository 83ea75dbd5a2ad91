"""Which days an account was open: so that a silence the whole account shares is not a user's silence.

Accounts sign their users up weeks before they start using the product together, and pause
together (a holiday, a course between terms). A user silent through such days is not drifting
away: everyone they work with was silent too. So churn risk counts a user's silence in the days
their account was *open*, and a label of the risk model's "churned after a long silence" needs
the account to have been open meanwhile.

Per account (of this partition's users), the number of its users who *came back* each day
(active on a day after their first one: a sign-up alone does not open an account). A finished
day is **open** when at least ``max(1, OPEN_SHARE x typical)`` users came back, ``typical`` being
the account's busiest 7-day mean in the two weeks before: a day with a quarter of the usual
returns is open, a holiday's near-empty days are not, a course fading as learners drop out stays
open. The days before an account's first return (between sign-ups and the start) are closed.

Accounts with fewer than ``MIN_PEERS`` users in the partition on the day judged are judged by the
partition as a whole (a handful of users says little about an account's days); so are users
without an account. A user counts for an account from the day of their first event with it (until
the day of an event with another). Each partition keeps its own counts of its own users: a uniform
sample of every account, the same however many workers share the partitions. A partition with
fewer than ``MIN_PEERS`` users has no peers to judge by: every day counts as open.

Counts are final once the day is judged (the watermark has passed the day's end plus the settle
time, so later events for it are late), and a day's open flag is worked out the first time it is
asked for after that: the same whatever order users are judged in. Everything lives in one
reserved record of the partition, written with the user records at each commit.
"""

from __future__ import annotations

from typing import Any

from streams.config import MIN_PEERS

#: A finished day is open with at least this share of the account's typical daily returns.
OPEN_SHARE = 0.25
TYPICAL_DAYS = 7
TYPICAL_SPAN = 14
#: Days of open flags and counts kept (the longest silence judged is the engagement horizon).
KEEP_DAYS = 63
ALL = ""
"""The partition-wide group (users without an account, accounts too small to judge)."""


def _pairs(flat: list[int]) -> dict[int, int]:
    return {flat[i]: flat[i + 1] for i in range(0, len(flat), 2)}


def _flat(pairs: dict[int, int]) -> list[int]:
    return [v for day in sorted(pairs) for v in (day, pairs[day])]


class Group:
    """One account's daily returns and open flags (bit ``i`` of ``open``: day ``base - i``), and
    its members by day (``moves``: users joining, or leaving, on a day)."""

    __slots__ = ("members", "moves", "counts", "base", "open", "final")

    def __init__(self, rec: list[Any] | None = None) -> None:
        self.members = 0
        """Members before the oldest day in ``moves``."""
        self.moves: dict[int, int] = {}
        self.counts: dict[int, int] = {}
        self.base: int | None = None
        self.open = 0
        self.final: int | None = None
        """The last day whose flag is worked out."""
        if rec:
            self.members, moves, counts, self.base, self.open, self.final = rec
            self.moves, self.counts = _pairs(moves), _pairs(counts)

    def dump(self) -> list[Any]:
        return [self.members, _flat(self.moves), _flat(self.counts), self.base, self.open, self.final]

    def move(self, day: int, n: int) -> None:
        self.moves[day] = self.moves.get(day, 0) + n

    def members_on(self, day: int) -> int:
        return self.members + sum(n for d, n in self.moves.items() if d <= day)

    def finish(self, upto: int) -> None:
        """Work out the open flags of every day up to ``upto`` (their counts are final)."""
        first = min(self.counts, default=None)
        if first is None:
            return
        day = first if self.final is None else self.final + 1
        if day > upto:
            return
        if self.base is None:
            self.base = day - 1
        for d in range(day, upto + 1):
            count = self.counts.get(d, 0)
            typical = max((sum(self.counts.get(w - k, 0) for k in range(TYPICAL_DAYS)) / TYPICAL_DAYS
                           for w in range(d - TYPICAL_SPAN, d)), default=0.0)
            shift = d - self.base
            self.open = (self.open << shift) & ((1 << KEEP_DAYS) - 1)
            self.base = d
            if count >= max(1.0, OPEN_SHARE * typical):
                self.open |= 1
        self.final = upto
        for old in [d for d in self.counts if d < upto - TYPICAL_SPAN - TYPICAL_DAYS]:
            del self.counts[old]  # no longer needed for a typical day
        for old in [d for d in self.moves if d < upto - KEEP_DAYS]:
            self.members += self.moves.pop(old)  # no day that old is judged any more

    def open_days(self, lo: int, hi: int) -> int:
        """Open days within ``lo..hi`` (finished days only; days before the first return are closed)."""
        if self.base is None or hi < lo:
            return 0
        hi = min(hi, self.base)
        if hi < lo:
            return 0
        young, old = self.base - hi, min(self.base - lo, KEEP_DAYS - 1)
        if old < young:
            return 0
        return ((self.open >> young) & ((1 << (old - young + 1)) - 1)).bit_count()


class AccountDays:
    """The open days of every account of one partition (and of the partition as a whole)."""

    def __init__(self, rec: dict[str, Any] | None = None) -> None:
        self.groups: dict[str, Group] = {key: Group(value) for key, value in (rec or {}).items()}
        self.groups.setdefault(ALL, Group())

    def dump(self) -> dict[str, Any]:
        return {key: group.dump() for key, group in self.groups.items()}

    def _group(self, account: str) -> Group:
        group = self.groups.get(account)
        if group is None:
            group = self.groups[account] = Group()
        return group

    def arrived(self, day: int) -> None:
        """A user of this partition seen for the first time, on ``day``."""
        self.groups[ALL].move(day, 1)

    def joined(self, account: str | None, previous: str | None, day: int) -> None:
        """A user counts under ``account`` from ``day`` on (under ``previous`` before; None: none)."""
        if previous == account:
            return
        if previous:
            self._group(previous).move(day, -1)
        if account:
            self._group(account).move(day, 1)

    def returned(self, account: str | None, day: int) -> None:
        """A user came back on ``day`` (their first activity that day, not their first day)."""
        for key in (ALL, account) if account else (ALL,):
            counts = self._group(key).counts
            counts[day] = counts.get(day, 0) + 1

    def group(self, account: str | None, day: int) -> Group:
        """The group judging a user of ``account`` on ``day``: the account when it has enough users
        here that day."""
        group = self.groups.get(account) if account else None
        return group if group is not None and group.members_on(day) >= MIN_PEERS else self.groups[ALL]

    def open_days(self, account: str | None, lo: int, hi: int, day: int | None = None) -> int:
        """Days within ``lo..hi`` on which the user's group (as of ``day``, default ``hi``) was open;
        ``hi`` must be a finished day (judged: no event of it can still arrive)."""
        group = self.group(account, hi if day is None else day)
        if group.members_on(hi if day is None else day) < MIN_PEERS:  # the partition itself is too small
            return max(0, hi - lo + 1)
        group.finish(hi)
        return group.open_days(lo, hi)
