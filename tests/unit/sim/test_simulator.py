"""The simulated product: valid events, deterministic, in event-time order, behaving as claimed.

Every behaviour claim is checked from the events themselves (plain Python over the documents),
against the simulator's own ground truth (roster, churn labels), never against its internals.
"""

from __future__ import annotations

import csv
import statistics
from collections import Counter, defaultdict
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import jsonschema
import orjson
import pytest
from click.testing import CliRunner

from streams.cli import main
from streams.config import MS_PER_DAY, MS_PER_MINUTE, load_settings
from streams.core.contract import Decoder, Event, load_schema, parse_time_ms
from streams.sim.catalog import (
    CORE_ACTIONS,
    FEATURE_EVENT,
    FEATURES,
    HEARTBEAT_EVENT,
    NEGATIVE_EVENTS,
    ONBOARDING_EVENT,
    SIGNUP_EVENT,
)
from streams.sim.faults import FAULT_REASONS, with_malformed
from streams.sim.simulator import (
    EventFeed,
    SimClock,
    SimulationConfig,
    churn_labels,
    live,
    roster,
    simulate,
    timed_events,
)

ACTIVITY = {"track", "page", "screen"}
SESSION_GAP = 30 * MS_PER_MINUTE
NOW_MS = int(datetime(2026, 11, 22, tzinfo=timezone.utc).timestamp() * 1000)
SMALL = SimulationConfig(users=60, days=21, seed=3)
#: Long enough for churners to show two normal weeks and a decay, with resurrections inside.
MEDIUM = SimulationConfig(users=400, days=49, seed=11)


@pytest.fixture(scope="module")
def small_docs() -> list[dict[str, Any]]:
    return list(simulate(SMALL))


@pytest.fixture(scope="module")
def medium() -> dict[str, list[tuple[int, dict[str, Any]]]]:
    """user_id -> [(event time, document)] of the medium run, times parsed independently."""
    per_user: dict[str, list[tuple[int, dict[str, Any]]]] = defaultdict(list)
    for doc in simulate(MEDIUM):
        per_user[doc["user_id"]].append((parse_time_ms(doc["timestamp"]), doc))
    return per_user


def day_of(ts: int, config: SimulationConfig) -> int:
    return (ts - config.start_ms) // MS_PER_DAY


def active_days(events: list[tuple[int, dict[str, Any]]], config: SimulationConfig) -> set[int]:
    return {day_of(ts, config) for ts, doc in events if doc["type"] in ACTIVITY}


def sessions(events: list[tuple[int, dict[str, Any]]]) -> list[list[tuple[int, dict[str, Any]]]]:
    """A user's activity events split at gaps over 30 minutes (the pipeline's default)."""
    runs: list[list[tuple[int, dict[str, Any]]]] = []
    for ts, doc in events:
        if doc["type"] not in ACTIVITY:
            continue
        if runs and ts - runs[-1][-1][0] <= SESSION_GAP:
            runs[-1].append((ts, doc))
        else:
            runs.append([(ts, doc)])
    return runs


# --- the contract -----------------------------------------------------------------------

def test_every_event_validates_against_the_published_schema(small_docs: list[dict[str, Any]]) -> None:
    validator = jsonschema.Draft202012Validator(load_schema(),
                                                format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER)
    # The format checker must really check date-times, or this test would prove little.
    bad_date = {**small_docs[0], "timestamp": "2026-13-45T25:00:00.000Z"}
    assert not validator.is_valid(bad_date)
    for doc in small_docs:
        errors = [e.message for e in validator.iter_errors(doc)]
        assert not errors, (doc, errors)
    assert {d["type"] for d in small_docs} == {"track", "page", "screen", "identify", "group"}
    names = {d.get("event") for d in small_docs}
    assert set(CORE_ACTIONS) <= names and {HEARTBEAT_EVENT, FEATURE_EVENT} <= names
    assert {d["properties"]["feature"] for d in small_docs if d.get("event") == FEATURE_EVENT} <= set(FEATURES)
    for doc in small_docs:
        assert doc["timestamp"].endswith("Z") and len(doc["timestamp"]) == len("2026-01-05T09:14:03.250Z")
        assert set(doc["context"]) == {"platform", "country"}


