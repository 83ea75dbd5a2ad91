"""Hand-made usage histories for the engagement, risk and account tests, and one pipeline run.

Day 0 is a Monday. Each active day is one session at 10:00 UTC: a page view, then a heartbeat or
core action every 4 minutes (so the session's active time is exactly ``minutes``), cycling through
the four configured core actions.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any, Callable, Iterable

import orjson

from streams.config import MS_PER_DAY, MS_PER_MINUTE, Settings
from streams.core.contract import parse_time_ms
from streams.local.worker_process import WorkerProcess
from streams.tools.close import close_stream
from streams.tools.kafkaio import read_json, send_all

DAY0_MS = parse_time_ms("2026-03-02T00:00:00Z") or 0  # a Monday
DAY0 = DAY0_MS // MS_PER_DAY
CORE = ("report_created", "dashboard_shared", "invite_sent", "export_completed")
SESSION_HOUR = 10


def at(day: int, minute: int = 0) -> int:
    """Epoch ms of ``minute`` past 10:00 on day ``day``."""
    return DAY0_MS + day * MS_PER_DAY + SESSION_HOUR * 3_600_000 + minute * MS_PER_MINUTE


def weekdays(first: int, last: int) -> list[int]:
    return [d for d in range(first, last + 1) if d % 7 < 5]


class History:
    """Events of a set of users, built day by day."""

    def __init__(self) -> None:
        self.docs: list[dict[str, Any]] = []
        self._seq = 0

    def _add(self, user: str, ts: int, kind: str, name: str | None = None, **extra: Any) -> None:
        self._seq += 1
        doc: dict[str, Any] = {"event_id": f"{user}-{self._seq}", "type": kind, "user_id": user, "timestamp": ts}
        if name is not None:
            doc["event"] = name
        doc.update(extra)
        self.docs.append(doc)

    def identify(self, user: str, day: int, account: str | None = None, seats: int | None = None,
                 plan: str = "team") -> None:
        """Traits before the user's session of ``day`` (and the account's seats, when given)."""
        self._add(user, at(day) - 2000, "identify", traits={"plan": plan})
        if account is not None:
            traits: dict[str, Any] = {"name": account} if seats is None else {"name": account, "seats": seats}
            self._add(user, at(day) - 1000, "group", account_id=account, traits=traits)

    def session(self, user: str, day: int, minutes: int = 20, cores: int = 4, account: str | None = None,
                extra: Iterable[str] = ()) -> None:
        """One session: ``minutes`` of active time with ``cores`` core actions, then ``extra`` events."""
        acct = {"account_id": account} if account else {}
        self._add(user, at(day), "page", "home", **acct)
        steps = minutes // 4
        for step in range(1, steps + 1):
            name = CORE[(step - 1) % len(CORE)] if step <= cores else "page_ping"
            self._add(user, at(day, 4 * step), "track", name, **acct)
        for i, name in enumerate(extra, start=1):
            self._add(user, at(day, 4 * steps) + i * 1000, "track", name, **acct)

    def days(self, user: str, days: Iterable[int], **session: Any) -> None:
        for day in days:
            self.session(user, day, **session)

    def sorted(self) -> list[dict[str, Any]]:
        return sorted(self.docs, key=lambda d: d["timestamp"])


def run_pipeline(settings: Settings, docs: list[dict[str, Any]],
                 start_worker: Callable[[Settings], WorkerProcess],
                 topics: tuple[str, ...] = ()) -> tuple[dict[str, list[Any]], WorkerProcess]:
    """Send ``docs`` (event-time order), close the stream through their last day (``streams
    close``), wait for the worker to apply everything and read the close records; returns each
    topic's messages and the worker."""
    worker = start_worker(settings).wait_ready(partitions=settings.partitions)
    records = [(d["user_id"].encode(), orjson.dumps(d)) for d in docs]
    asyncio.run(send_all(settings, records))
    close_stream(settings, max(d["timestamp"] for d in docs))
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        figures = worker.figures()
        if figures["outcomes"].get("applied", 0) >= len(records) and figures["closed"] >= settings.partitions:
            break
        time.sleep(0.3)
    else:
        raise AssertionError(f"worker applied {worker.figures()['outcomes']} of {len(records)}")
    time.sleep(3 * settings.commit_interval_s + 1)  # outputs go out with the next commit
    out = {}
    for topic in (settings.signals_topic, *topics):
        out[topic] = asyncio.run(read_json(settings, topic, idle_timeout=4.0))
    return out, worker
