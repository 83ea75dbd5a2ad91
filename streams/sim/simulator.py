"""A synthetic B2B product: deterministic, realistic event streams for the demo, bench, backtest, tests.

A population of users in accounts (with seats) behaves in classes: engaged (daily use), casual
(a weekly habit), churning (normal, then decaying over 2-3 weeks with cancel / downgrade intent,
then silent), resurrecting (a dormant gap, then back), plus users joining during the period
(onboarding). Sessions are bursts of page / screen views, ``page_ping`` heartbeats every 30-60 s
while active, feature use and core actions, separated by gaps longer than 30 minutes.

Usage::

    config = SimulationConfig(users=2000, days=35, seed=7)
    for doc in simulate(config, max_events=200_000): ...      # event documents, event-time order
    churn_labels(config)                                        # [(user_id, churned_at_ms), ...]
    feed = EventFeed(config); history = feed.until(now_ms)     # pull "events before T", repeatedly

The same seed gives the same events, ids included. Generation is day by day: each day's
events are produced per user, sorted, and released once no later day can produce anything
earlier (a local day starts at most ``MAX_AHEAD_MS`` before its UTC day), so memory holds about
one day of events whatever the length of the run.
"""

from __future__ import annotations

import time
from bisect import bisect_left
from dataclasses import dataclass
from datetime import datetime, timezone
from operator import itemgetter
from typing import Any, Callable, Iterator, NamedTuple

from streams.config import MS_PER_DAY, MS_PER_SECOND
from streams.sim.catalog import MAX_AHEAD_MS
from streams.sim.population import Item, Shape, SimUser, build_population

#: Default first day: a fixed date, so a run without --start is reproducible (a Monday).
DEFAULT_START = "2026-01-05"
DEFAULT_START_MS = int(datetime.fromisoformat(DEFAULT_START).replace(tzinfo=timezone.utc).timestamp() * 1000)

_ts = itemgetter(0)


