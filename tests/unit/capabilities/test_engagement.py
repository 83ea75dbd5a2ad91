"""Engagement score inputs and formula: the ledger against plain day lists, percentiles and the
score against hand-computed cases, and scoring that survives a crash exactly once."""

from __future__ import annotations

import random
from typing import Any

import orjson
import pytest

from streams.capabilities.engagement import Facts, ScoreModel
from streams.capabilities.ledger import CORE_UNITS, KEEP_DAYS, Ledger
from streams.capabilities.registry import build_capabilities
from streams.config import MS_PER_DAY, MS_PER_MINUTE, EngagementConfig
from streams.core.state import UserState
from tests.support.fakes import unit_runtime, unit_settings

DAY0 = 20_500  # a day number (2026-02-15)


def test_ledger_sums_equal_a_plain_day_list() -> None:
    rng = random.Random(5)
    for _ in range(30):
        ledger = Ledger()
        active: set[int] = set()
        stats: dict[int, list[float]] = {}
        last_core: dict[int, int] = {}
        newest = DAY0
        for _ in range(rng.randint(1, 80)):
            day = DAY0 + rng.randint(0, 70)
            if rng.random() < 0.2:  # events are out of order only within a day or two
                day = max(DAY0, newest - rng.randint(0, 2))
            newest = max(newest, day)
            ledger.mark_active(day)
            active.add(day)
            kind = rng.random()
            if kind < 0.4:
                index = rng.randrange(4)
                ledger.add_core(day, index, 1.0)
                stats.setdefault(day, [0, 0, 0, 0])[3] += 1
                last_core[index] = max(last_core.get(index, day), day)
            elif kind < 0.7:
                ms = rng.randint(0, 3_600_000)
                ledger.add_session(day, ms)
                row = stats.setdefault(day, [0, 0, 0, 0])
                row[1] += 1
                row[2] += round(ms / 60_000)
            ledger = Ledger.load(orjson.loads(orjson.dumps(ledger.dump())))  # what a flush stores
        kept = [d for d in active if newest - d < KEEP_DAYS]
        for _ in range(20):
            lo = newest - rng.randint(0, KEEP_DAYS - 1)
            hi = lo + rng.randint(0, 20)
            days = [d for d in kept if lo <= d <= hi]
            rows = [stats[d] for d in stats if lo <= d <= hi and newest - d < KEEP_DAYS]
            usage = ledger.usage(lo, hi)
            assert ledger.columns(lo - 3, hi + 2).usage(lo, hi) == usage
            assert usage.active_days == len(days)
            assert usage.visits == sum(r[1] for r in rows)
            assert usage.minutes == sum(r[2] for r in rows)
            assert usage.core_actions == sum(r[3] for r in rows)
            span = ledger.active_span(lo, hi)
            assert span == ((min(days), max(days), len(days)) if days else None)
            before = [d for d in kept if d <= hi]
            assert ledger.last_active(hi) == (max(before) if before else None)
        assert ledger.breadth(newest - 27, newest) == sum(1 for d in last_core.values() if d >= newest - 27)


def test_core_weights_are_kept_in_quarters() -> None:
    ledger = Ledger()
    ledger.add_core(DAY0, 0, 0.5)
    ledger.add_core(DAY0, 1, 2.0)
    assert ledger.usage(DAY0, DAY0).core_actions == (round(0.5 * CORE_UNITS) + round(2.0 * CORE_UNITS)) / CORE_UNITS
    assert ledger.usage(DAY0, DAY0).core_actions == 2.5


