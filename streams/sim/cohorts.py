"""A product whose accounts start together: cohorts (a course, a team rolling out a tool) whose users
sign up over the weeks before the account's start day, then use the product together and pause
together (a holiday), for the churn-risk tests.

The point is what churn risk must tell apart. Every user is silent between sign-up and the
account's start, and during the account's holiday: a silence the whole account shares, not a
risk. A churner (20%) uses the product normally for two to three weeks after the start, fades
over two to three weeks and stops while the rest of the account goes on: the silence that is.

* accounts of 20 to 60 users (so every partition holds a few of each), each starting on a day
  within ``START_DAYS``, with one holiday of ``PAUSE_DAYS`` beginning ``PAUSE_AFTER`` days after
  the start (when the period is long enough);
* users sign up ``SIGNUP_LEAD`` days before their account starts (one visit with the sign-up
  event), then come back from the start day on: engaged (daily, 45%) or casual (a weekly
  habit, 35%), or churning (20%);
* churn labels, as in the dense simulation, are the churner's last event.

Users, events and documents are otherwise the dense simulation's (:mod:`streams.sim.population`).
"""

from __future__ import annotations

from random import Random
from typing import TYPE_CHECKING

from streams.sim.population import SimAccount, SimUser, _account, exact_kinds

if TYPE_CHECKING:
    from streams.sim.population import Shape

START_DAYS = (21, 42)
SIGNUP_LEAD = (14, 42)
PAUSE_AFTER = (21, 35)
PAUSE_DAYS = (10, 16)
ACCOUNT_SIZE = (20, 60)
KINDS = (("engaged", 0.45), ("casual", 0.35), ("churning", 0.20))
NORMAL_DAYS = (14, 21)
DECAY_DAYS = (14, 21)


class Cohort:
    """When an account starts and when it pauses."""

    __slots__ = ("start", "pause")

    def __init__(self, rng: Random, days: int) -> None:
        self.start = min(rng.randint(*START_DAYS), max(0, days - 1))
        begin = self.start + rng.randint(*PAUSE_AFTER)
        self.pause = (begin, begin + rng.randint(*PAUSE_DAYS))

    def paused(self, day: int) -> bool:
        return self.pause[0] <= day < self.pause[1]


class CohortUser(SimUser):
    """A user who signs up before the account starts, and follows its start and holiday."""

    __slots__ = ("cohort",)

    def __init__(self, index: int, seed: int, account: SimAccount, kind: str, days: int, cohort: Cohort,
                 rng: Random) -> None:
        join = max(0, cohort.start - rng.randint(*SIGNUP_LEAD))
        super().__init__(index, seed, account, "engaged" if kind == "churning" else kind, days, join)
        self.kind = kind
        self.cohort = cohort
        self.churn_day = None
        self.dormant = None
        if kind == "churning":
            self.decay_days = rng.randint(*DECAY_DAYS)
            churn = cohort.start + rng.randint(*NORMAL_DAYS) + self.decay_days
            self.churn_day = churn if churn < days else None

    def intensity(self, day: int) -> float:
        if day == self.join_day:
            return 1.0  # the sign-up visit
        if day < self.cohort.start or self.cohort.paused(day):
            return 0.0
        return super().intensity(day)


def build_cohort_population(shape: "Shape") -> list[SimUser]:
    """Accounts of 20-60 users, each a cohort; kinds in exact proportions, shuffled."""
    rng = Random(f"cohorts:{shape.seed}")
    sizes: list[int] = []
    while sum(sizes) < shape.users:
        sizes.append(min(rng.randint(*ACCOUNT_SIZE), shape.users - sum(sizes)))
    accounts = [_account(rng, i, size, shape.days) for i, size in enumerate(sizes)]
    cohorts = [Cohort(rng, shape.days) for _ in sizes]
    owner = [a for a, size in enumerate(sizes) for _ in range(size)]
    kinds = exact_kinds(rng, KINDS, shape.users, "casual")
    users: list[SimUser] = []
    for i in range(shape.users):
        account = accounts[owner[i]]
        account.users += 1
        users.append(CohortUser(i, shape.seed, account, kinds[i], shape.days, cohorts[owner[i]],
                                Random(f"cohorts:{shape.seed}:{i}")))
    return users
