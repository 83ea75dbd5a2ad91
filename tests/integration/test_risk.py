"""Churn risk through the embedded broker and a real worker: every expected signal exactly once.

One pipeline run holds every scenario (steady users, a user who goes silent, a sharp drop, a
cancel intent, new users, a user hovering around the medium threshold); the expected band
changes and their days are worked out by hand in ``EXPECTED`` from the rules in docs/health-and-risk.md#engagement-score-churn-risk-and-account-health.
The signals of the silent users can only come from the watermark advancing with other users'
events: they send nothing after their last day.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from typing import Any

import jsonschema_rs
import orjson
import pytest

from streams.config import SCHEMAS_DIR, SIGNAL_SCHEMA_FILE, RiskConfig
from streams.core.calendar import DayClock
from tests.support.engagement_feed import DAY0, History, at, run_pipeline, weekdays

pytestmark = pytest.mark.integration
LAST_DAY = 55
STEADY = [f"steady-{i}" for i in range(10)]


def history() -> tuple[History, int]:
    h = History()
    for user in [*STEADY, "silent", "drop", "cancel", "flapper"]:
        h.identify(user, 0)
    for user in STEADY:
        h.days(user, weekdays(0, LAST_DAY))
    h.days("silent", weekdays(0, 18))  # last seen on a Friday, then nothing at all
    h.days("drop", weekdays(0, 34))
    h.days("drop", [35, 42, 49], minutes=4, cores=0)  # from day 35: Mondays only, 4 minutes, no core action
    h.days("cancel", [d for d in weekdays(0, LAST_DAY) if d != 37])
    h.session("cancel", 37, extra=["cancel_intent"])
    h.identify("newbie", 28)
    h.days("newbie", weekdays(28, LAST_DAY))
    h.identify("newbie-silent", 21)
    h.days("newbie-silent", [21, 22])
    h.days("flapper", range(0, LAST_DAY + 1, 6))  # every 6th day: silent 5 days, then back
    cancel_ms = max(d["timestamp"] for d in h.docs if d.get("event") == "cancel_intent")
    return h, cancel_ms


#: (from, to, day, trigger) of every churn-risk signal, per user. Silence counts in the open days
#: of the user's peers (docs/health-and-risk.md#a-silence-the-account-shares): with 4 partitions,
#: ``silent`` shares its partition with 3 users only (too few to judge by: every day counts), while
#: ``newbie-silent``'s has 6 weekday users, so its weekends (nobody back) are closed days.
#: Silent: medium after 5 silent days, high after 28 (own gap 1 day). Drop: the recent week's
#: z-scores against four normal weeks give 13.4 points from day 37, plus silence from day 40
#: (medium), then 55 points on day 42 (high). Newbie-silent (last active on day 22, a Tuesday): a
#: normal gap of 1 day once its two days are in the baseline (day 29), when its silence holds 5
#: open weekdays (23-25, 28, 29): medium; 28 open days of silence come only after day 55.
#: Flapper: medium once it has a gap (day 17), and stays medium: it is never calm for 7 days in a row.
EXPECTED = {
    "silent": [("low", "medium", 23, "day"), ("medium", "high", 46, "day")],
    "drop": [("low", "medium", 40, "day"), ("medium", "high", 42, "day")],
    "cancel": [("low", "high", 37, "event")],
    "newbie-silent": [("low", "medium", 29, "day")],
    "flapper": [("low", "medium", 17, "day")],
    **{user: [] for user in [*STEADY, "newbie"]},
}


def risk_signals(signals: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [s for s in signals if s["type"] == "churn_risk"]


def test_risk_bands_change_once_per_expected_change(make_settings: Any, workers: Any) -> None:
    # Silence counts from 5 days whatever the user's gap, so the flapper hovers at the threshold.
    settings = make_settings(risk=RiskConfig(inactive_medium_gaps=0.0))
    h, cancel_ms = history()
    topics, worker = run_pipeline(settings, h.sorted(), workers)
    signals = topics[settings.signals_topic]
    validator = jsonschema_rs.validator_for(orjson.loads((SCHEMAS_DIR / SIGNAL_SCHEMA_FILE).read_bytes()))
    for sig in signals:
        assert validator.is_valid(sig), sig
    assert len({s["id"] for s in signals}) == len(signals)

    label = DayClock().label
    risk: dict[str, list[Any]] = defaultdict(list)
    for sig in signals:
        if sig["type"] == "churn_risk":
            risk[sig["user_id"]].append(sig)
    for user, expected in EXPECTED.items():
        got = [(s["from"], s["to"], s["day"], s["trigger"]) for s in risk.get(user, [])]
        assert got == [(a, b, label(DAY0 + day), trigger) for a, b, day, trigger in expected], user
    assert set(risk) <= set(EXPECTED)

    codes = {user: [[r["code"] for r in s["reasons"]] for s in sigs] for user, sigs in risk.items()}
    assert codes["silent"] == [["inactive_days"], ["inactive_days"]]
    assert {"activity_drop", "active_time_drop", "core_action_drop"} <= set(codes["drop"][1])
    assert codes["cancel"] == [["negative_event"]]
    assert risk["cancel"][0]["event_time_ms"] == cancel_ms  # at once, not at the end of the day
    assert [s["onboarding"] for s in risk["newbie-silent"]] == [True]
    assert risk["newbie-silent"][0]["reasons"][0]["text"].startswith(
        "no activity for 7 days (5 of them while the account was active, ")  # the weekend was closed
    assert {s["mode"] for s in risk_signals(signals)} == {"rules"}  # far too few labels to learn from

    # Engagement score: steady users never cross a threshold; the silent user falls through both, once each.
    scores = Counter((s["user_id"], s["threshold"], s["direction"]) for s in signals if s["type"] == "engagement_score")
    assert not [k for k in scores if k[0] in STEADY or k[0] == "newbie"]
    assert {(t, d): n for (u, t, d), n in scores.items() if u == "silent"} == {(75.0, "down"): 1, (25.0, "down"): 1}
    # steady users: only their lifecycle (new, then returning); nothing for alerting to act on
    steady_types = Counter(s["type"] for s in signals if s["user_id"] in STEADY)
    assert set(steady_types) == {"lifecycle"}

    # Prometheus: users per band now, signals by type and level (one worker owns every partition)
    metrics = worker.get("/metrics").decode()
    ends = Counter(sigs[-1]["to"] for sigs in risk.values())
    assert f'engagement_risk_users{{band="high"}} {float(ends["high"])}' in metrics
    assert f'engagement_risk_users{{band="medium"}} {float(ends["medium"])}' in metrics
    for level in ("medium", "high"):
        sent = sum(1 for sigs in risk.values() for s in sigs if s["to"] == level)
        assert f'engagement_signals_total{{level="{level}",type="churn_risk"}} {float(sent)}' in metrics
    assert at(0) < cancel_ms
