"""Churn-risk rules against hand-computed cases: points per reason, bands with hysteresis,
calm days against flapping, onboarding rules."""

from __future__ import annotations

from typing import Any

import pytest

from streams.capabilities.engagement import NOTICE
from streams.capabilities.risk import HIGH, LOW, MEDIUM, RiskCapability, RiskRules, drop_z
from streams.config import RiskConfig
from streams.core.state import UserState
from tests.support.fakes import unit_runtime, unit_settings

NORMAL_WEEK = [5, 100, 20]  # active days, active minutes, core actions


def facts(**changes: Any) -> dict[str, Any]:
    """An ``engagement_evaluated`` payload of a settled, steady daily user."""
    base: dict[str, Any] = {"trigger": "day", "day": 20_000, "at_ms": 0, "account": None, "score": 80,
                            "history_days": 60, "recency_days": 0, "gap_days": 1.4, "negative_events": 0,
                            "escalations": 0, "weeks": [NORMAL_WEEK] * 4, "anchored": NORMAL_WEEK}
    base.update(changes)
    return base


def test_steady_user_has_no_points() -> None:
    assert RiskRules(RiskConfig()).assess(facts())[:3] == (0.0, [], False)


@pytest.mark.parametrize("recency, points", [(4, 0.0), (5, 30.0), (16, 30 + 25 * 11 / 23), (28, 55.0), (40, 55.0)])
def test_silence_reaches_medium_after_five_days_and_high_after_28(recency: int, points: float) -> None:
    # gap 1.4 days: medium from max(5, 2.5 x 1.4) = 5 days, high at max(28, 4 x 1.4) = 28 days
    got = RiskRules(RiskConfig()).assess(facts(recency_days=recency))
    assert got.points == pytest.approx(points)
    assert [r["code"] for r in got.reasons] == (["inactive_days"] if points else [])


def test_silence_is_judged_against_a_weekly_users_own_gap() -> None:
    rules = RiskRules(RiskConfig())
    # gap 7: medium from 2.5 x 7 = 17.5 days, high at max(28, 4 x 7) = 28
    assert rules.assess(facts(gap_days=7.0, recency_days=17)).points == 0
    assert rules.assess(facts(gap_days=7.0, recency_days=21)).points == pytest.approx(30 + 25 * 3.5 / 10.5)
    # no gap yet (no baseline): medium from onboarding_inactive_days (7)
    assert rules.assess(facts(gap_days=None, recency_days=7, weeks=[])).points == 30


def test_usage_drop_is_measured_in_the_users_own_weekly_spread() -> None:
    weeks = [[5, 100, 20], [4, 100, 16], [5, 90, 20], [4, 110, 20]]
    recent = [2, 20, 2]
    z = drop_z(weeks, recent, floor=0.45)
    # active days: mean 4.5, spread 0.577 (floor 2.025): (4.5 - 2) / 2.025
    assert z[0] == pytest.approx(((4.5 - 2) / 2.025, 4.5))
    # minutes per active day: 20, 25, 18, 27.5 -> mean 22.625, spread 4.4 (floor 10.18): recent 10
    tpd = [20, 25, 18, 27.5]
    mean = sum(tpd) / 4
    spread = (sum((v - mean) ** 2 for v in tpd) / 3) ** 0.5
    assert z[1] == pytest.approx(((mean - 10) / max(spread, 0.45 * mean), mean))
    # core actions per active hour: 12, 9.6, 13.33, 10.9 -> recent 6
    cpm = [20 * 60 / 100, 16 * 60 / 100, 20 * 60 / 90, 20 * 60 / 110]
    mean = sum(cpm) / 4
    spread = (sum((v - mean) ** 2 for v in cpm) / 3) ** 0.5
    assert z[2] == pytest.approx(((mean - 6) / max(spread, 0.45 * mean), mean))

    c = RiskConfig()
    got = RiskRules(c).assess(facts(weeks=weeks, anchored=recent))
    weighted = (0.4 * z[0][0] + 0.2 * z[1][0] + 0.4 * z[2][0]) / 1.0
    expected = c.drop_points * min(1.0, (weighted - c.drop_z_start) / (c.drop_z_full - c.drop_z_start))
    assert got.points == pytest.approx(expected)
    assert {r["code"] for r in got.reasons} == {"activity_drop", "active_time_drop", "core_action_drop"}
    assert sum(r["points"] for r in got.reasons) == pytest.approx(expected, abs=0.2)


def test_users_without_a_habit_or_enough_baseline_weeks_have_no_drop() -> None:
    rules = RiskRules(RiskConfig())
    weekly_user = [[1, 20, 2]] * 4
    assert rules.assess(facts(weeks=weekly_user, anchored=[0, 0, 0], recency_days=3)).points == 0
    assert rules.assess(facts(weeks=[NORMAL_WEEK], anchored=[1, 5, 0])).points == 0


def test_negative_intent_and_escalations() -> None:
    rules = RiskRules(RiskConfig())
    got = rules.assess(facts(negative_events=1, escalations=3))
    assert got.points == 60 + 40  # cancel intent 60, escalations 3 x 30 capped at 40
    assert [r["code"] for r in got.reasons] == ["negative_event", "escalations"]