@dataclass(frozen=True)
class SimulationConfig:
    """What to simulate: who (users, accounts, behaviour shares), when (start, days), which dice (seed)."""

    users: int = 2000
    seed: int = 7
    start_ms: int = DEFAULT_START_MS
    """First instant simulated (epoch ms, UTC); day boundaries follow UTC midnights."""
    days: int = 35
    accounts: int = 0
    """Number of accounts; 0 means one per 8 users."""
    engaged: float = 0.40
    casual: float = 0.35
    churning: float = 0.20
    resurrecting: float = 0.05
    new_users: float = 0.10
    """Share of users (taken from engaged and casual ones) who join during the period."""
    sparse: bool = False
    """A sparse product instead of the dense one (:mod:`streams.sim.sparse`: a few short visits a
    week, long silences, short lives); the behaviour shares above do not apply then."""
    cohorts: bool = False
    """Accounts that sign their users up weeks ahead, start together and pause together
    (:mod:`streams.sim.cohorts`); the behaviour shares above do not apply then."""

    def __post_init__(self) -> None:
        for name in ("users", "days"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name}: must be greater than 0, got {getattr(self, name)}")
        if self.accounts < 0:
            raise ValueError(f"accounts: must not be negative, got {self.accounts}")
        for name in ("engaged", "casual", "churning", "resurrecting", "new_users"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name}: must be a share between 0 and 1, got {getattr(self, name)}")
        if self.sparse and self.cohorts:
            raise ValueError("sparse and cohorts: choose one product")
        total = self.engaged + self.casual + self.churning + self.resurrecting
        if abs(total - 1.0) > 1e-6:
            raise ValueError(f"engaged + casual + churning + resurrecting: must add up to 1, got {total:g}")

    @property
    def end_ms(self) -> int:
        """First instant after the simulated period."""
        return self.start_ms + self.days * MS_PER_DAY

    def shape(self) -> Shape:
        return Shape(users=self.users, accounts=self.accounts or max(1, self.users // 8), days=self.days,
                     seed=self.seed, shares=(self.engaged, self.casual, self.churning, self.resurrecting),
                     new_users=self.new_users, sparse=self.sparse, cohorts=self.cohorts)



class IsoTime:
    """RFC 3339 UTC strings with milliseconds ('2026-01-05T09:14:03.250Z'), fast.

    ``datetime`` formatting costs ~1.5 us per event; this costs a dict hit and two list
    look-ups: the date part is cached per day, the time-of-day part comes from tables.
    """

    _tables: tuple[list[str], list[str]] | None = None

    @classmethod
    def tables(cls) -> tuple[list[str], list[str]]:
        """('HH:MM:SS.' for every second of a day, 'mmmZ' for every millisecond)."""
        if cls._tables is None:
            sixty = [f"{n:02d}" for n in range(60)]
            cls._tables = ([f"{h}:{m}:{s}." for h in sixty[:24] for m in sixty for s in sixty],
                           [f"{ms:03d}Z" for ms in range(1000)])
        return cls._tables

    @staticmethod
    def date(day: int) -> str:
        """'YYYY-MM-DDT' of a day counted from the epoch."""
        return datetime.fromtimestamp(day * 86400, timezone.utc).strftime("%Y-%m-%dT")

    def __init__(self) -> None:
        self._seconds, self._millis = self.tables()
        self._dates: dict[int, str] = {}

    def __call__(self, ms: int) -> str:
        day, rest = divmod(ms, MS_PER_DAY)
        date = self._dates.get(day) or self._dates.setdefault(day, self.date(day))
        return date + self._seconds[rest // MS_PER_SECOND] + self._millis[rest % MS_PER_SECOND]


def _ordered(users: list[SimUser], config: SimulationConfig) -> Iterator[Item]:
    """Every user's items in event-time order (stable: a user's own order is kept on ties)."""
    start, end = config.start_ms, config.end_ms
    first, last = start // MS_PER_DAY, (end - 1) // MS_PER_DAY
    pending: list[Item] = []
    for cal in range(first, last + 1):
        day, weekday, day_start = cal - first, (cal + 3) % 7, cal * MS_PER_DAY  # 1970-01-01 was a Thursday
        for user in users:
            user.day(day, weekday, day_start, start, pending)
        pending.sort(key=_ts)
        # Nothing produced for a later local day can be earlier than the next UTC day minus the
        # largest time-zone lead, so everything before that is final.
        release = min(end, day_start + MS_PER_DAY - MAX_AHEAD_MS) if cal < last else end
        cut = bisect_left(pending, release, key=_ts)
        yield from pending[:cut]
        del pending[:cut]


def timed_events(config: SimulationConfig, until_ms: int | None = None,
                 max_events: int | None = None) -> Iterator[tuple[int, dict[str, Any]]]:
    """(event time in epoch ms, event document) pairs in event-time order; see :func:`simulate`."""
    if max_events is not None and max_events <= 0:
        return
    users = build_population(config.shape())
    dates: dict[int, str] = {}
    seconds, millis = IsoTime.tables()
    prefix = f"s{config.seed}-"
    limit = config.end_ms if until_ms is None else min(until_ms, config.end_ms)
    remaining = -1 if max_events is None else max_events
    for ts, uid, kind, name, payload in _ordered(users, config):
        if ts >= limit:
            return
        user = users[uid]
        user.seq += 1
        day, rest = divmod(ts, MS_PER_DAY)  # IsoTime.__call__, inlined: this loop runs per event
        date = dates.get(day) or dates.setdefault(day, IsoTime.date(day))
        stamp = date + seconds[rest // MS_PER_SECOND] + millis[rest % MS_PER_SECOND]
        # Payloads are built fresh per item; the per-user context is shared, so it is copied.
        if name is not None:
            doc = {"event_id": f"{prefix}{uid}-{ts:x}-{user.seq}", "type": kind, "event": name,
                   "user_id": user.id, "account_id": user.account.id, "timestamp": stamp,
                   "properties": payload, "context": user.context.copy()}
        else:
            doc = {"event_id": f"{prefix}{uid}-{ts:x}-{user.seq}", "type": kind,
                   "user_id": user.id, "account_id": user.account.id, "timestamp": stamp,
                   "traits": payload, "context": user.context.copy()}
        yield ts, doc
        remaining -= 1
        if remaining == 0:
            return


def simulate(config: SimulationConfig, until_ms: int | None = None,
             max_events: int | None = None) -> Iterator[dict[str, Any]]:
    """Event documents valid against ``schemas/event.schema.json``, in event-time order.

    ``until_ms`` stops before that event time, ``max_events`` after that many events; either
    way the output is an exact prefix of the full run. Documents are fresh dicts: safe to change.
    """
    for _, doc in timed_events(config, until_ms, max_events):
        yield doc


def churn_labels(config: SimulationConfig, until_ms: int | None = None) -> list[tuple[str, int]]:
    """(user_id, churned_at_ms) for every user the simulator makes churn, by churn time.

    ``churned_at`` is the time of the user's last event: nothing follows it. Only churners with
    at least one event in the period (before ``until_ms`` when given) are listed. Computed by
    replaying the churners alone, which their private random generators make exact.
    """
    churners = [u for u in build_population(config.shape()) if u.churn_day is not None]
    limit = config.end_ms if until_ms is None else min(until_ms, config.end_ms)
    last: dict[int, int] = {}
    for ts, uid, *_ in _ordered(churners, config):
        if ts >= config.end_ms:
            break
        last[uid] = ts
    by_index = {u.index: u for u in churners}
    return sorted(((by_index[uid].id, ts) for uid, ts in last.items() if ts < limit),
                  key=lambda label: (label[1], label[0]))


class Member(NamedTuple):
    """Who a simulated user is: the ground truth tests and the backtest compare against."""

    user_id: str
    account_id: str
    kind: str
    """engaged, casual, churning or resurrecting."""
    join_day: int
    """Day index (from the start) the user joins on; 0 for users there from the start."""


def roster(config: SimulationConfig) -> list[Member]:
    """Every simulated user with account, behaviour class and join day."""
    return [Member(u.id, u.account.id, u.kind, u.join_day) for u in build_population(config.shape())]


class EventFeed:
    """A simulation pulled in pieces: "every event before simulated time T", repeatedly.

    The demo replays history with ``feed.until(history_end)`` as fast as it can, then calls
    ``feed.until(clock.now_ms())`` on a :class:`SimClock` to keep a live product going.
    """

    def __init__(self, config: SimulationConfig) -> None:
        self._events = timed_events(config)
        self._head: tuple[int, dict[str, Any]] | None = next(self._events, None)

    @property
    def next_ms(self) -> int | None:
        """Event time of the next event not yet pulled (None when the simulation is over)."""
        return None if self._head is None else self._head[0]

    @property
    def exhausted(self) -> bool:
        return self._head is None

    def until(self, t_ms: int) -> Iterator[dict[str, Any]]:
        """Yield the events with event time before ``t_ms`` not pulled yet (lazily: fine for history)."""
        while self._head is not None and self._head[0] < t_ms:
            doc = self._head[1]
            self._head = next(self._events, None)
            yield doc


class SimClock:
    """Simulated time: starts at ``start_ms`` and runs ``speed`` simulated seconds per real second."""

    def __init__(self, start_ms: int, speed: float, wall: Callable[[], float] = time.monotonic) -> None:
        if speed <= 0:
            raise ValueError(f"speed: must be greater than 0, got {speed}")
        self.start_ms = start_ms
        self.speed = speed
        self._wall = wall
        self._origin = wall()

    def now_ms(self) -> int:
        return self.start_ms + int((self._wall() - self._origin) * self.speed * MS_PER_SECOND)


def live(feed: EventFeed, clock: SimClock, tick_s: float = 0.5,
         sleep: Callable[[float], None] = time.sleep) -> Iterator[tuple[int, list[dict[str, Any]]]]:
    """(simulated now, events that became due) every ``tick_s`` real seconds until the feed ends.

    Blocking; an asyncio caller does the same with ``feed.until(clock.now_ms())`` and
    ``asyncio.sleep``.
    """
    while not feed.exhausted:
        now = clock.now_ms()
        yield now, list(feed.until(now))
        sleep(tick_s)


def rfc3339(ms: int) -> str:
    """One epoch-ms instant as the simulator writes it ('2026-01-05T09:14:03.250Z')."""
    return IsoTime()(ms)
