"""Malformed messages sprinkled into a simulated stream, for the dead-letter view and its tests.

Bad input cannot be an event document, so faults are raw ``(key, value)`` byte pairs made by
breaking a real event of the stream: each kind maps to the dead-letter reason the worker's
decoder gives it (:data:`FAULT_REASONS`), so a demo or a test can predict its dead letters.
"""

from __future__ import annotations

from random import Random
from typing import Callable, Iterable, Iterator

import orjson

from streams.config import Settings

Record = tuple[bytes | None, bytes]

#: Fault kind -> the dead-letter reason ``streams.core.contract.Decoder`` gives it.
FAULT_REASONS = {
    "invalid_json": "invalid_json",
    "missing_event_id": "schema",
    "missing_user": "schema",
    "wrong_type": "schema",
    "oversized": "too_large",
    "ancient_timestamp": "bad_timestamp",
    "future_timestamp": "bad_timestamp",
}
FAULTS = tuple(FAULT_REASONS)


def _without(field: str) -> Callable[[dict], dict]:
    return lambda doc: {k: v for k, v in doc.items() if k != field}


_BREAK: dict[str, Callable[[dict], dict]] = {
    "missing_event_id": _without("event_id"),
    "missing_user": _without("user_id"),
    "wrong_type": lambda doc: {**doc, "type": "click"},
    "ancient_timestamp": lambda doc: {**doc, "timestamp": "1970-01-01T00:00:00.000Z"},
    "future_timestamp": lambda doc: {**doc, "timestamp": "2999-12-31T23:59:59.000Z"},
}


def malformed(value: bytes, kind: str, max_event_bytes: int = Settings.max_event_bytes) -> bytes:
    """The event ``value`` broken in the way ``kind`` names (one line: never contains a newline)."""
    if kind == "invalid_json":
        return value[: max(1, len(value) // 2)]  # a message cut short in transit
    doc = orjson.loads(value)
    doc["event_id"] = f"{doc.get('event_id', 'x')}-bad"  # never the id of the good event it came from
    if kind == "oversized":
        doc["properties"] = {**doc.get("properties", {}), "blob": "x" * (max_event_bytes + 1)}
        return orjson.dumps(doc)
    return orjson.dumps(_BREAK[kind](doc))


def with_malformed(records: Iterable[Record], bad_rate: float, seed: int,
                   max_event_bytes: int = Settings.max_event_bytes) -> Iterator[Record]:
    """The records unchanged, plus after each one, with chance ``bad_rate``, a broken copy of it.

    The good stream is kept intact (a consumer still sees every simulated event); the faults
    are extra and deterministic for a given seed. A fault keeps its neighbour's key, except a
    ``missing_user`` fault, which has none (as a producer without a user would send it).
    """
    if not 0.0 <= bad_rate <= 1.0:
        raise ValueError(f"bad_rate: must be a share between 0 and 1, got {bad_rate}")
    rng = Random(f"faults:{seed}")
    for key, value in records:
        yield key, value
        if bad_rate and rng.random() < bad_rate:
            kind = FAULTS[int(rng.random() * len(FAULTS))]
            yield (None if kind == "missing_user" else key), malformed(value, kind, max_event_bytes)
