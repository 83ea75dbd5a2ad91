"""A silence the whole account shares is not a risk; a churner's silence still is.

The simulator's cohort product (:mod:`streams.sim.cohorts`): accounts sign their users up two to
six weeks before they start together, and pause together for a holiday of ten to sixteen days;
a fifth of the users are churners who fade and stop while their account goes on. Everything goes
through the pipeline with its default risk settings (two partitions, timers in slices as the
worker fires them), and the signals are judged against what the simulator did.
"""

from __future__ import annotations

from typing import Any

from streams.capabilities.engagement import ScoringSchedule
from streams.config import MS_PER_DAY
from streams.core.calendar import DayClock
from streams.sim.population import build_population
from streams.sim.simulator import SimulationConfig
from tests.support.fakes import unit_settings
from tests.support.partition_replay import clock_docs, run, workload

SIM = SimulationConfig(users=240, days=110, seed=5, cohorts=True)


def first_high(signals: list[dict[str, Any]]) -> dict[str, int]:
    clock = DayClock()
    out: dict[str, int] = {}
    for s in sorted(signals, key=lambda s: s["day"]):
        if s["type"] == "churn_risk" and s["to"] == "high":
            out.setdefault(s["user_id"], clock.parse(s["day"]))
    return out


def test_nobody_is_flagged_for_a_silence_the_account_shares_and_churners_still_are() -> None:
    settings = unit_settings(partitions=2, allowed_lateness_s=0)
    docs = workload(SIM)
    last = DayClock().day(docs[-1]["timestamp"])
    signals = run(settings, docs + clock_docs(settings, ScoringSchedule(settings).due(last) + 1), crash=None)
    flagged = first_high(signals)
    start = SIM.start_ms // MS_PER_DAY
    users = build_population(SIM.shape())
    churners = [u for u in users if u.churn_day is not None]
    stayers = [u for u in users if u.churn_day is None]
    assert len(churners) >= 40 and all(u.cohort.start - u.join_day >= 14 for u in users)  # type: ignore[attr-defined]

    # Nobody is flagged high between sign-up and the account's start, or during its holiday.
    shared = [(u.id, flagged[u.id] - start) for u in users if u.id in flagged and (
        flagged[u.id] - start < u.cohort.start or u.cohort.paused(flagged[u.id] - start))]  # type: ignore[attr-defined]
    assert shared == []
    # The churners are flagged: most before they stop or within a week, all within five weeks
    # (their account goes on: the silence counts).
    late = [flagged[u.id] - start - u.churn_day if u.id in flagged else None for u in churners]  # type: ignore[operator]
    assert all(d is not None and d <= 35 for d in late), late
    assert sum(d <= 7 for d in late if d is not None) >= 0.8 * len(churners)
    # And the users who stay are mostly left alone (the rest had a real drop of their own).
    assert sum(u.id in flagged for u in stayers) <= 0.15 * len(stayers)
    assert {s["mode"] for s in signals if s["type"] == "churn_risk"} == {"rules"}  # too few labels yet
