"""Randomized event streams that stress sessionization: gaps around the idle threshold and the
timeout (29 / 30 / 30 min + 1 ms / 31 min), runs longer than the maximum length, equal
timestamps, out-of-order delivery within the lateness, retries, too-late events, silent users."""

from __future__ import annotations

import random
import time
from typing import Any

import orjson

from streams.capabilities.registry import build_capabilities
from streams.config import MS_PER_DAY, MS_PER_HOUR, MS_PER_MINUTE, MS_PER_SECOND
from streams.core.contract import parse_time_ms
from streams.core.routing import HomePartitions
from tests.support.evidence import ReferenceWatermark
from tests.support.fakes import unit_runtime, unit_settings

T0: int = parse_time_ms("2026-11-02T10:00:00Z")  # type: ignore[assignment]

PLANS = ("free", "team", "business")
#: (weight, gap in ms or (low, high) range)
GAPS = ((30, (0, 60 * MS_PER_SECOND)), (12, (60 * MS_PER_SECOND, 10 * MS_PER_MINUTE)),
        (6, (4 * MS_PER_MINUTE, 6 * MS_PER_MINUTE)), (3, 0),
        (3, 29 * MS_PER_MINUTE), (3, 30 * MS_PER_MINUTE), (3, 30 * MS_PER_MINUTE + 1), (3, 31 * MS_PER_MINUTE),
        (4, (2 * MS_PER_HOUR, 30 * MS_PER_HOUR)))
NAMES = (("track", "page_ping"), ("track", "page_ping"), ("track", "page_ping"), ("track", "clicked"),
         ("track", "report_created"), ("track", "dashboard_shared"), ("track", "invite_sent"),
         ("track", "export_completed"), ("track", "feature_used"), ("track", "feature_used"),
         ("page", "reports"), ("page", None), ("screen", "home"))
FEATURES = ("reports", "dashboards", "alerts", "exports", "api", "integrations", "legacy")


def _gap(rng: random.Random) -> int:
    weights = [w for w, _ in GAPS]
    _, gap = rng.choices(GAPS, weights)[0]
    return rng.randint(*gap) if isinstance(gap, tuple) else gap


def user_events(rng: random.Random, user: str, start_ms: int, count: int, plan: str | None) -> list[dict[str, Any]]:
    """One user's events in time order: an identify first (when ``plan``), then activity."""
    docs: list[dict[str, Any]] = []
    if plan is not None:
        docs.append({"event_id": f"{user}-id", "type": "identify", "user_id": user,
                     "timestamp": start_ms - 1, "traits": {"plan": plan}})
    ts = start_ms
    for i in range(count):
        kind, name = rng.choice(NAMES)
        doc: dict[str, Any] = {"event_id": f"{user}-{i}", "type": kind, "user_id": user, "timestamp": ts,
                               "account_id": f"acct-{user[-1]}"}
        if name:
            doc["event"] = name
        if name == "feature_used":
            doc["properties"] = {"feature": rng.choice(FEATURES)}
        docs.append(doc)
        ts += _gap(rng)
    return docs


def scenario(seed: int, users: int, start_ms: int, events_per_user: tuple[int, int] = (5, 60),
             lateness_ms: int = 10 * MS_PER_MINUTE, retries: float = 0.04,
             too_late: int = 5) -> tuple[list[dict[str, Any]], dict[str, str], int]:
    """(stream in delivery order, plan per user, number of retries).

    Delivery is event-time order shuffled within blocks of half the lateness, so nothing is late
    except the ``too_late`` events appended at the end, an hour older than the watermark of a
    partition holding every user (:class:`~tests.support.evidence.ReferenceWatermark`). Retries repeat
    an event (same event_id) right after it. Some users stop early: they go silent.
    """
    rng = random.Random(seed)
    docs: list[dict[str, Any]] = []
    plans: dict[str, str] = {}
    for u in range(users):
        user = f"user-{seed}-{u}"
        plan = rng.choice(PLANS) if rng.random() < 0.8 else None
        if plan:
            plans[user] = plan
        begin = start_ms + rng.randint(0, 3 * 24 * MS_PER_HOUR)
        docs += user_events(rng, user, begin, rng.randint(*events_per_user), plan)
    block = lateness_ms // 2
    docs.sort(key=lambda d: (d["timestamp"] // block, rng.random()))
    stream: list[dict[str, Any]] = []
    repeated = 0
    for doc in docs:
        stream.append(doc)
        if rng.random() < retries:
            stream.append(dict(doc))
            repeated += 1
    watermark = ReferenceWatermark(lateness_ms)  # of one partition holding every user
    for doc in stream:
        watermark.observe(doc["user_id"], doc["timestamp"])
    for i in range(too_late):
        stream.append({"event_id": f"late-{seed}-{i}", "type": "track", "event": "clicked",
                       "user_id": f"user-{seed}-{i}", "timestamp": (watermark.value or 0) - MS_PER_HOUR})
    return stream, plans, repeated


def doc(event_id: str, minute: float, name: str | None = "clicked", user: str = "u1", kind: str = "track",
        **extra: Any) -> dict[str, Any]:
    out: dict[str, Any] = {"event_id": event_id, "type": kind, "user_id": user,
                           "timestamp": T0 + round(minute * MS_PER_MINUTE)}
    if name:
        out["event"] = name
    out.update(extra)
    return out


class Pipeline:
    """A unit-level runtime (fake table and sink) with the default capabilities; remembers what it accepted."""

    def __init__(self, table: Any = None, **overrides: Any) -> None:
        self.settings = unit_settings(**overrides)
        self.runtime, self.table, self.sink = unit_runtime(self.settings, build_capabilities(self.settings), table)
        self.accepted: list[dict[str, Any]] = []
        self.offset = 0

    def feed(self, docs: list[dict[str, Any]]) -> list[str]:
        outcomes = []
        for d in docs:
            outcome = self.runtime.handle(0, d["user_id"].encode(), orjson.dumps(d), self.offset,
                                          d["timestamp"] + 1000)
            self.offset += 1
            if outcome == "applied":
                self.accepted.append(d)
            outcomes.append(outcome)
        return outcomes

    def sweep(self, days: float = 3) -> None:
        """Let event time run on with no events (what an idle partition does): users go silent."""
        self.runtime.processor(0).tick(time.time() * 1000 + days * MS_PER_DAY)

    def sessions(self) -> list[dict[str, Any]]:
        return self.sink.values(self.settings.sessions_topic)

    def partials(self, kind: str) -> dict[str, dict[str, Any]]:
        return {p["period"]: p["figures"] for p in self.sink.values(self.settings.partials_topic)
                if p["kind"] == kind and p["final"]}


def canonical(message: dict[str, Any]) -> bytes:
    return orjson.dumps(message, option=orjson.OPT_SORT_KEYS)
