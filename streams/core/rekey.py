"""The internal re-key topic's records, and the close record on the events topic.

The re-key topic (``<app_id>-rekey``, partitioned like the events topic) carries two kinds of
records to a partition:

* a *forwarded event*: an event another partition read, judged on time there, for a user who
  lives here. Key: the user id. Value: ``b"E"``, the sender, the source offset, the event time as
  judged there (client clock skew corrected), the message's Kafka timestamp and the original
  message bytes.
* a *marker*: the source watermark of another partition (``b"W"``, the sender, the watermark,
  whether that partition is idle). No key.

A source partition sends both through one producer in order, so on the re-key topic every marker
comes after the events its partition forwarded before it.

A *close record* on the events topic (key :data:`CLOSE_KEY`, written by ``streams close``) tells a
partition that its input is finished through an event time: every day up to that one is closed.
"""

from __future__ import annotations

import struct
from typing import NamedTuple

import orjson

from streams.config import RESERVED_KEY_PREFIX
from streams.core.eventtime import iso_ms

_EVENT = struct.Struct(">cHqqq")
_MARK = struct.Struct(">cHq?")
EVENT_KIND = b"E"
MARK_KIND = b"W"
#: The key of a close record on the events topic (a reserved key: never a user id).
CLOSE_KEY = RESERVED_KEY_PREFIX + b"close"


class Forwarded(NamedTuple):
    source: int
    offset: int
    ts: int
    received_ms: int
    raw: bytes


class Mark(NamedTuple):
    source: int
    watermark: int
    idle: bool


def forwarded(source: int, offset: int, ts: int, received_ms: int, raw: bytes) -> bytes:
    return _EVENT.pack(EVENT_KIND, source, offset, ts, received_ms) + raw


def mark(source: int, watermark: int, idle: bool) -> bytes:
    return _MARK.pack(MARK_KIND, source, watermark, idle)


def parse(value: bytes) -> Forwarded | Mark | None:
    """A re-key record, or None for bytes that are not one (never produced by the pipeline)."""
    kind = value[:1]
    if kind == EVENT_KIND and len(value) >= _EVENT.size:
        _, source, offset, ts, received_ms = _EVENT.unpack_from(value)
        return Forwarded(source, offset, ts, received_ms, value[_EVENT.size:])
    if kind == MARK_KIND and len(value) == _MARK.size:
        _, source, watermark, idle = _MARK.unpack(value)
        return Mark(source, watermark, idle)
    return None


def close_record(through_ms: int) -> bytes:
    return orjson.dumps({"close_through_ms": through_ms, "close_through": iso_ms(through_ms)})


def close_through(value: bytes | None) -> int | None:
    """The event time a close record closes through (None: not a valid close record)."""
    try:
        doc = orjson.loads(value or b"")
    except orjson.JSONDecodeError:
        return None
    through = doc.get("close_through_ms") if isinstance(doc, dict) else None
    return through if isinstance(through, int) and not isinstance(through, bool) else None
