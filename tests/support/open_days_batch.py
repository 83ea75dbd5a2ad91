"""The reference for accounts' open days (docs/health-and-risk.md#a-silence-the-account-shares),
from the definitions, over a whole event list at once, sharing no code with
streams/capabilities/account_days.py.

Per partition (users by their home partition) and account: the users who came back each day (an
activity event on a day after the user's first day, the first such event of that day, later than
any day already counted for them), and the members on each day (from the day of a user's first
event with the account until the day of an event with another). A day is open when at least
max(1, a quarter of the busiest 7-day mean of the two weeks before) came back; days before the
first return are closed. A silent user is judged by their account's days when it had at least 5
members on the day they fell silent (their last active day), else by the partition's (every user
of it), and every day is open when the partition had fewer than 5 users then.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any, Callable, Iterable

from streams.config import MS_PER_DAY
from tests.support.session_batch import is_activity, user_of

MIN_PEERS = 5
ALL = None


def _day(ms: int) -> int:
    return ms // MS_PER_DAY


class OpenDays:
    """Open days of every (partition, account) group, from the events in feed order."""

    def __init__(self, events: Iterable[dict[str, Any]], partition_of: Callable[[str], int]) -> None:
        self.returns: dict[tuple[int, Any], dict[int, int]] = defaultdict(lambda: defaultdict(int))
        self.moves: dict[tuple[int, Any], list[tuple[int, int]]] = defaultdict(list)
        self.partition_of = partition_of
        first: dict[str, int] = {}
        account: dict[str, str | None] = {}
        counted: dict[str, int] = {}
        for doc in events:
            user = user_of(doc)
            p = partition_of(user)
            day = _day(doc["timestamp"])
            if user not in first:
                self.moves[(p, ALL)].append((day, 1))
            first[user] = min(first.get(user, doc["timestamp"]), doc["timestamp"])
            current = doc.get("account_id") or account.get(user)
            if doc.get("account_id") and doc["account_id"] != account.get(user):
                if account.get(user):
                    self.moves[(p, account[user])].append((day, -1))
                self.moves[(p, doc["account_id"])].append((day, 1))
                account[user] = doc["account_id"]
            if is_activity(doc) and day > _day(first[user]) and day > counted.get(user, -1):
                counted[user] = day
                self.returns[(p, ALL)][day] += 1
                if current:
                    self.returns[(p, current)][day] += 1

    def members(self, group: tuple[int, Any], day: int) -> int:
        return sum(n for d, n in self.moves.get(group, ()) if d <= day)

    def is_open(self, group: tuple[int, Any], day: int) -> bool:
        counts = self.returns.get(group, {})
        if not counts or day < min(counts):
            return False
        typical = max(sum(counts.get(w - k, 0) for k in range(7)) / 7 for w in range(day - 14, day))
        return counts.get(day, 0) >= max(1.0, 0.25 * typical)

    def open_days(self, user: str, account: str | None, lo: int, hi: int, day: int) -> int:
        """Days within lo..hi on which the user's group (chosen by the members of ``day``) was open."""
        p = self.partition_of(user)
        group = (p, account) if account and self.members((p, account), day) >= MIN_PEERS else (p, ALL)
        if self.members((p, ALL), day) < MIN_PEERS:
            return max(0, hi - lo + 1)
        return sum(1 for d in range(lo, hi + 1) if self.is_open(group, d))