def test_bands_enter_at_thresholds_and_leave_below_exit_thresholds() -> None:
    rules = RiskRules(RiskConfig(calm_days=1))
    assert rules.band(LOW, 29.9, False, False, 0) == LOW
    assert rules.band(LOW, 30, False, False, 0) == MEDIUM
    assert rules.band(MEDIUM, 20, False, False, 0) == MEDIUM  # not below medium_exit
    assert rules.band(MEDIUM, 19.9, False, False, 0) == LOW
    assert rules.band(MEDIUM, 55, False, False, 0) == HIGH
    assert rules.band(HIGH, 45, False, False, 0) == HIGH
    assert rules.band(HIGH, 44.9, False, False, 0) == MEDIUM
    # onboarding: medium at most, unless a cancel / downgrade intent
    assert rules.band(LOW, 80, True, False, 0) == MEDIUM
    assert rules.band(LOW, 80, True, True, 0) == HIGH


def _signals_of(points_by_day: list[float], calm_days: int) -> list[tuple[str | None, str]]:
    """Run daily assessments of one user with the given drop points through the partition."""
    settings = unit_settings(risk=RiskConfig(calm_days=calm_days))
    runtime, _, sink = unit_runtime(settings, [RiskCapability(settings)])
    part = runtime.processor(0).capabilities[0]
    state = UserState()
    for day, points in enumerate(points_by_day):
        # silence of 5 days is worth exactly 30 points (medium); 0 days nothing
        part.on_notice(b"user-1", state, NOTICE, facts(day=20_000 + day, at_ms=day, recency_days=5 if points else 0))
    return [(s["from"], s["to"]) for s in sink.values(settings.signals_topic)]


def test_calm_days_keep_a_user_hovering_at_a_threshold_from_flapping() -> None:
    dips = [0.0] + ([30.0] + [0.0] * 5) * 5  # medium one day in six, for a month
    assert _signals_of(dips, calm_days=1) == [("low", "medium"), ("medium", "low")] * 5
    assert _signals_of(dips, calm_days=7) == [("low", "medium")]
    assert _signals_of(dips + [0.0] * 7, calm_days=7) == [("low", "medium"), ("medium", "low")]


def test_an_event_raises_the_band_at_once_but_never_lowers_it() -> None:
    settings = unit_settings()
    runtime, _, sink = unit_runtime(settings, [RiskCapability(settings)])
    part = runtime.processor(0).capabilities[0]
    state = UserState()
    part.on_notice(b"u", state, NOTICE, facts(recency_days=6))
    part.on_notice(b"u", state, NOTICE, facts(trigger="event", at_ms=5, negative_events=1))
    part.on_notice(b"u", state, NOTICE, facts(trigger="event", at_ms=6))  # nothing: an event never lowers
    got = [(s["from"], s["to"], s["trigger"], s["event_time_ms"]) for s in sink.values(settings.signals_topic)]
    assert got == [(None, "medium", "day", 0), ("medium", "high", "event", 5)]
    assert part.bands == {MEDIUM: 0, HIGH: 1}


def test_a_reason_the_configuration_makes_impossible_is_a_startup_warning(caplog: pytest.LogCaptureFixture) -> None:
    """A product whose cancel event has another name would never see ``negative_event``: said at start."""
    with caplog.at_level("WARNING", logger="streams.capabilities.risk"):
        RiskCapability(unit_settings(risk=RiskConfig(negative_events=(), escalation_points=0.0,
                                                     drop_weight_active_time=0.0)))
    said = " ".join(r.getMessage() for r in caplog.records)
    assert "negative_event can never fire" in said and "escalations can never fire" in said
    assert "active_time_drop can never fire" in said and "core_action_drop" not in said
    caplog.clear()
    with caplog.at_level("WARNING", logger="streams.capabilities.risk"):
        RiskCapability(unit_settings())
    assert not caplog.records


def test_weeks_the_account_mostly_sat_out_are_no_usage_drop() -> None:
    """A holiday week (the account open on 2 of its 7 days) is left out; a week open on 5 days
    counts its active days per 7 open days (5 of 5 open days: a full week's habit, no drop)."""
    rules = RiskRules(RiskConfig())
    quiet = [1, 20, 4]
    # The account open: active days z = (5 - 1) / (0.45 x 5) = 1.78, the other factors steady,
    # Z = 0.4 x 1.78 = 0.71 -> 60 x (0.71 - 0.25) / 1.25 = 22.1 points.
    assert rules.assess(facts(anchored=quiet, recency_days=0)).points == pytest.approx(60 * (0.4 * 4 / 2.25 - 0.25) / 1.25)
    assert rules.assess(facts(anchored=quiet, recency_days=0, anchored_open=2)).points == 0
    assert rules.assess(facts(anchored=[5, 100, 20], weeks=[[3, 60, 12]] + [NORMAL_WEEK] * 3,
                              weeks_open=[5, 7, 7, 7], anchored_open=7)).points == 0
    holiday = facts(weeks=[[0, 0, 0]] + [NORMAL_WEEK] * 3, weeks_open=[1, 7, 7, 7])
    assert rules.assess(holiday).points == 0  # without the holiday week the user is steady
    assert rules.assess({**holiday, "weeks_open": [7, 7, 7, 7]}).points == 0  # recent equals the mean anyway
