"""Account health through the embedded broker: users of one account in different partitions,
combined by the account agent; seats, active seats and utilization against a plain computation
over the same events, and one signal per band change."""

from __future__ import annotations

import asyncio
import functools
import os
import signal
import threading
import time
from collections import defaultdict
from typing import Any

import orjson
import pytest

from streams.config import MS_PER_DAY
from streams.core.calendar import DayClock
from streams.core.routing import HomePartitions
from streams.tools.close import close_stream
from streams.tools.kafkaio import read_json, send_all
from tests.support.engagement_feed import DAY0, History, at, run_pipeline, weekdays
from tests.support.wait import wait_for

pytestmark = pytest.mark.integration
LAST_DAY = 45
ACCOUNTS = {"acct-few": [f"few-{i}" for i in range(2)], "acct-many": [f"many-{i}" for i in range(8)]}


def history() -> History:
    h = History()
    for account, users in ACCOUNTS.items():
        seats = 2 if account == "acct-few" else 60
        for user in users:
            h.identify(user, 0, account=account, seats=seats)
            last = 12 if user == "many-7" else LAST_DAY  # many-7 leaves after day 11 (a Friday)
            h.days(user, weekdays(0, last), account=account)
    h.identify("many-0", 30, account="acct-many", seats=10)  # the account buys fewer seats on day 30
    return h


def expected_figures(docs: list[dict[str, Any]], account: str, day: int) -> dict[str, Any]:
    """Seats, active seats (users active in the 30 days ending on ``day``) and utilization, plainly."""
    end = (DAY0 + day + 1) * MS_PER_DAY
    active = {d["user_id"] for d in docs if d.get("account_id") == account and d["type"] in ("page", "track")
              and end - 30 * MS_PER_DAY <= d["timestamp"] < end}
    group = [d for d in docs if d["type"] == "group" and d["account_id"] == account and d["timestamp"] < end]
    seats = max(group, key=lambda d: d["timestamp"])["traits"]["seats"]
    return {"seats": seats, "active_seats": len(active), "license_utilization": round(len(active) / seats, 4)}


def test_account_health_combines_partitions_and_signals_each_band_change(make_settings: Any, workers: Any) -> None:
    settings = make_settings()
    homes = {HomePartitions(settings.partitions, 100)(u.encode()) for u in ACCOUNTS["acct-many"]}
    assert len(homes) > 1  # the account's users live in several partitions
    docs = history().sorted()
    topics, worker = run_pipeline(settings, docs, workers, topics=(settings.metrics_topic,))
    snapshots: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for doc in topics[settings.metrics_topic]:
        if doc.get("kind") == "account_health":
            snapshots[doc["account_id"]].append(doc)
    label = DayClock().label
    # every scored day is combined exactly once
    for account in ACCOUNTS:
        assert [s["period"] for s in snapshots[account]] == [label(DAY0 + d) for d in range(LAST_DAY + 1)]
        for day, snap in enumerate(snapshots[account]):
            figures = {k: snap["figures"][k] for k in ("seats", "active_seats", "license_utilization")}
            assert figures == expected_figures(docs, account, day), (account, day)
    # many-7's last active day is 11 (a Friday): an active seat through day 40
    assert [snapshots["acct-many"][d]["figures"]["active_seats"] for d in (40, 41)] == [8, 7]

    signals = [s for s in topics[settings.signals_topic] if s["type"] == "account_health"]
    settle = settings.accounts.onboarding_days  # an account is judged from its 14th day on
    for account in ACCOUNTS:
        bands = [(s["period"], s["figures"]["band"]) for s in snapshots[account]]
        changes = [(None if i == settle else bands[i - 1][1], band, day) for i, (day, band) in enumerate(bands)
                   if (i == settle and band != "green") or (i > settle and band != bands[i - 1][1])]
        got = [(s["from"], s["to"], s["day"]) for s in signals if s["account_id"] == account]
        assert got == changes, account
    few = [s for s in signals if s["account_id"] == "acct-few"]
    many = [s for s in signals if s["account_id"] == "acct-many"]
    assert few == []  # both seats in use, steady users: green from the start
    assert many[0]["from"] is None and "low_license_utilization" in [r["code"] for r in many[0]["reasons"]]
    assert (many[-1]["to"], many[-1]["day"]) == ("green", label(DAY0 + 30))  # seats cut to 10: 8 of 10 used
    assert len({s["id"] for s in signals}) == len(signals)

    metrics = worker.get("/metrics").decode()
    assert 'engagement_account_health_accounts{band="green"} 2.0' in metrics
    assert at(0) > 0


def account_outputs(messages: list[dict[str, Any]]) -> tuple[list[str], list[str]]:
    """The account_health snapshots and signals, canonical and sorted (one per id)."""
    snaps = {doc["id"]: doc for doc in messages if doc.get("kind") == "account_health"}
    sigs = {doc["id"]: doc for doc in messages if doc.get("type") == "account_health"}
    dump = functools.partial(orjson.dumps, option=orjson.OPT_SORT_KEYS)
    return sorted(dump(d).decode() for d in snaps.values()), sorted(dump(d).decode() for d in sigs.values())


def test_account_health_is_the_same_however_slowly_the_worker_runs(make_settings: Any, workers: Any) -> None:
    """The same events through a worker that runs freely and through one stopped for 4 s of every
    5 (SIGSTOP: longer than idle_partition_s, the wall-clock setting): every account snapshot and
    signal is the same, content and id. Nothing but event time decides them."""
    docs = history().sorted()
    clean_settings = make_settings(idle_partition_s=3.0)
    clean, _ = run_pipeline(clean_settings, docs, workers, topics=(clean_settings.metrics_topic,))

    settings = make_settings(idle_partition_s=3.0)
    worker = workers(settings, "slowed").wait_ready(partitions=settings.partitions)
    assert worker.proc is not None
    pid = worker.proc.pid
    stop = threading.Event()

    def throttle() -> None:
        while not stop.is_set():
            os.kill(pid, signal.SIGSTOP)
            stop.wait(4.0)
            os.kill(pid, signal.SIGCONT)
            stop.wait(1.0)

    slowing = threading.Thread(target=throttle, daemon=True)
    slowing.start()
    try:
        asyncio.run(send_all(settings, [(d["user_id"].encode(), orjson.dumps(d)) for d in docs]))
        close_stream(settings, max(d["timestamp"] for d in docs))

        def done() -> bool:
            try:
                figures = worker.figures()
            except OSError:  # stopped right now
                return False
            return figures["outcomes"].get("applied", 0) >= len(docs) and figures["closed"] >= settings.partitions

        wait_for(done, timeout=240, interval=1, message="every event applied by the slowed worker")
        time.sleep(6)  # a few more stops while the last days are combined
    finally:
        stop.set()
        slowing.join()
        os.kill(pid, signal.SIGCONT)
    time.sleep(3 * settings.commit_interval_s + 1)
    slowed = [*asyncio.run(read_json(settings, settings.signals_topic, idle_timeout=4.0)),
              *asyncio.run(read_json(settings, settings.metrics_topic, idle_timeout=4.0))]
    want = account_outputs([*clean[clean_settings.signals_topic], *clean[clean_settings.metrics_topic]])
    got = account_outputs(slowed)
    assert len(want[0]) == 2 * (LAST_DAY + 1) and want[1]
    assert got == want
