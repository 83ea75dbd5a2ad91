"""``/users/<id>`` and ``streams user``: one user's state from any of two worker processes, checked
against the events sent (counted here in plain Python) and the signals the pipeline published."""

from __future__ import annotations

import asyncio
import json
import re
import urllib.error
import urllib.request
from collections import defaultdict
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from aiokafka.partitioner import DefaultPartitioner

from streams.config import RISK_BANDS
from streams.tools.kafkaio import event_records, read_json, send_all
from tests.deploy.test_grafana import event_time, simulate_history, user_of
from tests.support.fleet import start_fleet
from tests.support.wait import wait_for
from tests.unit.config.test_config import run_cli

pytestmark = pytest.mark.integration
ACTIVITY = ("track", "page", "screen")


def get(url: str) -> tuple[int, dict[str, Any]]:
    try:
        with urllib.request.urlopen(url, timeout=10) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def doc_time(doc: dict[str, Any]) -> str:
    return event_time(doc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def home_partition(user: str, partitions: int) -> int:
    """Kafka's default partitioner (murmur2), as any producer keyed by user id would pick it."""
    return DefaultPartitioner()(user.encode(), list(range(partitions)), list(range(partitions)))


def test_any_worker_answers_for_any_user(make_settings: Any, workers: Any, tmp_path: Path) -> None:
    settings = make_settings(partitions=4)
    fleet = start_fleet(workers, settings, tmp_path)
    owned = [{int(p) for p in w.figures()["partitions"]} for w in fleet]
    events = simulate_history(settings, tmp_path, users=120, days=10)
    applied = len(events)
    wait_for(lambda: sum(sum(w.figures()["outcomes"].values()) for w in fleet) >= applied, timeout=90,
             message=f"{applied} events consumed")

    by_user: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for doc in events:
        by_user[user_of(doc)].append(doc)
    # A user with activity on several days and none in the last day, owned by the second worker
    # (asked of the first). Three fresh events of theirs then wait for the watermark (it stays the
    # allowed lateness behind the newest event), which is what a session in progress looks like.
    now = datetime.now(timezone.utc)
    user = next(u for u in sorted(by_user) if home_partition(u, 4) in owned[1]
                and max(event_time(d) for d in by_user[u]) < now - timedelta(days=1)
                and len({event_time(d).date() for d in by_user[u] if d["type"] in ACTIVITY}) >= 3)
    fresh = [{"event_id": f"fresh-{i}", "type": "page", "event": "home", "user_id": user,
              "timestamp": (now - timedelta(seconds=90 - 30 * i)).isoformat(timespec="milliseconds")}
             for i in range(3)]
    asyncio.run(send_all(settings, event_records(fresh)))
    mine = by_user[user] + fresh
    wait_for(lambda: get(f"{fleet[1].url}/users/{user}")[1].get("events") == len(mine), timeout=30,
             message="the fresh events applied")
    status, doc = get(f"{fleet[0].url}/users/{user}")
    assert status == 200, doc
    assert doc["user_id"] == user and doc["partition"] == home_partition(user, 4)
    assert doc["events"] == len(mine)
    ordered = sorted(mine, key=event_time)
    assert doc["first_event"] == doc_time(ordered[0]) and doc["last_event"] == doc_time(ordered[-1])

    # Activity: the active days of the 30 days ending on the day it reports.
    activity = doc["activity"]
    as_of = datetime.fromisoformat(activity["as_of_day"]).date()
    days = sorted({event_time(d).date() for d in mine if d["type"] in ACTIVITY})
    recent = [d for d in days if as_of - timedelta(days=29) <= d <= as_of]
    assert activity["active_days"] == [d.isoformat() for d in recent]
    assert activity["active_days_30d"] == len(recent)
    assert activity["active_days_7d"] == len([d for d in recent if d > as_of - timedelta(days=7)])
    assert activity["first_active_day"] == days[0].isoformat() and activity["last_active_day"] == days[-1].isoformat()
    assert activity["lifecycle"] in ("new", "returning", "resurrected", "dormant")
    accounts = [d["account_id"] for d in sorted(mine, key=event_time) if d.get("account_id")]
    assert doc["accounts"]["account"] == accounts[-1]

    # Sessions: the fresh events wait for the watermark; nothing older is open.
    sessions = doc["sessions"]
    assert sessions["open_session"] is None and sessions["waiting_events"] == 3
    assert sessions["waiting_since"] == doc_time(fresh[0])

    # Score and risk band, as the pipeline published them in its signals.
    assert doc["engagement"]["score"] is None or 0 <= doc["engagement"]["score"] <= 100
    signals = asyncio.run(read_json(settings, settings.signals_topic, idle_timeout=3))
    risk_changes = [s for s in signals if s["type"] == "churn_risk" and s["user_id"] == user]
    band = doc["risk"]["band"]
    assert band in RISK_BANDS
    if risk_changes:
        assert band == max(risk_changes, key=lambda s: s["event_time_ms"])["to"]
    else:
        assert band == RISK_BANDS[0]  # the first assessment, when low, is not signalled
    for reason in doc["risk"].get("reasons", []):
        assert reason["code"] and reason["text"]

    # Both workers give the same answer; the command prints it readably and as JSON.
    assert get(f"{fleet[1].url}/users/{user}") == (200, doc)
    printed = run_cli("user", user, "--url", fleet[0].url)
    assert printed.returncode == 0, printed.stderr
    text = printed.stdout.decode()
    assert user in text and re.search(rf"churn risk\s+{band}", text) and accounts[-1] in text
    as_json = run_cli("user", user, "--url", fleet[0].url, "--json")
    assert json.loads(as_json.stdout) == doc

    # An unknown user: 404 with a message from either worker, and one line from the command.
    for worker in fleet:
        status, missing = get(f"{worker.url}/users/nobody-at-all")
        assert status == 404 and "unknown user 'nobody-at-all'" in missing["error"]
    result = run_cli("user", "nobody-at-all", "--url", fleet[1].url)
    err = result.stderr.decode()
    assert result.returncode == 1 and "404 unknown user 'nobody-at-all'" in err and len(err.strip().splitlines()) == 1


def test_user_command_names_an_unreachable_worker() -> None:
    from streams.local.broker import free_port

    url = f"http://127.0.0.1:{free_port()}"
    result = run_cli("user", "u1", "--url", url)
    err = result.stderr.decode()
    assert result.returncode == 1 and url in err and "refused" in err.lower() and "Traceback" not in err
