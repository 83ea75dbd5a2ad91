"""The simulated population: accounts with seats, and users whose habits produce their days.

Each user owns a private random generator seeded from (seed, user index), so a user's events
depend on nothing but the seed, the population's shape and that user: the churn labels can be
computed by replaying the churners alone, and a run stopped early (``max_events``) is an exact
prefix of the full run. Events are produced as compact tuples
``(ts_ms, user_index, type, name, payload)``; :mod:`streams.sim.simulator` orders them and turns
them into event documents.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from itertools import accumulate
from random import Random
from typing import Any, Sequence

from streams.config import MS_PER_DAY, MS_PER_HOUR, MS_PER_MINUTE, MS_PER_SECOND
from streams.sim.catalog import (
    ACCOUNT_WORDS,
    CORE_ACTION_FEATURE,
    COUNTRIES,
    COUNTRY_OFFSET_MS,
    ENTRY_PAGES,
    ESCALATION_EVENT,
    FEATURE_ADOPTION,
    FEATURE_EVENT,
    FEATURE_PAGE,
    HEARTBEAT_EVENT,
    IDLE_PAUSE_MS,
    NEGATIVE_EVENTS,
    ONBOARDING_EVENT,
    ONBOARDING_STEPS,
    PAGE_DECK,
    PING_MS,
    PLANS,
    PLATFORMS,
    SESSION_GAP_MS,
    SESSION_MS,
    SIGNUP_EVENT,
    START_HOUR_WEIGHTS,
)

Item = tuple[int, int, str, Any, dict[str, Any]]

KINDS = ("engaged", "casual", "churning", "resurrecting")

#: Weekly rhythm: chance of being active on Mon..Sun. Engaged users work daily; casual users
#: come back on a favourite weekday (a weekly-use habit) and rarely otherwise.
ENGAGED_WEEK = (0.88, 0.88, 0.88, 0.88, 0.82, 0.25, 0.2)
CASUAL_FAVOURITE_P, CASUAL_OTHER_P = 0.8, 0.05
#: Mean extra sessions on an active day, median session length, share of heartbeat slots
#: that are actions, and share of actions that are core actions.
HABITS = {
    "engaged": (0.7, 16 * MS_PER_MINUTE, 0.22, 0.35),
    "casual": (0.1, 9 * MS_PER_MINUTE, 0.15, 0.2),
}
CORE_WEIGHTS = {"report_created": 0.45, "dashboard_shared": 0.27, "export_completed": 0.22,
                "invite_sent": 0.06}
#: Churners: two weeks of normal use at least, then activity decays over 14-21 days.
CHURN_NORMAL_DAYS = 14
CHURN_DECAY_DAYS = (14, 21)
CHURN_FLOOR = 0.06
#: Resurrecting users go quiet for 14-24 days (longer than the default dormancy of 14 days).
DORMANT_DAYS = (14, 24)
#: Share of users who switch platform once during the period (sent as a new identify).
PLATFORM_SWITCH_P = 0.05
#: Share of accounts whose seat count changes once, and share marked at risk (churn clusters).
SEAT_CHANGE_P = 0.15
AT_RISK_ACCOUNT_P = 0.15
AT_RISK_WEIGHT = 6.0
ESCALATION_P = (0.004, 0.08)  # per session: steady users, decaying churners

_HOURS = tuple(range(24))
_HOUR_CUM = tuple(accumulate(START_HOUR_WEIGHTS))
_PLATFORM_NAMES, _PLATFORM_CUM = tuple(PLATFORMS), tuple(accumulate(PLATFORMS.values()))
_COUNTRY_NAMES = tuple(COUNTRIES)
_COUNTRY_CUM = tuple(accumulate(share for share, _ in COUNTRIES.values()))
_CORE_CUM = tuple(accumulate(CORE_WEIGHTS.values()))
_CORE_NAMES = tuple(CORE_WEIGHTS)


class SimAccount:
    """A B2B account: name, plan, seats it pays for, and possibly one change of seats."""

    __slots__ = ("index", "id", "name", "plan", "country", "seats", "new_seats", "change_day", "users")

    def __init__(self, index: int, name: str, plan: str, country: str, seats: int,
                 change_day: int | None, new_seats: int) -> None:
        self.index = index
        self.id = f"acct-{index}"
        self.name = name
        self.plan = plan
        self.country = country
        self.seats = seats
        self.change_day = change_day
        self.new_seats = new_seats
        self.users = 0

    def version(self, day: int) -> int:
        """0 before the seat change, 1 after: users re-send ``group`` when it moves."""
        return 1 if self.change_day is not None and day >= self.change_day else 0

    def traits(self, version: int) -> dict[str, Any]:
        return {"name": self.name, "plan": self.plan, "seats": self.new_seats if version else self.seats}


class SimUser:
    """One user: fixed traits and plans (kind, join, churn, dormancy) plus the state of the run."""

    __slots__ = ("index", "id", "account", "kind", "rng", "week", "extra_p", "median_ms",
                 "action_p", "core_p", "features", "core_names", "core_cum", "platform", "country",
                 "offset_ms", "join_day", "churn_day", "decay_days", "dormant", "switch",
                 "last_ts", "identified", "group_version", "context", "page_type", "seq")

    def __init__(self, index: int, seed: int, account: SimAccount, kind: str, days: int,
                 join_day: int) -> None:
        rng = self.rng = Random(f"user:{seed}:{index}")
        self.index = index
        self.id = f"user-{index}"
        self.account = account
        self.kind = kind
        self.join_day = join_day
        base = "casual" if kind == "casual" else "engaged"
        factor = rng.uniform(0.8, 1.15)
        if base == "engaged":
            self.week = tuple(min(0.97, p * factor) for p in ENGAGED_WEEK)
        else:
            favourite = rng.randrange(5)
            self.week = tuple(min(0.97, (CASUAL_FAVOURITE_P if d == favourite else CASUAL_OTHER_P) * factor)
                              for d in range(7))
        extra, median, action_p, core_share = HABITS[base]
        self.extra_p = extra / (1 + extra)  # geometric number of extra sessions with that mean
        self.median_ms = median * rng.uniform(0.7, 1.4)
        self.action_p = action_p
        self.core_p = core_share
        adopted = [f for f, share in FEATURE_ADOPTION.items() if rng.random() < share] or ["reports"]
        self.features = tuple(adopted)
        names = [n for n in _CORE_NAMES if CORE_ACTION_FEATURE[n] in adopted or CORE_ACTION_FEATURE[n] is None]
        self.core_names = tuple(names)
        self.core_cum = tuple(accumulate(CORE_WEIGHTS[n] for n in names))
        self.platform = rng.choices(_PLATFORM_NAMES, cum_weights=_PLATFORM_CUM)[0]
        self.country = (account.country if rng.random() < 0.85
                        else rng.choices(_COUNTRY_NAMES, cum_weights=_COUNTRY_CUM)[0])
        self.offset_ms = COUNTRY_OFFSET_MS[self.country]
        self.churn_day: int | None = None
        self.decay_days = 0
        self.dormant: tuple[int, int] | None = None
        if kind == "churning":
            self.churn_day, self.decay_days = _churn_plan(rng, days)
        elif kind == "resurrecting":
            gap = rng.randint(*DORMANT_DAYS)
            if days - gap - 4 >= 7:
                begin = rng.randint(7, days - gap - 4)
                self.dormant = (begin, begin + gap)
        self.switch: tuple[int, str] | None = None
        if days > 2 and rng.random() < PLATFORM_SWITCH_P:
            other = [p for p in _PLATFORM_NAMES if p != self.platform]
            self.switch = (rng.randint(max(join_day, 1), days - 1), rng.choice(other))
        # state of the run
        self.last_ts = -MS_PER_DAY
        self.identified = False
        self.group_version = -1
        self.seq = 0
        self._set_platform(self.platform)

    def _set_platform(self, platform: str) -> None:
        self.platform = platform
        self.page_type = "page" if platform == "web" else "screen"
        self.context = {"platform": platform, "country": self.country}

    def identify_traits(self) -> dict[str, Any]:
        return {"plan": self.account.plan, "platform": self.platform, "country": self.country}

    # --- behaviour --------------------------------------------------------------------

    def intensity(self, day: int) -> float:
        """How strongly the user uses the product on ``day``: 0 (absent) .. 1.2 (onboarding).

        A churner's intensity falls from 1 to ``CHURN_FLOOR`` over the decay days, fastest at first.
        """
        if day < self.join_day:
            return 0.0
        if self.churn_day is not None:
            left = self.churn_day - day
            if left <= 0:
                return 0.0
            if left <= self.decay_days:
                return max(CHURN_FLOOR, ((left - 1) / self.decay_days) ** 1.5)
        if self.dormant is not None and self.dormant[0] <= day < self.dormant[1]:
            return 0.0
        if self.join_day and day - self.join_day < 7:
            return 1.2
        return 1.0

    def day(self, day: int, weekday: int, day_start_ms: int, start_ms: int, out: list[Item]) -> None:
        """Append this user's events of local calendar day ``day`` (UTC midnight ``day_start_ms``).

        A decaying churner still comes now and then (a quarter of the usual days at the end,
        with short, shallow sessions), and comes a last time the day before the churn day,
        often to look at billing: so ``churned_at`` (the last event) is the end of the decay.
        """
        intensity = self.intensity(day)
        if intensity <= 0.0:
            return
        rng = self.rng
        use = min(intensity, 1.0)
        onboarding = day == self.join_day and self.join_day > 0
        farewell = self.churn_day is not None and day == self.churn_day - 1
        frequency = 0.25 + 0.75 * use if self.churn_day is not None else use
        if not (onboarding or farewell) and rng.random() >= self.week[weekday] * frequency:
            return
        sessions = 1
        extra_p = self.extra_p * use
        while rng.random() < extra_p and not farewell:
            sessions += 1
        local_start = day_start_ms - self.offset_ms
        hours = rng.choices(_HOURS, cum_weights=_HOUR_CUM, k=sessions)
        starts = sorted(local_start + hour * MS_PER_HOUR + int(rng.random() * MS_PER_HOUR) for hour in hours)
        for begin in starts:
            floor = self.last_ts + SESSION_GAP_MS
            if begin < floor:  # still in (or just after) the previous session: come back later
                begin = floor + int(rng.random() * 2 * MS_PER_HOUR)
            if begin < start_ms:
                continue
            self.last_ts = self._session(begin, day, use, onboarding, farewell, out)
            onboarding = False

    def _session(self, t: int, day: int, intensity: float, onboarding: bool, farewell: bool,
                 out: list[Item]) -> int:
        """One session from ``t``: page views, heartbeats while active, actions; returns its end.

        The hot loop draws with ``random()`` and arithmetic: ``randint``/``choice`` cost ~1 us
        each, which at several draws per event was most of the generation time.
        """
        rng = self.rng
        rand = rng.random
        uid = self.index
        t = self._arrive(t, day, onboarding, out)
        if onboarding:
            for step in range(1, 2 + int(rand() * (ONBOARDING_STEPS - 1)) + 1):
                t += 20 * MS_PER_SECOND + int(rand() * 70 * MS_PER_SECOND)
                out.append((t, uid, "track", ONBOARDING_EVENT, {"step": step}))
        low, high = SESSION_MS
        use = min(intensity, 1.0)
        length = rng.lognormvariate(math.log(self.median_ms), 0.6) * (0.35 + 0.65 * use)
        end = t + int(min(high, max(low, length)))
        page_type = self.page_type
        page = ENTRY_PAGES[int(rand() * len(ENTRY_PAGES))]
        out.append((t, uid, page_type, page, {"path": "/" + page}))
        action_p = self.action_p * (0.5 + 0.5 * use)
        core_p = self.core_p * use
        features = self.features
        ping_lo, ping_span = PING_MS[0], PING_MS[1] - PING_MS[0]
        idle_lo, idle_span = IDLE_PAUSE_MS[0], IDLE_PAUSE_MS[1] - IDLE_PAUSE_MS[0]
        while True:
            stop = min(end, t + (1 + int(rand() * 8)) * MS_PER_MINUTE)
            while True:
                t += ping_lo + int(rand() * ping_span)
                if t > stop:
                    break
                if rand() < action_p:
                    if rand() < core_p:
                        name = rng.choices(self.core_names, cum_weights=self.core_cum)[0]
                        feature = CORE_ACTION_FEATURE[name]
                        out.append((t, uid, "track", name, {"feature": feature} if feature else {"role": "member"}))
                    else:
                        feature = features[int(rand() * len(features))]
                        page = FEATURE_PAGE[feature]
                        out.append((t, uid, "track", FEATURE_EVENT, {"feature": feature}))
                else:
                    out.append((t, uid, "track", HEARTBEAT_EVENT, {"page": page}))
            if t >= end:
                break
            t += idle_lo + int(rand() * idle_span) if rand() < 0.3 else 1000 + int(rand() * 14_000)
            page = PAGE_DECK[int(rand() * len(PAGE_DECK))]
            out.append((t, uid, page_type, page, {"path": "/" + page}))
        return self._trouble(t, intensity, farewell, out)

    def _arrive(self, t: int, day: int, onboarding: bool, out: list[Item]) -> int:
        """The start of a session: identify / group messages when due, the sign-up on the first."""
        t = self._describe(t, day, out)
        if onboarding:
            out.append((t, self.index, "track", SIGNUP_EVENT, {"plan": self.account.plan}))
        return t

    def _trouble(self, t: int, intensity: float, farewell: bool, out: list[Item]) -> int:
        """After a session: now and then a support ticket; a decaying churner may look at billing
        and click cancel or downgrade. Returns the time of the last event."""
        rng = self.rng
        rand = rng.random
        uid = self.index
        decaying = intensity < 1.0
        if rand() < ESCALATION_P[decaying]:
            t += 5000 + int(rand() * 55_000)
            out.append((t, uid, "track", ESCALATION_EVENT, {"topic": rng.choice(("billing", "bug", "how-to"))}))
        if decaying and self.churn_day is not None and rand() < (0.7 if farewell else 0.5 * (1.0 - intensity)):
            t += 5000 + int(rand() * 55_000)
            out.append((t, uid, self.page_type, "billing", {"path": "/billing"}))
            t += 5000 + int(rand() * 55_000)
            out.append((t, uid, "track", rng.choice(NEGATIVE_EVENTS), {"plan": self.account.plan}))
        return t

    def _describe(self, t: int, day: int, out: list[Item]) -> int:
        """identify / group messages due at a session start (first session, platform or seat change)."""
        uid = self.index
        if self.switch is not None and day >= self.switch[0] and self.identified:
            self._set_platform(self.switch[1])
            self.switch = None
            self.identified = False
        if not self.identified:
            out.append((t, uid, "identify", None, self.identify_traits()))
            self.identified = True
            t += 1
        version = self.account.version(day)
        if version != self.group_version:
            out.append((t, uid, "group", None, self.account.traits(version)))
            self.group_version = version
            t += 1
        return t


def _churn_plan(rng: Random, days: int) -> tuple[int, int]:
    """(churn day, decay days): normal use first, then a decay ending the day before the churn day.

    Short simulations squeeze both phases proportionally so churners still churn inside them.
    """
    decay, normal = rng.randint(*CHURN_DECAY_DAYS), CHURN_NORMAL_DAYS
    last = days - 1
    if normal + decay > last:
        scale = last / (normal + decay)
        decay, normal = max(1, int(decay * scale)), max(1, int(normal * scale))
    return rng.randint(min(last, normal + decay), last), decay


@dataclass(frozen=True)
class Shape:
    """How many users and accounts, how the kinds are shared, how many join during the period."""

    users: int
    accounts: int
    days: int
    seed: int
    shares: tuple[float, float, float, float]  # engaged, casual, churning, resurrecting
    new_users: float
    sparse: bool = False
    """A sparse product instead (``streams.sim.sparse``): few active days per user, short lives."""
    cohorts: bool = False
    """Accounts that start together and pause together instead (``streams.sim.cohorts``)."""


def build_population(shape: Shape) -> list[SimUser]:
    """Accounts (sizes skewed, some at risk), users with kinds in exact proportions, join days."""
    if shape.sparse:
        from streams.sim.sparse import build_sparse_population

        return build_sparse_population(shape)
    if shape.cohorts:
        from streams.sim.cohorts import build_cohort_population

        return build_cohort_population(shape)
    rng = Random(f"population:{shape.seed}")
    accounts, owner, at_risk = build_accounts(rng, shape)

    counts = [round(share * shape.users) for share in shape.shares]
    counts[1] = shape.users - counts[0] - counts[2] - counts[3]  # casual takes the rounding
    # Churners cluster in at-risk accounts (weighted sampling without replacement).
    order = sorted(range(shape.users), key=lambda i: -rng.random() ** (1.0 / at_risk[owner[i]]))
    kinds = [""] * shape.users
    for i in order[:counts[2]]:
        kinds[i] = "churning"
    rest = order[counts[2]:]
    rng.shuffle(rest)
    for i in rest[:counts[3]]:
        kinds[i] = "resurrecting"
    steady = rest[counts[3]:]
    for n, i in enumerate(steady):
        kinds[i] = "engaged" if n < counts[0] else "casual"
    joiners = set(rng.sample(steady, min(len(steady), round(shape.new_users * shape.users)))) \
        if shape.days > 1 else set()
    users = []
    for i in range(shape.users):
        join_day = rng.randint(1, shape.days - 1) if i in joiners else 0
        account = accounts[owner[i]]
        account.users += 1
        users.append(SimUser(i, shape.seed, account, kinds[i], shape.days, join_day))
    return users


def build_accounts(rng: Random, shape: Shape) -> tuple[list[SimAccount], list[int], list[float]]:
    """Accounts with skewed sizes, each user's account, and each account's churn weight."""
    n_acc = max(1, min(shape.accounts, shape.users))
    weights = [rng.paretovariate(1.2) for _ in range(n_acc)]
    owner = list(range(n_acc)) + rng.choices(range(n_acc), weights=weights, k=shape.users - n_acc)
    rng.shuffle(owner)
    sizes = [0] * n_acc
    for a in owner:
        sizes[a] += 1
    accounts = [_account(rng, i, sizes[i], shape.days) for i in range(n_acc)]
    at_risk = [AT_RISK_WEIGHT if rng.random() < AT_RISK_ACCOUNT_P else 1.0 for _ in range(n_acc)]
    return accounts, owner, at_risk


def exact_kinds(rng: Random, shares: Sequence[tuple[str, float]], users: int, rest: str) -> list[str]:
    """Each user's kind, in the exact proportions ``shares`` (the remainder ``rest``), shuffled."""
    kinds: list[str] = []
    for kind, share in shares:
        kinds += [kind] * round(share * users)
    kinds = (kinds + [rest] * users)[:users]
    rng.shuffle(kinds)
    return kinds


def _account(rng: Random, index: int, size: int, days: int) -> SimAccount:
    name = f"{rng.choice(ACCOUNT_WORDS[0])} {rng.choice(ACCOUNT_WORDS[1])}"
    free, team, business, enterprise = PLANS
    if size <= 2:
        plan = rng.choice((free, team))
    elif size <= 10:
        plan = rng.choice((team, team, business))
    elif size <= 40:
        plan = rng.choice((business, business, enterprise))
    else:
        plan = enterprise
    # Most accounts pay for about as many seats as they use; some bought far more (low utilization).
    spare = rng.uniform(1.0, 1.4) if rng.random() < 0.65 else rng.uniform(1.5, 3.0)
    seats = max(size, math.ceil(size * spare))
    change_day = None
    new_seats = seats
    if days > 3 and rng.random() < SEAT_CHANGE_P:
        change_day = rng.randint(days // 3, days - 1)
        new_seats = max(1, round(seats * rng.choice((0.6, 0.8, 1.25, 1.5))))
    country = rng.choices(_COUNTRY_NAMES, cum_weights=_COUNTRY_CUM)[0]
    return SimAccount(index, name, plan, country, seats, change_day, new_seats)
