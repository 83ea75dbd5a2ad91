"""A sparse product: what most real products look like, for benchmarks and tests of cost and exactness.

The dense simulation (:mod:`streams.sim.population`) is a busy B2B tool: most users every
weekday, sessions of hundreds of heartbeats. Real logs are mostly the opposite: many users, each
active on a few days, short visits, long silences. Here every user visits on one to three
favourite weekdays, with a handful of events per visit (a page view and a few actions, rarely a
heartbeat), and lives one of four lives:

* ``regular`` (8%): there the whole period, with a silence of two to six weeks now and then;
* ``lapser`` (7%): there the whole period, but away often and long (three to ten weeks),
  coming back each time (a resurrection);
* ``shortlived`` (55%): joins any day, stays two to sixteen weeks, then fades over one to three
  weeks and churns (a churn label; cancel or downgrade intents on the way out);
* ``oneoff`` (30%): joins any day and is gone within ten days.

Accounts, plans, platforms, countries, identify / group messages and the event documents are the
dense simulation's, so every capability sees the same shapes of events, only fewer of them.
"""

from __future__ import annotations

from random import Random
from typing import TYPE_CHECKING

from streams.config import MS_PER_SECOND
from streams.sim.catalog import CORE_ACTION_FEATURE, ENTRY_PAGES, FEATURE_EVENT, HEARTBEAT_EVENT
from streams.sim.population import SimAccount, SimUser, build_accounts, exact_kinds

if TYPE_CHECKING:
    from streams.sim.population import Item, Shape

KINDS = (("regular", 0.08), ("lapser", 0.07), ("shortlived", 0.55), ("oneoff", 0.30))
FAVOURITE_P, OTHER_P = 0.8, 0.02
#: (silences per 100 days, shortest, longest in days) per kind.
SILENCES = {"regular": (0.4, 14, 42), "lapser": (1.2, 21, 70)}
LIFE_DAYS = (14, 112)
FADE_DAYS = (7, 21)
ONEOFF_DAYS = 10
#: A visit: a page view, then actions (one more with this chance each), 20-180 s apart.
MORE_ACTIONS_P = 0.45
CORE_SHARE, HEARTBEAT_SHARE = 0.35, 0.15
SECOND_VISIT_P = 0.1


class SparseUser(SimUser):
    """A user of a sparse product: favourite weekdays, short visits, a life with silences."""

    __slots__ = ("silences",)

    def __init__(self, index: int, seed: int, account: SimAccount, kind: str, days: int, rng: Random) -> None:
        join = 0 if kind in ("regular", "lapser") and rng.random() < 0.7 else rng.randrange(days)
        super().__init__(index, seed, account, "casual", days, join)
        self.kind = kind
        favourites = set(rng.sample(range(7), rng.choice((1, 1, 1, 2, 2, 3))))
        self.week = tuple(FAVOURITE_P if d in favourites else OTHER_P for d in range(7))
        self.extra_p = SECOND_VISIT_P
        self.core_p = CORE_SHARE
        self.silences: list[tuple[int, int]] = []
        if kind in SILENCES:
            rate, shortest, longest = SILENCES[kind]
            day = join + rng.randint(14, 60)
            while day < days:
                if rng.random() < rate * 30 / 100:
                    length = rng.randint(shortest, longest)
                    self.silences.append((day, day + length))
                    day += length
                day += 30
        elif kind == "shortlived":
            self.decay_days = rng.randint(*FADE_DAYS)
            churn = join + rng.randint(*LIFE_DAYS) + self.decay_days
            self.churn_day = churn if churn < days else None
        else:
            churn = join + rng.randint(1, ONEOFF_DAYS)
            self.churn_day = churn if churn < days else None

    def intensity(self, day: int) -> float:
        for begin, end in self.silences:
            if begin <= day < end:
                return 0.0
        return super().intensity(day)

    def _session(self, t: int, day: int, intensity: float, onboarding: bool, farewell: bool,
                 out: list["Item"]) -> int:
        """A short visit: a page view and a few actions (core actions, features, a heartbeat)."""
        rng = self.rng
        rand = rng.random
        uid = self.index
        t = self._arrive(t, day, onboarding, out)
        if onboarding:
            t += 30 * MS_PER_SECOND
        page = ENTRY_PAGES[int(rand() * len(ENTRY_PAGES))]
        out.append((t, uid, self.page_type, page, {"path": "/" + page}))
        actions = 1
        while rand() < MORE_ACTIONS_P * min(intensity, 1.0):
            actions += 1
        for _ in range(actions):
            t += 20 * MS_PER_SECOND + int(rand() * 160 * MS_PER_SECOND)
            draw = rand()
            if draw < CORE_SHARE:
                name = rng.choices(self.core_names, cum_weights=self.core_cum)[0]
                feature = CORE_ACTION_FEATURE[name]
                out.append((t, uid, "track", name, {"feature": feature} if feature else {"role": "member"}))
            elif draw < 1.0 - HEARTBEAT_SHARE:
                feature = self.features[int(rand() * len(self.features))]
                out.append((t, uid, "track", FEATURE_EVENT, {"feature": feature}))
            else:
                out.append((t, uid, "track", HEARTBEAT_EVENT, {"page": page}))
        return self._trouble(t, intensity, farewell, out)


def build_sparse_population(shape: "Shape") -> list[SimUser]:
    """Accounts as in the dense simulation; kinds in exact proportions, lives drawn per user."""
    rng = Random(f"sparse:{shape.seed}")
    accounts, owner, _ = build_accounts(rng, shape)
    kinds = exact_kinds(rng, KINDS, shape.users, "shortlived")
    users: list[SimUser] = []
    for i in range(shape.users):
        account = accounts[owner[i]]
        account.users += 1
        users.append(SparseUser(i, shape.seed, account, kinds[i], shape.days, Random(f"sparse:{shape.seed}:{i}")))
    return users
