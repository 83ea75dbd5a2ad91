"""The event contract: raw bytes in, a validated :class:`Event` or a :class:`Rejection` out.

Validation uses the JSON Schema file in ``schemas/`` itself (through jsonschema-rs, a compiled
Draft 2020-12 validator), so the runtime can never disagree with the published contract.
Checks that JSON Schema cannot express (size, timestamp sanity, clock skew) live here too.

Every timestamp failure is ``bad_timestamp``, whether the schema catches it (not a string or an
integer, no UTC offset, outside the integer range) or the bounds do (``min_timestamp_ms``,
``max_future_s``); the message names the bound, so an operator knows which setting to change.
"""

from __future__ import annotations

import functools
from datetime import datetime
from typing import Any

import jsonschema_rs
import orjson

from streams.config import ACTIVITY_TYPES, EVENT_SCHEMA_FILE, SCHEMAS_DIR, Settings
from streams.core.eventtime import iso_ms

#: Fields holding a time; a schema violation in one of them alone is a ``bad_timestamp``.
TIME_FIELDS = ("timestamp", "sent_at")


class Rejection:
    """Why a message cannot be used; it goes to the dead-letter topic with these fields."""

    __slots__ = ("reason", "message")

    def __init__(self, reason: str, message: str) -> None:
        self.reason = reason
        self.message = message

    def __repr__(self) -> str:
        return f"Rejection({self.reason!r}, {self.message!r})"


class Event:
    """A validated product event with its event time normalized to UTC epoch milliseconds."""

    __slots__ = ("event_id", "type", "name", "user", "account", "ts", "properties", "traits",
                 "context", "doc", "is_activity", "classified")

    def __init__(self, doc: dict[str, Any], user: str, ts: int) -> None:
        self.doc = doc
        self.event_id: str = doc["event_id"]
        self.type: str = doc["type"]
        self.name: str = doc.get("event") or ""
        self.user = user
        self.account: str | None = doc.get("account_id") or None
        self.ts = ts
        self.properties: dict[str, Any] = doc.get("properties") or {}
        self.traits: dict[str, Any] = doc.get("traits") or {}
        self.context: dict[str, Any] = doc.get("context") or {}
        self.is_activity: bool = self.type in ACTIVITY_TYPES
        """Only track, page and screen events make a user active; identify and group describe."""
        self.classified: Any = None
        """(classifier, result) of the first classification (see ``classify.Classifier``)."""


@functools.lru_cache(maxsize=None)
def load_schema() -> dict[str, Any]:
    """The event JSON Schema as published in ``schemas/``."""
    return orjson.loads((SCHEMAS_DIR / EVENT_SCHEMA_FILE).read_bytes())


@functools.lru_cache(maxsize=None)
def _validator() -> Any:
    return jsonschema_rs.validator_for(load_schema())


def schema_errors(doc: Any) -> list[tuple[str, str]]:
    """Schema violations of ``doc`` as (where, what), ``where`` a JSON path such as ``timestamp``
    or ``(root)`` (empty when it conforms)."""
    errors = []
    for err in _validator().iter_errors(doc):
        where = "/".join(str(p) for p in err.instance_path) or "(root)"
        errors.append((where, err.message))
    return errors


@functools.lru_cache(maxsize=None)
def epoch_ms_range() -> tuple[int, int]:
    """The integer range the schema accepts for a timestamp (epoch milliseconds)."""
    for option in load_schema()["properties"]["timestamp"]["oneOf"]:
        if option.get("type") == "integer":
            return option["minimum"], option["maximum"]
    raise ValueError("the event schema has no integer timestamp")


