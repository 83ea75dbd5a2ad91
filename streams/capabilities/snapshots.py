"""The rollup: adds up the partitions' shares of a snapshot and publishes the combined figures.

Each source partition publishes its additive share of a snapshot (kind + period, e.g.
``activity_day`` / ``2026-11-02``) to the partials topic, keyed ``kind|period``; so one partition
of that topic, and one worker, owns each snapshot. This agent keeps the latest share of every
partition in a changelog-backed table (a restart resumes where it stopped), sums them (nested
dicts recursively) and publishes the result on the metrics topic: provisional while some
partition has not closed the period, final once all ``settings.partitions`` have.

Ratios cannot be summed, so they are derived after summing by a per-kind finisher; a capability
registers its own with :func:`register_finisher` (``@register_finisher("sessions_day")``).

Output ids are deterministic: ``kind|period|final`` for the one final snapshot, and the hash of
the content for provisional ones, so a replay re-emits the same ids and a consumer can de-duplicate.
"""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING, Any, Callable

import orjson

if TYPE_CHECKING:
    import faust

    from streams.config import Settings

ROLLUP_TABLE = "rollup"
Finisher = Callable[[dict[str, Any]], dict[str, Any]]
_FINISHERS: dict[str, Finisher] = {}


def register_finisher(kind: str) -> Callable[[Finisher], Finisher]:
    """Decorator: derive a kind's ratios (or anything non-additive) from its summed figures."""

    def register(fn: Finisher) -> Finisher:
        _FINISHERS[kind] = fn
        return fn

    return register


def finish(kind: str, figures: dict[str, Any]) -> dict[str, Any]:
    fn = _FINISHERS.get(kind)
    return fn(figures) if fn is not None else figures


def add_figures(total: dict[str, Any], part: dict[str, Any]) -> dict[str, Any]:
    """``total`` plus ``part``: numbers add, nested dicts add recursively, anything else is kept
    from the first share that has it. Returns ``total`` (a new dict when it was empty)."""
    out = total if total else {}
    for key, value in part.items():
        mine = out.get(key)
        if isinstance(value, dict):
            out[key] = add_figures(mine if isinstance(mine, dict) else {}, value)
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            out[key] = (mine if isinstance(mine, (int, float)) else 0) + value
        elif key not in out:
            out[key] = value
    return out


def snapshot_id(kind: str, period: str, final: bool, figures: dict[str, Any]) -> str:
    text = f"{kind}|{period}|final" if final else \
        f"{kind}|{period}|provisional|" + orjson.dumps(figures, option=orjson.OPT_SORT_KEYS).decode()
    return hashlib.blake2b(text.encode(), digest_size=16).hexdigest()


class Rollup:
    """The combining logic, independent of Faust: ``apply`` one partial to a stored entry.

    An entry is ``{"shares": {partition: {"final", "figures"}}, "id": last_emitted}`` while open,
    and ``{"final": snapshot}`` once every partition is final (the shares are dropped then: the
    table keeps one small record per period).
    """

    def __init__(self, partitions: int) -> None:
        self.partitions = partitions

    def apply(self, entry: dict[str, Any] | None, partial: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any] | None]:
        """(new entry, snapshot to publish or None)."""
        if entry is not None and "final" in entry:
            # A partition re-sent its final share (a replay after a restart): repeat the answer.
            return entry, entry["final"] if partial["final"] else None
        shares: dict[str, Any] = dict(entry["shares"]) if entry else {}
        key = str(partial["partition"])
        held = shares.get(key)
        if held is not None and held["final"] and not partial["final"]:
            return entry or {"shares": shares}, None  # a provisional share never replaces a final one
        shares[key] = {"final": bool(partial["final"]), "figures": partial["figures"]}
        snapshot = self.combine(partial["kind"], partial["period"], shares)
        if snapshot["final"]:
            return {"final": snapshot}, snapshot
        if entry is not None and entry.get("id") == snapshot["id"]:
            return {"shares": shares, "id": snapshot["id"]}, None
        return {"shares": shares, "id": snapshot["id"]}, snapshot

    def combine(self, kind: str, period: str, shares: dict[str, Any]) -> dict[str, Any]:
        total: dict[str, Any] = {}
        for key in sorted(shares, key=int):
            total = add_figures(total, shares[key]["figures"])
        finals = sum(1 for share in shares.values() if share["final"])
        final = finals >= self.partitions
        figures = finish(kind, total)
        return {"id": snapshot_id(kind, period, final, figures), "kind": kind, "period": period,
                "final": final, "partitions": self.partitions, "partitions_reported": len(shares),
                "partitions_final": finals, "figures": figures}


Outputs = list[tuple[str, dict[str, Any]]]


def install_table_agent(app: "faust.App", settings: "Settings", name: str, source: str, table_name: str,
                        apply: Callable[[dict[str, Any] | None, dict[str, Any], int], tuple[dict[str, Any], Outputs]]) -> None:
    """An agent that folds JSON messages of ``source`` into a changelog-backed table entry per key
    and publishes what ``apply(entry, message, partition)`` returns as ``(topic, document)`` pairs,
    keyed like the message. Reused by every combiner of partition shares (the rollup, accounts)."""
    raw = dict(key_type=bytes, value_type=bytes, key_serializer="raw", value_serializer="raw",
               partitions=settings.partitions)
    topics: dict[str, Any] = {}
    table = app.Table(table_name, partitions=settings.partitions, key_type=bytes, value_type=bytes)

    @app.agent(app.topic(source, **raw), name=name)
    async def combine(stream: "faust.StreamT") -> None:
        async for event in stream.events():
            message = event.message
            if message.key is None or not message.value:
                continue
            stored = table.get(message.key)
            entry, outputs = apply(orjson.loads(stored) if stored else None, orjson.loads(message.value),
                                   message.partition)
            table[message.key] = orjson.dumps(entry)
            for topic, doc in outputs:
                if topic not in topics:
                    topics[topic] = app.topic(topic, **raw)
                await topics[topic].send(key=message.key, value=orjson.dumps(doc))


def install_rollup(app: "faust.App", settings: "Settings") -> None:
    """Add the rollup agent and its table to a worker's Faust app."""
    rollup = Rollup(settings.partitions)

    def apply(entry: dict[str, Any] | None, partial: dict[str, Any], partition: int) -> tuple[dict[str, Any], Outputs]:
        entry, snapshot = rollup.apply(entry, partial)
        return entry, [] if snapshot is None else [(settings.metrics_topic, snapshot)]

    install_table_agent(app, settings, "rollup", settings.partials_topic, ROLLUP_TABLE, apply)