def test_event_ids_are_unique_and_times_ordered(small_docs: list[dict[str, Any]]) -> None:
    ids = [d["event_id"] for d in small_docs]
    assert len(ids) == len(set(ids))
    times = [parse_time_ms(d["timestamp"]) for d in small_docs]
    assert times == sorted(times)
    assert SMALL.start_ms <= times[0] and times[-1] < SMALL.end_ms


def test_timed_events_carry_the_documents_own_time() -> None:
    for ts, doc in timed_events(SMALL, max_events=5000):
        assert ts == parse_time_ms(doc["timestamp"])


# --- determinism and bounds -------------------------------------------------------------

def test_same_seed_same_events_and_another_seed_other_events(small_docs: list[dict[str, Any]]) -> None:
    again = list(simulate(SMALL))
    assert [orjson.dumps(d) for d in again] == [orjson.dumps(d) for d in small_docs]
    other = list(simulate(SimulationConfig(users=60, days=21, seed=4)))
    assert {d["event_id"] for d in other}.isdisjoint(d["event_id"] for d in small_docs)
    assert [d["timestamp"] for d in other[:50]] != [d["timestamp"] for d in small_docs[:50]]


def test_max_events_and_until_give_exact_prefixes(small_docs: list[dict[str, Any]]) -> None:
    assert list(simulate(SMALL, max_events=777)) == small_docs[:777]
    assert list(simulate(SMALL, max_events=0)) == []
    cut = SMALL.start_ms + 5 * MS_PER_DAY + 12345
    expected = [d for d in small_docs if parse_time_ms(d["timestamp"]) < cut]
    assert 0 < len(expected) < len(small_docs)
    assert list(simulate(SMALL, until_ms=cut)) == expected


def test_config_rejects_bad_values_by_name() -> None:
    with pytest.raises(ValueError, match="users"):
        SimulationConfig(users=0)
    with pytest.raises(ValueError, match="must add up to 1"):
        SimulationConfig(engaged=0.9)
    with pytest.raises(ValueError, match="new_users"):
        SimulationConfig(new_users=1.5)


# --- behaviour classes ------------------------------------------------------------------

def test_churners_stop_at_churned_at_after_a_decay(medium: dict[str, list]) -> None:
    labels = dict(churn_labels(MEDIUM))
    members = roster(MEDIUM)
    churners = {m.user_id for m in members if m.kind == "churning"}
    assert set(labels) == churners and len(churners) == round(MEDIUM.churning * MEDIUM.users)
    first_total = last_total = fewer = 0
    for user, churned_at in labels.items():
        events = medium[user]
        assert max(ts for ts, _ in events) == churned_at  # nothing after it, and it is the last event
        days = active_days(events, MEDIUM)
        churn_day = day_of(churned_at, MEDIUM)
        first = len({d for d in days if d < 14})
        last = len({d for d in days if churn_day - 14 < d <= churn_day})
        first_total += first
        last_total += last
        fewer += last < first
    assert last_total < 0.75 * first_total
    assert fewer >= 0.8 * len(labels)
    # Nobody else churns: every other user present from the start is active in the last week.
    quiet_at_end = [m.user_id for m in members if m.kind in ("engaged",) and m.join_day == 0
                    and max(active_days(medium[m.user_id], MEDIUM)) < MEDIUM.days - 7]
    assert len(quiet_at_end) <= 0.02 * len(members)


def test_churners_show_intent_and_others_do_not(medium: dict[str, list]) -> None:
    kinds = {m.user_id: m.kind for m in roster(MEDIUM)}
    with_intent = {u for u, events in medium.items()
                   if any(doc.get("event") in NEGATIVE_EVENTS for _, doc in events)}
    churners = {u for u, k in kinds.items() if k == "churning"}
    assert with_intent <= churners
    assert len(with_intent) >= 0.5 * len(churners)


def test_engaged_users_are_active_on_more_days_than_casual_ones(medium: dict[str, list]) -> None:
    days: dict[str, list[int]] = defaultdict(list)
    for m in roster(MEDIUM):
        if m.join_day == 0 and m.kind in ("engaged", "casual"):
            days[m.kind].append(len(active_days(medium[m.user_id], MEDIUM)))
    engaged, casual = statistics.mean(days["engaged"]), statistics.mean(days["casual"])
    assert engaged > 2.5 * casual
    # Casual users keep a weekly habit: about one active day a week, not none.
    assert 0.5 <= casual / (MEDIUM.days / 7) <= 2.5


