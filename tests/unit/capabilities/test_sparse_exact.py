"""The incremental judgements equal the daily sweep they replace, on a sparse product.

A long sparse history (the simulator's sparse product: a few short visits a week, long silences,
short lives, churners and resurrections) through four partitions, with the timers fired in slices
as the worker does and a crash and restart in the middle: every user's lifecycle changes and
churn-risk band changes, on every day, equal a batch computation that assesses every user on
every day (tests/support/risk_batch.py, tests/support/activity_batch.py).
"""

from __future__ import annotations

import pytest

from streams.capabilities.engagement import ScoringSchedule
from streams.config import RiskConfig
from streams.core.calendar import DayClock
from streams.sim.simulator import SimulationConfig
from tests.support.activity_batch import batch_transitions
from tests.support.fakes import unit_settings
from tests.support.partition_replay import clock_docs, run, workload
from tests.support.risk_batch import RiskReference

PARTITIONS = 4
SIM = SimulationConfig(users=360, days=150, seed=13, sparse=True)


@pytest.mark.parametrize("risk", [  # the rules always (their model is tested on its own)
    RiskConfig(negative_events=(), escalation_events=(), mode="rules"),  # the usage drop of all three factors
    RiskConfig(drop_weight_activity=1.0, drop_weight_active_time=0.0, drop_weight_core_actions=0.0, mode="rules"),
], ids=["usage-drop", "cancel-intents-and-escalations"])
def test_every_users_lifecycle_and_risk_band_on_every_day_equal_the_daily_sweep(risk: RiskConfig) -> None:
    settings = unit_settings(partitions=PARTITIONS, allowed_lateness_s=0, risk=risk)
    docs = workload(SIM)
    clock = DayClock()
    last_day = clock.day(docs[-1]["timestamp"])
    end = ScoringSchedule(settings).due(last_day) + 1
    signals = run(settings, docs + clock_docs(settings, end))

    got_risk = sorted(((s["user_id"], s["from"], s["to"], clock.parse(s["day"]), s["trigger"])
                       for s in signals if s["type"] == "churn_risk"), key=repr)
    want_risk = sorted(RiskReference(settings).changes(docs, last_day), key=repr)
    assert len(want_risk) > 300 and {c[2] for c in want_risk} == {"medium", "high", "low"}
    assert {c[4] for c in want_risk} == ({"day", "event"} if risk.negative_events else {"day"})
    assert got_risk == want_risk

    got_life = {(s["user_id"], s["from"], s["to"], s["day"]) for s in signals if s["type"] == "lifecycle"}
    assert got_life == batch_transitions(docs, "UTC", settings.activity.dormant_days, clock.label(last_day))


def test_the_sparse_product_is_sparse() -> None:
    """What the test above runs on: most users active a few days, long silences, churners."""
    docs = workload(SIM)
    days: dict[str, set[int]] = {}
    for doc in docs:
        if doc["type"] in ("track", "page", "screen"):
            days.setdefault(doc["user_id"], set()).add(doc["timestamp"] // 86_400_000)
    per_user = sorted(len(d) for d in days.values())
    assert per_user[len(per_user) // 2] <= 12  # the median user is active on a dozen days at most
    gaps = [b - a for d in days.values() for a, b in zip(sorted(d), sorted(d)[1:])]
    assert sum(g >= 21 for g in gaps) >= 30  # silences of three weeks and more, then a comeback
    assert len(docs) / sum(per_user) < 5  # a few events per active day
