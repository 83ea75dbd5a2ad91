"""Open days of an account: sign-ups do not open it, a holiday closes it, a fading account stays open."""

from __future__ import annotations

from streams.capabilities.account_days import AccountDays


def test_open_days_follow_returns_against_the_accounts_usual_level() -> None:
    """Account ``k``, 8 users (joining on days 0-7: judged as an account from day 4). Days 0-9: sign-ups only (no returns: closed). Days 10-29: 6 users
    back each day (open). Days 30-39: a holiday with one straggler on day 35 (1 < 6 / 4: closed).
    Days 40-59: 2 a day (the typical 7-day mean in the two weeks before is at most 6/7 after the
    holiday, so 2 >= max(1, 0.25 x typical): open)."""
    days = AccountDays()
    for user in range(8):
        days.arrived(user)
        days.joined("k", None, user)
    for day in range(10, 30):
        for _ in range(6):
            days.returned("k", day)
    days.returned("k", 35)
    for day in range(40, 60):
        for _ in range(2):
            days.returned("k", day)
    assert days.open_days("k", 0, 9) == 0
    assert days.open_days("k", 0, 29) == 20
    assert days.open_days("k", 30, 39) == 0
    assert days.open_days("k", 40, 59) == 20
    assert days.open_days("k", 25, 45) == 5 + 6


def test_small_accounts_and_users_without_one_use_the_partition() -> None:
    """``tiny`` has 2 users here: its users are judged by the partition-wide days (5 users)."""
    days = AccountDays()
    for _ in range(5):
        days.arrived(0)
    days.joined("tiny", None, 0)
    days.joined("tiny", None, 0)
    for day in range(0, 10):
        days.returned(None, day)
    assert days.open_days("tiny", 0, 9) == days.open_days(None, 0, 9) == 10
    days.joined("other", "tiny", 5)  # a user moved on day 5: tiny has one left from then
    assert (days.groups["tiny"].members_on(4), days.groups["tiny"].members_on(5)) == (2, 1)
    assert days.groups["other"].members_on(5) == 1


def test_state_round_trips_and_flags_do_not_depend_on_when_they_are_asked() -> None:
    a, b = AccountDays(), AccountDays()
    for days in (a, b):
        for _ in range(5):
            days.arrived(0)
            days.joined("k", None, 0)
    for day in range(0, 40):
        for days in (a, b):
            for _ in range(day % 4):
                days.returned("k", day)
        a.open_days("k", 0, day)  # a asks every day, b only at the end
    a = AccountDays(a.dump())
    assert a.open_days("k", 0, 39) == b.open_days("k", 0, 39) == 30
    assert a.dump() == b.dump()


def test_an_account_is_judged_alone_from_the_day_it_has_enough_users() -> None:
    """Account ``k`` gains a user a day from day 0; the partition is busy every day, ``k`` only
    from day 20. Until day 3 (4 users) ``k`` is judged by the partition (open), from day 4 alone."""
    days = AccountDays()
    for _ in range(5):
        days.arrived(0)
    for day in range(30):
        days.joined("k", None, day)
        days.returned(None, day)
        if day >= 20:
            days.returned("k", day)
    assert days.open_days("k", 0, 3) == 4
    assert days.open_days("k", 0, 19, day=4) == 0 and days.open_days("k", 0, 29) == 10


def test_a_partition_too_small_to_judge_counts_every_day() -> None:
    days = AccountDays()
    for _ in range(4):
        days.arrived(0)
    days.returned(None, 3)
    assert days.open_days(None, 0, 9) == 10