def test_resurrecting_users_come_back_after_a_dormant_gap(medium: dict[str, list]) -> None:
    def longest_gap(user: str) -> int:
        days = sorted(active_days(medium[user], MEDIUM))
        return max((b - a for a, b in zip(days, days[1:])), default=0)

    members = roster(MEDIUM)
    resurrecting = [m.user_id for m in members if m.kind == "resurrecting"]
    engaged = [m.user_id for m in members if m.kind == "engaged" and m.join_day == 0]
    assert resurrecting
    assert sum(longest_gap(u) >= 14 for u in resurrecting) >= 0.9 * len(resurrecting)
    assert sum(longest_gap(u) >= 14 for u in engaged) <= 0.05 * len(engaged)


def test_new_users_join_later_and_onboard_first(medium: dict[str, list]) -> None:
    joiners = [m for m in roster(MEDIUM) if m.join_day > 0]
    assert len(joiners) == round(MEDIUM.new_users * MEDIUM.users)
    for m in joiners:
        events = medium[m.user_id]
        assert day_of(events[0][0], MEDIUM) >= m.join_day
        tracks = [doc["event"] for _, doc in events if doc["type"] == "track"]
        assert tracks[0] == SIGNUP_EVENT and tracks[1] == ONBOARDING_EVENT


def test_users_identify_and_join_their_account_before_acting(medium: dict[str, list]) -> None:
    account_users: dict[str, set[str]] = defaultdict(set)
    for user, events in medium.items():
        kinds = [doc["type"] for _, doc in events]
        assert kinds[:2] == ["identify", "group"], user
        identify = events[0][1]
        assert set(identify["traits"]) == {"plan", "platform", "country"}
        assert identify["traits"]["platform"] == identify["context"]["platform"]
        account_users[events[1][1]["account_id"]].add(user)
    seats_seen: dict[str, list[tuple[int, int]]] = defaultdict(list)
    for events in medium.values():
        for ts, doc in events:
            if doc["type"] == "group":
                assert set(doc["traits"]) == {"seats", "name", "plan"}
                seats_seen[doc["account_id"]].append((ts, doc["traits"]["seats"]))
    # Each account announces its seats; the first figure covers every user it will have.
    for account, users in account_users.items():
        assert min(seats_seen[account])[1] >= len(users)
    figures = [len({seats for _, seats in seen}) for seen in seats_seen.values()]
    assert max(figures) == 2  # some accounts change seats once, none more often
    assert len(account_users) == MEDIUM.users // 8


def test_sessions_are_bursts_with_heartbeats(medium: dict[str, list]) -> None:
    durations = []
    ping_gaps = []
    for events in medium.values():
        for run in sessions(events):
            durations.append(run[-1][0] - run[0][0])
            for (t1, d1), (t2, d2) in zip(run, run[1:]):
                if d1.get("event") == HEARTBEAT_EVENT and d2.get("event") == HEARTBEAT_EVENT:
                    ping_gaps.append(t2 - t1)
    assert ping_gaps and min(ping_gaps) >= 30_000 and max(ping_gaps) <= 60_000
    median_minutes = statistics.median(durations) / MS_PER_MINUTE
    assert 3 <= median_minutes <= 60
    assert max(durations) <= 4 * 60 * MS_PER_MINUTE  # plausible: minutes to a couple of hours


# --- live feed --------------------------------------------------------------------------

def test_feed_pulls_the_same_events_in_pieces(small_docs: list[dict[str, Any]]) -> None:
    feed = EventFeed(SMALL)
    pulled: list[dict[str, Any]] = []
    t = SMALL.start_ms
    while not feed.exhausted:
        t += 7 * 3600 * 1000 + 17
        batch = list(feed.until(t))
        assert all(parse_time_ms(d["timestamp"]) < t for d in batch)
        assert feed.next_ms is None or feed.next_ms >= t
        pulled.extend(batch)
    assert pulled == small_docs


