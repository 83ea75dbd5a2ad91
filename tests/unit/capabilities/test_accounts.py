"""Account health: combining partition shares (day marks, partitions without users, replays and
crashes), seats in event time, the health formula and bands against hand-computed cases."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from streams.capabilities.account_book import GREEN, RED, YELLOW, AccountBook
from streams.capabilities.signals import SignalCounts
from streams.config import MS_PER_DAY, AccountsConfig
from streams.core.calendar import DayClock

DAY = 20_500


def book(partitions: int = 2, **config: Any) -> AccountBook:
    return AccountBook(AccountsConfig(**config), partitions, DayClock(), lambda day: (day + 1) * MS_PER_DAY,
                       SignalCounts())


def share(partition: int, day: int, users: int = 2, active: int = 2, score_sum: int = 160, trend_recent: int = 10,
          trend_base: float = 10.0, escalations: int = 0) -> dict[str, Any]:
    return {"kind": "share", "account": "acme", "partition": partition, "day": day,
            "share": {"users": users, "active": active, "score_sum": score_sum, "trend_recent": trend_recent,
                      "trend_base": trend_base, "escalations": escalations}}


def seats(n: int, ts: int) -> dict[str, Any]:
    return {"kind": "seats", "account": "acme", "seats": n, "ts": ts}


def done(partition: int, day: int) -> dict[str, Any]:
    return {"kind": "done", "partition": partition, "day": day}


class Agent:
    """What the account agent does with each message, for one account (no Faust)."""

    def __init__(self, b: AccountBook) -> None:
        self.book = b
        self.entry = b.new_entry()
        self.marks: dict[str, Any] | None = None
        self.outputs: list[Any] = []

    def feed(self, *messages: dict[str, Any]) -> list[Any]:
        out: list[Any] = []
        for msg in messages:
            if msg["kind"] == "seats":
                self.book.add_seats(self.entry, msg)
            elif msg["kind"] == "share":
                self.book.add_share(self.entry, msg)
            else:
                self.marks, through = self.book.add_mark(self.marks, msg)
                if through is not None:
                    out += self.book.combine(self.entry, "acme", through)
        self.outputs += out
        return out


def snapshots(outputs: list[Any]) -> list[dict[str, Any]]:
    return [doc for role, doc in outputs if role == "snapshot"]


def test_a_day_is_combined_once_every_partition_has_marked_it() -> None:
    agent = Agent(book())
    out = agent.feed(seats(10, DAY * MS_PER_DAY), share(0, DAY), done(0, DAY), share(0, DAY + 1), done(0, DAY + 1))
    assert out == []  # partition 1 has not finished DAY: wait, however far partition 0 is
    out = agent.feed(share(1, DAY, users=3, active=1, score_sum=40), done(1, DAY))
    [snap] = snapshots(out)
    assert snap["period"] == DayClock.label(DAY)
    figures = {k: v for k, v in snap["figures"].items() if k not in ("health", "arrow", "trend", "band")}
    assert figures == {"users": 5, "seats": 10, "active_seats": 3, "license_utilization": 0.3, "engagement": 66.7,
                       "activity_trend": 1.0, "escalations": 0}
    out = agent.feed(done(1, DAY + 1))  # partition 1 had no user of the account on DAY + 1
    [snap] = snapshots(out)
    assert snap["period"] == DayClock.label(DAY + 1) and snap["figures"]["users"] == 2


def test_a_partition_without_users_marks_from_the_day_its_watermark_reached() -> None:
    """Partition 2 holds no user of the account (nor any user): it marks days anyway, from the
    first one its watermark reached; the days before it had nothing for. However long anything
    took (no wall clock here), the combination waits for its marks and then is exact."""
    agent = Agent(book(partitions=3))
    assert agent.feed(share(0, DAY), done(0, DAY), share(1, DAY), done(1, DAY)) == []
    assert agent.feed(share(0, DAY + 1), done(0, DAY + 1), done(1, DAY + 1)) == []  # still waiting for 2
    out = agent.feed(done(2, DAY + 1))  # its watermark started past DAY: DAY + 1 is its first mark
    assert [s["period"] for s in snapshots(out)] == [DayClock.label(DAY), DayClock.label(DAY + 1)]
    assert [s["figures"]["users"] for s in snapshots(out)] == [4, 2]


def test_seat_changes_are_kept_by_event_time_however_many_arrive_first() -> None:
    """Twenty seat changes of later days arrive before the day they do not concern is combined:
    every day gets the count valid at its end (the newest change before it), not the newest 8."""
    agent = Agent(book(partitions=2))
    later = [seats(100 + d, (DAY + d) * MS_PER_DAY + 60_000) for d in range(1, 21)]
    agent.feed(*later, seats(7, DAY * MS_PER_DAY + 60_000))
    for d in range(21):
        agent.feed(share(0, DAY + d), done(0, DAY + d))
    out = agent.feed(*[done(1, DAY + d) for d in range(21)])
    assert [s["figures"]["seats"] for s in snapshots(out)] == [7] + [100 + d for d in range(1, 21)]
    assert agent.entry["seats"] == [[(DAY + 20) * MS_PER_DAY + 60_000, 120]]  # only what later days can need


def test_replayed_shares_and_marks_never_count_twice() -> None:
    agent = Agent(book(partitions=1))
    msgs = [seats(8, 0), share(0, DAY, active=1, score_sum=20), done(0, DAY)]
    out = agent.feed(*msgs)
    assert len(snapshots(out)) == 1
    assert agent.feed(*msgs) == []  # a replay after a restart: the day is combined already
    assert agent.entry["done"] == DAY and agent.entry["parts"] == {}
    agent.feed(share(0, DAY + 1, active=2), done(0, DAY + 1))
    assert snapshots(agent.outputs)[-1]["figures"]["active_seats"] == 2


def test_seats_follow_event_time_not_arrival_order() -> None:
    agent = Agent(book(partitions=1))
    late_change = seats(20, (DAY + 1) * MS_PER_DAY + 5)  # a group event of the next day, arriving first
    out = agent.feed(late_change, seats(4, DAY * MS_PER_DAY + 5), share(0, DAY), share(0, DAY + 1), done(0, DAY + 1))
    assert [s["figures"]["seats"] for s in snapshots(out)] == [4, 20]


def test_health_formula_worked_example() -> None:
    """docs/health-and-risk.md#engagement-score-churn-risk-and-account-health: 10 seats, 4 active users with mean score 70, the account's users active
    on 12 days last week against 15 a usual week, 1 escalation."""
    b = book()
    total = {"users": 5, "active": 4, "score_sum": 280, "trend_recent": 12, "trend_base": 15.0, "escalations": 1}
    health, figures, reasons = b.health(total, 10)
    # utilization 0.4 -> 0.4 / 0.8 = 0.5; engagement 0.7; trend 0.8; escalations 1 - (1/4) / 0.5 = 0.5
    # 100 x (0.3 x 0.5 + 0.35 x 0.7 + 0.2 x 0.8 + 0.15 x 0.5) = 63.0
    assert health == 63.0
    assert figures["license_utilization"] == 0.4 and figures["active_seats"] == 4
    assert [r["code"] for r in reasons] == ["low_license_utilization", "escalations"]
    # without a seat count the utilization term is left out and the rest re-weighted
    health, figures, _ = b.health(total, None)
    assert health == pytest.approx(round(100 * (0.35 * 0.7 + 0.2 * 0.8 + 0.15 * 0.5) / 0.7, 1))
    assert figures["license_utilization"] is None


def test_bands_have_hysteresis() -> None:
    b = book(green=70, red=40, hysteresis=5)
    assert [b.band(None, h) for h in (70, 69.9, 40, 39.9)] == [GREEN, YELLOW, YELLOW, RED]
    assert b.band(GREEN, 65) == GREEN and b.band(GREEN, 64.9) == YELLOW
    assert b.band(YELLOW, 74.9) == YELLOW and b.band(YELLOW, 75) == GREEN
    assert b.band(YELLOW, 35) == YELLOW and b.band(YELLOW, 34.9) == RED
    assert b.band(RED, 44.9) == RED and b.band(RED, 45) == YELLOW and b.band(RED, 80) == GREEN


def test_a_signal_on_each_band_change_only() -> None:
    agent = Agent(book(partitions=1, onboarding_days=0))
    # 2 active of 100 seats, mean score 80, steady: 100 x (0.3 x 0.025 + 0.35 x 0.8 + 0.2 + 0.15) = 63.75
    agent.feed(seats(100, 0), *[m for d in range(3) for m in (share(0, DAY + d), done(0, DAY + d))])
    agent.feed(seats(2, (DAY + 3) * MS_PER_DAY + 1))  # from day +3, 2 of 2 seats: 93
    agent.feed(*[m for d in range(3, 6) for m in (share(0, DAY + d), done(0, DAY + d))])
    signals = [doc for role, doc in agent.outputs if role == "signal"]
    assert [(s["from"], s["to"], s["day"], s["health"]) for s in signals] == [
        (None, "yellow", DayClock.label(DAY), round(100 * (0.3 * 0.025 + 0.35 * 0.8 + 0.2 + 0.15), 1)),
        ("yellow", "green", DayClock.label(DAY + 3), 93.0)]
    assert len(snapshots(agent.outputs)) == 6
    assert signals[0]["reasons"][0]["code"] == "low_license_utilization"


def test_a_new_account_is_signalled_once_it_has_settled() -> None:
    agent = Agent(book(partitions=1, onboarding_days=2))
    agent.feed(seats(100, 0), *[m for d in range(4) for m in (share(0, DAY + d), done(0, DAY + d))])
    signals = [doc for role, doc in agent.outputs if role == "signal"]
    assert [(s["from"], s["to"], s["day"]) for s in signals] == [(None, "yellow", DayClock.label(DAY + 2))]


def test_partition_shares_after_a_crash_and_replay_equal_a_straight_run() -> None:
    """The last share each (account, partition, day) gets is what the combiner uses: a replay after
    a crash must leave every one equal to a run without crash, and mark every day."""
    from streams.capabilities.registry import build_capabilities
    from tests.support.engagement_feed import History, weekdays
    from tests.support.fakes import unit_runtime, unit_settings

    h = History()
    for i in range(12):
        account = f"acct-{i % 3}"
        h.identify(f"u{i}", 0, account=account, seats=10)
        h.days(f"u{i}", weekdays(0, 20 if i % 4 else 34), account=account)
    docs = h.sorted()
    settings = unit_settings(allowed_lateness_s=0)

    def shares(sink: Any) -> tuple[dict[tuple[str, int, int], Any], set[int]]:
        last: dict[tuple[str, int, int], Any] = {}
        marked: set[int] = set()
        for msg in sink.values(settings.account_shares_topic):
            if msg["kind"] == "share":
                last[(msg["account"], msg["partition"], msg["day"])] = msg["share"]
            elif msg["kind"] == "done":
                marked.add(msg["day"])
        return last, marked

    def feed(runtime: Any, part: list[dict[str, Any]], first: int) -> None:
        for offset, doc in enumerate(part, start=first):
            runtime.handle(0, doc["user_id"].encode(), orjson.dumps(doc), offset, doc["timestamp"])

    straight, _, sink = unit_runtime(settings, build_capabilities(settings))
    feed(straight, docs, 0)
    expected, marked = shares(sink)
    assert len({day for _, _, day in expected}) >= 30

    crashing, table, sink1 = unit_runtime(settings, build_capabilities(settings))
    cut = len(docs) // 2
    feed(crashing, docs[:cut], 0)
    crashing.flush()
    feed(crashing, docs[cut:cut + 200], cut)  # lost: not flushed, not committed
    restarted, _, sink2 = unit_runtime(settings, build_capabilities(settings), table.recovered())
    feed(restarted, docs[cut:], cut)
    before, marked1 = shares(sink1)
    after, marked2 = shares(sink2)
    assert before | after == expected
    assert marked1 | marked2 == marked


@pytest.mark.parametrize("restart", [False, True])
def test_a_partition_sends_one_message_per_account_and_day_with_the_days_newest_seat_count(restart: bool) -> None:
    """Group events of a day wait (in the partition's state, across a restart) until the day is
    scored, then go out once, with the newest seat count in event time."""
    from streams.capabilities.registry import build_capabilities
    from tests.support.fakes import unit_runtime, unit_settings

    settings = unit_settings(allowed_lateness_s=600)
    day0 = DAY * MS_PER_DAY
    group = {"type": "group", "user_id": "u1", "account_id": "acme"}
    events = [dict(group, event_id="g1", timestamp=day0 + 3_600_000, traits={"seats": 5}),
              dict(group, event_id="g2", timestamp=day0 + 7_200_000, traits={"seats": 7}),
              # arrives last, happened in between (within the lateness): not the day's newest
              dict(group, event_id="g3", timestamp=day0 + 7_000_000, traits={"seats": 9}),
              {"type": "page", "user_id": "u1", "account_id": "acme", "event_id": "p1",
               "timestamp": day0 + 7_100_000}]
    later = {"type": "page", "user_id": "u1", "account_id": "acme", "event_id": "p2",
             "timestamp": day0 + 3 * MS_PER_DAY}
    later2 = dict(later, event_id="p3", timestamp=day0 + 3 * MS_PER_DAY + 60_000)  # two events move time

    def feed(runtime: Any, docs: list[dict[str, Any]], first: int) -> None:
        for offset, doc in enumerate(docs, start=first):
            runtime.handle(0, b"u1", orjson.dumps(doc), offset, doc["timestamp"])

    runtime, table, sink = unit_runtime(settings, build_capabilities(settings))
    feed(runtime, events, 0)
    assert not [m for m in sink.values(settings.account_shares_topic) if m["kind"] != "done"]
    if restart:
        runtime.flush()
        runtime, _, sink = unit_runtime(settings, build_capabilities(settings), table.recovered())
    feed(runtime, [later, later2], len(events))
    sent = [m for m in sink.values(settings.account_shares_topic) if m["kind"] == "share" and m["day"] == DAY]
    assert len(sent) == 1
    assert sent[0]["seats"] == [day0 + 7_200_000, 7]
    assert sent[0]["share"]["users"] == 1