def facts_for(active: dict[int, tuple[int, int, int]], day: int, first_day: int, window_days: int = 7) -> Facts:
    """Facts of a ledger holding (visits, active minutes, core actions) on each active day."""
    ledger = Ledger()
    for d, (visits, minutes, cores) in sorted(active.items()):
        ledger.mark_active(d)
        for _ in range(visits):
            ledger.add_session(d, minutes * 60_000 // visits)
        for i in range(cores):
            ledger.add_core(d, i % 4, 1.0)
    return Facts(ledger, day, first_day, 0, "day", anchor_days=2, negative_days=14, escalation_days=28,
                 window_days=window_days)


def test_score_worked_example_from_the_docs() -> None:
    """docs/health-and-risk.md#engagement-score-churn-risk-and-account-health: a daily-cadence user active 3 of the last 7 days, 90 active minutes and
    6 core actions (3 kinds) in them, against 5 days, 150 minutes and 10 core actions a week before."""
    day = DAY0 + 40
    active: dict[int, tuple[int, int, int]] = {}
    for week in range(1, 5):  # four baseline weeks: weekdays, 30 minutes and 2 core actions a day
        for d in range(5):
            active[day - 7 * week - d] = (1, 30, 2)
    for d in (0, 2, 4):  # the recent week: three days, 30 minutes and 2 core actions each
        active[day - d] = (1, 30, 2)
    facts = facts_for(active, day, first_day=day - 40)
    settings = unit_settings(engagement=EngagementConfig(cadence="daily"))
    model = ScoreModel(settings)
    own = model.own(facts)
    # recency: last active today -> full marks; frequency: max(3 / 5 days, 3 / 7 visits) = 0.6
    # depth: 90 / 120 minutes = 0.75; core: 0.7 x 6 / 10 + 0.3 x breadth 2 of 4 kinds = 0.57
    # trend: mean of 3/5, 90/150, 6/10 = 0.6
    assert own == pytest.approx({"recency": 1.0, "frequency": 0.6, "depth": 0.75, "core_actions": 0.57,
                                 "trend": 0.6})
    # with every peer percentile at 0.5: 0.25 x (0.7 x 1 + 0.15) + 0.2 x (0.7 x 0.6 + 0.15)
    #   + 0.15 x (0.7 x 0.75 + 0.15) + 0.25 x (0.7 x 0.57 + 0.15) + 0.15 x (0.7 x 0.6 + 0.15)
    #   = 0.2125 + 0.114 + 0.10125 + 0.13725 + 0.0855 = 0.65
    half = dict.fromkeys(own, 0.5)
    assert model.score(own, half) == 65
    # baseline active days: 20 weekdays spanning 25 days (first to last): a mean gap of 25 / 19
    assert facts.gap == pytest.approx(25 / 19)


def test_recency_is_judged_against_the_users_own_gap() -> None:
    day = DAY0 + 60
    weekly = {day - 10 - 7 * k: (1, 20, 1) for k in range(5)}  # a weekly user, last seen 10 days ago
    facts = facts_for(weekly, day, first_day=day - 60)
    assert facts.recency == 10 and facts.gap == 7.0
    model = ScoreModel(unit_settings(engagement=EngagementConfig(cadence="daily")))
    # 3 days beyond the own gap of 7, over the daily preset's 14-day span
    assert model.own(facts)["recency"] == pytest.approx(1 - 3 / 14)


def test_a_new_user_has_no_trend_and_no_gap() -> None:
    day = DAY0 + 5
    facts = facts_for({day - 5: (1, 10, 1), day - 1: (1, 10, 0)}, day, first_day=day - 5)
    assert facts.gap is None and facts.trend() is None and facts.weeks == []
    assert ScoreModel(unit_settings()).own(facts)["trend"] == 0.5


# --- scoring exactly once across a crash ---------------------------------------------------
T0 = 20_450 * MS_PER_DAY  # 2025-12-27, a Saturday


def _events(users: int, days: int) -> list[dict[str, Any]]:
    rng = random.Random(3)
    docs = []
    for day in range(days):
        for u in range(users):
            if rng.random() < (0.2 if u % 3 == 0 and day > days // 2 else 0.8):
                start = T0 + day * MS_PER_DAY + rng.randint(8, 18) * 3_600_000
                for k in range(4):
                    name = ("report_created", "page_ping", "dashboard_shared", "page_ping")[k]
                    docs.append({"event_id": f"u{u}-d{day}-{k}", "type": "track", "event": name,
                                 "user_id": f"user-{u}", "timestamp": start + k * 3 * MS_PER_MINUTE})
            if rng.random() < 0.01:
                docs.append({"event_id": f"u{u}-d{day}-x", "type": "track", "event": "cancel_intent",
                             "user_id": f"user-{u}", "timestamp": T0 + day * MS_PER_DAY + 20 * 3_600_000})
    docs.sort(key=lambda d: d["timestamp"])
    return docs


def _feed(runtime: Any, docs: list[dict[str, Any]], first_offset: int = 0) -> None:
    for offset, doc in enumerate(docs, start=first_offset):
        runtime.handle(0, doc["user_id"].encode(), orjson.dumps(doc), offset, doc["timestamp"])


def _signals(sink: Any, settings: Any) -> list[dict[str, Any]]:
    return [s for s in sink.values(settings.signals_topic) if s["type"] in ("churn_risk", "engagement_score")]


def test_a_crash_and_replay_emit_every_signal_with_the_same_id_and_none_extra() -> None:
    settings = unit_settings(allowed_lateness_s=0)
    docs = _events(users=24, days=50)
    straight, _, sink = unit_runtime(settings, build_capabilities(settings))
    _feed(straight, docs)
    expected = _signals(sink, settings)
    assert {s["type"] for s in expected} == {"churn_risk", "engagement_score"}

    crashing, table, sink1 = unit_runtime(settings, build_capabilities(settings))
    cut = len(docs) * 3 // 5
    _feed(crashing, docs[:cut // 2])
    crashing.flush()  # the last commit: everything after it is replayed
    _feed(crashing, docs[cut // 2:cut], first_offset=cut // 2)
    restarted, _, sink2 = unit_runtime(settings, build_capabilities(settings), table.recovered())
    _feed(restarted, docs[cut // 2:], first_offset=cut // 2)
    before, after = _signals(sink1, settings), _signals(sink2, settings)
    committed = {s["id"] for s in before if s["event_time_ms"] <= docs[cut // 2 - 1]["timestamp"]}
    # the replay re-emits what was lost with the same ids, and nothing that was not emitted before
    assert {s["id"] for s in before} | {s["id"] for s in after} == {s["id"] for s in expected}
    assert len({s["id"] for s in expected}) == len(expected)
    assert not committed & {s["id"] for s in after}
    # what the crash may have lost (emitted after the last commit) comes again
    assert {s["id"] for s in expected} - committed <= {s["id"] for s in after}


def test_a_commit_right_after_a_days_timer_sees_every_user_scored_and_assessed() -> None:
    """Timers fire on every watermark move, ``on_watermark`` only every second of event time. The
    day's batch is scored within its timer, so a commit (and a crash) right after it finds each
    user's score and risk band written together, never a user marked scored without them."""
    settings = unit_settings(allowed_lateness_s=0)
    runtime, table, _ = unit_runtime(settings, build_capabilities(settings))
    due = T0 + MS_PER_DAY + 31 * MS_PER_MINUTE  # day 0 is scored once the watermark passes this
    docs = [{"event_id": "a", "type": "page", "event": "home", "user_id": "u", "timestamp": T0 + 3_600_000},
            {"event_id": "b", "type": "page", "event": "home", "user_id": "v", "timestamp": due - 400},
            {"event_id": "c", "type": "page", "event": "home", "user_id": "v", "timestamp": due + 100},
            {"event_id": "d", "type": "page", "event": "home", "user_id": "w", "timestamp": due + 200}]
    # The last event fires day 0's timer (the watermark follows the second newest event: due + 100),
    # 500 ms after the last on_watermark.
    _feed(runtime, docs)
    runtime.flush()
    committed = UserState.decode(table.recovered().data.data[b"u"])
    ledger = Ledger.load(committed.ext["e"])
    assert ledger.evaluated == T0 // MS_PER_DAY and ledger.score is not None
    assert committed.ext["r"] == [0]  # assessed (low) in the same step