def test_live_follows_a_simulated_clock(small_docs: list[dict[str, Any]]) -> None:
    wall = [100.0]
    clock = SimClock(SMALL.start_ms, speed=3600.0, wall=lambda: wall[0])
    assert clock.now_ms() == SMALL.start_ms

    def sleep(seconds: float) -> None:
        wall[0] += seconds

    pulled: list[dict[str, Any]] = []
    ticks = 0
    for now, batch in live(EventFeed(SMALL), clock, tick_s=30.0, sleep=sleep):
        assert now == SMALL.start_ms + ticks * 30 * 3600 * 1000  # 30 s real = 30 h simulated
        assert all(parse_time_ms(d["timestamp"]) < now for d in batch)
        pulled.extend(batch)
        ticks += 1
    assert pulled == small_docs


# --- malformed messages -----------------------------------------------------------------

def test_malformed_messages_get_their_documented_reasons() -> None:
    settings = load_settings(env={})
    decoder = Decoder(settings)
    good = [(d["user_id"].encode(), orjson.dumps(d)) for d in simulate(SMALL, max_events=3000)]
    mixed = list(with_malformed(good, 0.2, seed=1))
    assert [r for r in mixed if r in good] == good  # the good stream is intact
    faults = [r for r in mixed if r not in good]
    assert len(faults) > 300
    reasons = Counter()
    for _, value in faults:
        judged = decoder.decode(value, NOW_MS)
        assert not isinstance(judged, Event)
        reasons[judged.reason] += 1
        assert b"\n" not in value
    assert set(reasons) == set(FAULT_REASONS.values())
    assert list(with_malformed(good, 0.2, seed=1)) == mixed


# --- the CLI ----------------------------------------------------------------------------

def test_cli_writes_what_produce_accepts(tmp_path: Path) -> None:
    out, labels = tmp_path / "events.jsonl", tmp_path / "churn.csv"
    config = SimulationConfig(users=120, days=40, seed=5)
    result = CliRunner().invoke(main, ["simulate", "--users", "120", "--days", "40", "--seed", "5",
                                       "--out", str(out), "--labels", str(labels)])
    assert result.exit_code == 0, result.output
    lines = out.read_bytes().splitlines()
    assert lines == [orjson.dumps(d) for d in simulate(config)]
    decoder = Decoder(load_settings(env={}))
    rejected = [(n, j) for n, line in enumerate(lines) if not isinstance(j := decoder.decode(line, NOW_MS), Event)]
    assert rejected == []
    with labels.open() as fh:
        rows = list(csv.DictReader(fh))
    assert [(r["user_id"], parse_time_ms(r["churned_at"])) for r in rows] == churn_labels(config)
    assert rows and all(r["churned_at"].endswith("Z") for r in rows)


def test_cli_bad_rate_and_max_events(tmp_path: Path) -> None:
    out, labels = tmp_path / "events.jsonl", tmp_path / "churn.csv"
    result = CliRunner().invoke(main, ["simulate", "--users", "100", "--days", "40", "--max-events", "20000",
                                       "--bad-rate", "0.01", "--start", "2026-03-02", "-o", str(out),
                                       "--labels", str(labels), "-q"])
    assert result.exit_code == 0, result.output
    decoder = Decoder(load_settings(env={}))
    judged = [decoder.decode(line, NOW_MS) for line in out.read_bytes().splitlines()]
    good = [j for j in judged if isinstance(j, Event)]
    assert len(good) == 20000 and 100 <= len(judged) - len(good) <= 320
    assert datetime.fromtimestamp(good[0].ts / 1000, timezone.utc).date().isoformat() == "2026-03-02"
    last_written = max(e.ts for e in good)
    with labels.open() as fh:
        rows = list(csv.DictReader(fh))
    by_user: dict[str, int] = defaultdict(int)
    for e in good:
        by_user[e.user] = max(by_user[e.user], e.ts)
    for row in rows:  # only churns that happened within what was written
        assert by_user[row["user_id"]] == parse_time_ms(row["churned_at"]) <= last_written


@pytest.mark.parametrize("args, flag", [(["--users", "0"], "--users"), (["--days", "-1"], "--days"),
                                        (["--max-events", "0"], "--max-events"), (["--bad-rate", "1.5"], "--bad-rate"),
                                        (["--start", "yesterday"], "--start")])
def test_cli_rejects_bad_values_naming_the_flag(args: list[str], flag: str) -> None:
    result = CliRunner().invoke(main, ["simulate", *args])
    assert result.exit_code == 2
    assert flag in result.output