def time_problem(name: str, value: Any) -> str:
    """Why ``value`` is not a usable time for field ``name`` (for a ``bad_timestamp`` message)."""
    if isinstance(value, int) and not isinstance(value, bool):
        low, high = epoch_ms_range()
        return f"{name} {value} is outside epoch milliseconds {low}..{high}"
    if isinstance(value, str):
        return f"{name} {value!r} is not RFC 3339 with a UTC offset (e.g. 2026-11-02T14:03:11.250Z)"
    return f"{name} {value!r} is neither an RFC 3339 string nor epoch milliseconds"


def parse_time_ms(value: Any) -> int | None:
    """Epoch milliseconds from an RFC 3339 string (with offset) or an integer; None if unusable."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str):
        try:
            moment = datetime.fromisoformat(value)
        except ValueError:
            return None
        if moment.tzinfo is None:  # RFC 3339 requires an offset; a bare local time is ambiguous
            return None
        return int(moment.timestamp() * 1000)
    return None


class Decoder:
    """Decodes and judges raw messages against the contract and the worker's settings."""

    def __init__(self, settings: Settings) -> None:
        self.max_bytes = settings.max_event_bytes
        self.min_ts = settings.min_timestamp_ms
        self.max_future_ms = settings.max_future_ms
        self.max_skew_ms = settings.max_clock_skew_ms
        self._is_valid = _validator().is_valid

    def decode(self, raw: bytes | None, received_ms: int) -> Event | Rejection:
        """Judge one message; ``received_ms`` is its Kafka timestamp (arrival, by the broker's or producer's clock)."""
        if not raw:
            return Rejection("empty", "message has no value")
        if len(raw) > self.max_bytes:
            return Rejection("too_large", f"message is {len(raw)} bytes; the limit is {self.max_bytes}")
        try:
            doc = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            return Rejection("invalid_json", f"not valid JSON: {exc}")
        if not self._is_valid(doc):
            if not isinstance(doc, dict):
                return Rejection("schema", f"(root): event must be a JSON object, got {type(doc).__name__}")
            errors = schema_errors(doc)
            fields = {where.split("/", 1)[0] for where, _ in errors}
            if fields and fields <= set(TIME_FIELDS):
                return Rejection("bad_timestamp", "; ".join(time_problem(name, doc[name])
                                                           for name in TIME_FIELDS if name in fields))
            return Rejection("schema", "; ".join(f"{where}: {message}" for where, message in errors[:5]))
        ts = parse_time_ms(doc["timestamp"])
        if ts is None:
            return Rejection("bad_timestamp", time_problem("timestamp", doc["timestamp"]))
        sent_at = doc.get("sent_at")
        if sent_at is not None:
            sent_ms = parse_time_ms(sent_at)
            if sent_ms is None:
                return Rejection("bad_timestamp", time_problem("sent_at", sent_at))
            skew = received_ms - sent_ms
            # A small gap between the client's send time and arrival is the client's clock being
            # wrong (Segment's correction). A large one is a replay or an offline queue: keep it.
            if abs(skew) <= self.max_skew_ms:
                ts += skew
        if ts < self.min_ts:
            return Rejection("bad_timestamp", f"timestamp {doc['timestamp']!r} is before min_timestamp_ms "
                             f"({self.min_ts} = {iso_ms(self.min_ts)}); set it lower to accept older data")
        if ts > received_ms + self.max_future_ms:
            ahead_h = (ts - received_ms) / 3_600_000
            return Rejection("bad_timestamp", f"timestamp {doc['timestamp']!r} is {ahead_h:.1f} h ahead of its "
                             f"arrival ({iso_ms(received_ms)}); the limit is max_future_s = "
                             f"{self.max_future_ms // 1000}")
        user = doc.get("user_id") or doc.get("anonymous_id")
        return Event(doc, user, ts)

    @staticmethod
    def rebuild(raw: bytes, ts: int) -> Event:
        """An event another partition decoded and judged (forwarded on the re-key topic, with its
        event time as judged there): parsed again, not validated again."""
        doc = orjson.loads(raw)
        return Event(doc, doc.get("user_id") or doc.get("anonymous_id"), ts)
