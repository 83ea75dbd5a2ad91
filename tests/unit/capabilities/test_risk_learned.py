"""The learned churn risk in the pipeline: it starts in the rules' mode, switches to the model's
once a partition has its labels, and gives the same signals whatever happens on the way.

The simulator's sparse product (short lives, churners, resurrections) through four partitions,
with labels from silences of 10 days (so that they come within the run) and a model that decides
from 15 labels of each kind. Same input, same output: a run with a crash and a restart from the
last commit (the learning state is a reserved record of the partition, written with the users'
records), at another crash point, and with the partitions split between two workers, gives the
very signals of a run without any.
"""

from __future__ import annotations

from typing import Any

from streams.capabilities.engagement import ScoringSchedule
from streams.config import RiskConfig
from streams.core.calendar import DayClock
from streams.core.routing import HomePartitions
from streams.sim.simulator import SimulationConfig
from tests.support.fakes import unit_settings
from tests.support.partition_replay import clock_docs, run, workload

SIM = SimulationConfig(users=240, days=120, seed=21, sparse=True)
RISK = RiskConfig(churn_silence_days=10, min_labels=15)


def risk_signals(signals: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return sorted((s for s in signals if s["type"] == "churn_risk"), key=lambda s: s["id"])


def test_the_model_takes_over_and_its_signals_do_not_depend_on_crashes_or_workers() -> None:
    settings = unit_settings(partitions=4, allowed_lateness_s=0, risk=RISK)
    docs = workload(SIM)
    last = DayClock().day(docs[-1]["timestamp"])
    docs += clock_docs(settings, ScoringSchedule(settings).due(last) + 1)
    calm = risk_signals(run(settings, docs, crash=None))
    modes = [s["mode"] for s in sorted(calm, key=lambda s: s["event_time_ms"])]
    assert modes[0] == "rules" and "model" in modes
    learned = [s for s in calm if s["mode"] == "model"]
    assert all(0 <= s["probability"] <= 1 and s["reasons"] is not None for s in learned)
    assert {s["to"] for s in learned} >= {"medium", "low"}

    assert risk_signals(run(settings, docs, commit=0.45, crash=0.60)) == calm
    assert risk_signals(run(settings, docs, commit=0.70, crash=0.95)) == calm
    home = HomePartitions(settings.partitions, 10_000)
    halves = [[d for d in docs if home(d["user_id"].encode()) % 2 == side] for side in (0, 1)]
    assert risk_signals(run(settings, halves[0], crash=None) + run(settings, halves[1], crash=None)) == calm
