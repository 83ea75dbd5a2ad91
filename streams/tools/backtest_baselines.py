"""The backtest's baselines: what a team gets without the pipeline, computed from the same events in
the same run, so the pipeline's figures have something to beat.

* **flag everyone at once**: every user is flagged at their first event and stays flagged (its
  current risk is the same for everyone: AUC 0.5);
* **no activity for 7 days**: flagged once 7 days have passed since the user's last activity event
  (track, page or screen), until their next one;
* **bottom 20% of the account**: at the end of each day, the user's active days in the last 14
  days rank in the bottom 20% of their account (mid-rank percentile, ties sharing, as the
  engagement score's peers). The account's members that day are its users active within the
  ``window_days`` before (users without an account form one group).

Each baseline's current risk at a checkpoint is its flag (1 or 0), as the rule states it. Two
rankings are reported beside them, for reference: the days since the last activity and the
14-day activity's percentile within the account, as continuous scores (what the flags cut).

The baselines share no code with the pipeline (its percentiles included): a yardstick must not
move with what it measures.
"""

from __future__ import annotations

import bisect
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Callable

from streams.config import MS_PER_DAY
from streams.core.calendar import DayClock
from streams.tools.backtest_input import Histories
from streams.tools.backtest_scoring import Flag

SILENT_DAYS = 7
RECENT_DAYS = 14
BOTTOM_SHARE = 0.2


@dataclass
class Baseline:
    """A predictor: its flag episodes per user and its current risk at the end of a day."""

    name: str
    flags: dict[str, list[Flag]] | None
    """None: a ranking only (no flags)."""
    risk: Callable[[str, int], float]


def everyone(histories: Histories, clock: DayClock) -> Baseline:
    flags = {user: [Flag(h.first_ms, clock.day(h.first_ms))] for user, h in histories.users.items()}
    return Baseline("everyone, at once", flags, lambda user, day: 1.0)


class Silence:
    """Days since each user's last activity, at the end of any day."""

    def __init__(self, histories: Histories, clock: DayClock) -> None:
        self.histories = histories
        self.clock = clock

    def days(self, user: str, day: int) -> float:
        history = self.histories.users[user]
        at = self.clock.end(day)
        index = bisect.bisect_left(history.activity, at) - 1
        since = history.activity[index] if index >= 0 else history.first_ms
        return max(0.0, (at - since) / MS_PER_DAY)


def silent(histories: Histories, clock: DayClock, days: float = SILENT_DAYS) -> tuple[Baseline, Baseline]:
    """The flag rule and the ranking by days of silence."""
    gap = int(days * MS_PER_DAY)
    end = histories.last_ms or 0
    flags: dict[str, list[Flag]] = {}
    for user, history in histories.users.items():
        times = history.activity
        own: list[Flag] = []
        for a, b in zip(times, times[1:]):
            if b - a >= gap:
                own.append(Flag(a + gap, clock.day(a + gap), b))
        if times and end - times[-1] >= gap:
            own.append(Flag(times[-1] + gap, clock.day(times[-1] + gap)))
        if own:
            flags[user] = own
    silence = Silence(histories, clock)
    rule = Baseline(f"no activity for {days:g} days", flags,
                    lambda user, day: 1.0 if silence.days(user, day) >= days else 0.0)
    return rule, Baseline("  ranking: days since last activity", None, silence.days)


@dataclass
class _Episode:
    start_ms: int
    start_day: int


@dataclass
class _Sweep:
    """Per day: members of each account, their activity over the recent days, their percentiles."""

    members: dict[str, set[str]] = field(default_factory=lambda: defaultdict(set))
    window: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    recent: dict[str, int] = field(default_factory=lambda: defaultdict(int))


def bottom_of_account(histories: Histories, clock: DayClock, window_days: float,
                      wanted: set[int], days: int = RECENT_DAYS,
                      share: float = BOTTOM_SHARE) -> tuple[Baseline, Baseline]:
    """The flag rule and the ranking by 14-day activity percentile within the account; percentiles
    are kept for the days in ``wanted`` (the checkpoints) only."""
    active: dict[int, list[str]] = defaultdict(list)
    account: dict[str, str] = {}
    for user, history in histories.users.items():
        account[user] = history.account or ""
        for day in sorted({clock.day(ts) for ts in history.activity}):
            active[day].append(user)
    flags: dict[str, list[Flag]] = {}
    percentiles: dict[tuple[str, int], float] = {}
    if not active:
        return (Baseline(f"bottom {share:.0%} of the account", flags, lambda u, d: 0.0),
                Baseline(f"  ranking: {days}-day activity percentile", None, lambda u, d: 0.0))
    window = max(1, int(window_days))
    sweep = _Sweep()
    open_: dict[str, _Episode] = {}
    first, last = min(active), clock.day(histories.last_ms or 0)
    for day in range(first, last + 1):
        for user in active.get(day, ()):
            if sweep.window[user] == 0:
                sweep.members[account[user]].add(user)
            sweep.window[user] += 1
            sweep.recent[user] += 1
        for user in active.get(day - days, ()):
            sweep.recent[user] -= 1
        for user in active.get(day - window, ()):
            sweep.window[user] -= 1
            if sweep.window[user] == 0:
                sweep.members[account[user]].discard(user)
        flagged: set[str] = set()
        for group in sweep.members.values():
            ranks = _midranks({user: sweep.recent[user] for user in group})
            for user, rank in ranks.items():
                if rank < share:
                    flagged.add(user)
                if day in wanted:
                    percentiles[(user, day)] = rank
        at = clock.end(day)
        for user in flagged:
            if user not in open_:
                open_[user] = _Episode(at, day)
        for user in [u for u in open_ if u not in flagged]:
            episode = open_.pop(user)
            flags.setdefault(user, []).append(Flag(episode.start_ms, episode.start_day, at))
    for user, episode in open_.items():
        flags.setdefault(user, []).append(Flag(episode.start_ms, episode.start_day))
    rule = Baseline(f"bottom {share:.0%} of the account", flags,
                    lambda user, day: 1.0 if percentiles.get((user, day), 1.0) < share else 0.0)
    ranking = Baseline(f"  ranking: {days}-day activity percentile", None,
                       lambda user, day: 1.0 - percentiles.get((user, day), 1.0))
    return rule, ranking


def _midranks(values: dict[str, int]) -> dict[str, float]:
    """Mid-rank percentile of each value among all: (below + half the ties) / n."""
    n = len(values)
    counts: dict[int, int] = defaultdict(int)
    for value in values.values():
        counts[value] += 1
    below, rank = 0, {}
    for value in sorted(counts):
        rank[value] = (below + counts[value] / 2) / n
        below += counts[value]
    return {user: rank[value] for user, value in values.items()}
