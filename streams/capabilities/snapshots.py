"""The rollup: adds up the partitions' shares of a snapshot and publishes the combined figures.

Each source partition publishes its additive share of a snapshot (kind + period, e.g.
``activity_day`` / ``2026-11-02``) to the partials topic, keyed ``kind|period``; so one partition
of that topic, and one worker, owns each snapshot. The rollup (:class:`RollupCombiner`, run by
the runtime as an agent) keeps the latest share of every partition in a changelog-backed table (a
restart resumes where it stopped), sums them (nested dicts recursively) and publishes the result on
the metrics topic: provisional while some partition has not closed the period, final once all
``settings.partitions`` have.

Ratios cannot be summed, so they are derived after summing by a per-kind finisher, which the
capability publishing that kind declares (``Capability.finishers``).

Output ids are deterministic: ``kind|period|final`` for the one final snapshot, and the hash of
the content for provisional ones, so a replay re-emits the same ids and a consumer can de-duplicate.
"""

from __future__ import annotations

import hashlib
from typing import Any, Iterable, Mapping, MutableMapping

import orjson

from streams.config import Settings
from streams.core.capability import Finisher, Output

ROLLUP_TABLE = "rollup"


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

    def __init__(self, partitions: int, finishers: Mapping[str, Finisher] | None = None) -> None:
        self.partitions = partitions
        self.finishers = dict(finishers or {})

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
        finisher = self.finishers.get(kind)
        figures = finisher(total) if finisher is not None else total
        return {"id": snapshot_id(kind, period, final, figures), "kind": kind, "period": period,
                "final": final, "partitions": self.partitions, "partitions_reported": len(shares),
                "partitions_final": finals, "figures": figures}


class RollupCombiner:
    """The rollup as a combiner (see :class:`~streams.core.capability.Combiner`): partials in,
    combined snapshots out on the metrics topic, keyed like the partial (``kind|period``)."""

    name = "rollup"
    table = ROLLUP_TABLE

    def __init__(self, settings: Settings, finishers: Mapping[str, Finisher]) -> None:
        self.source = settings.partials_topic
        self.metrics_topic = settings.metrics_topic
        self.rollup = Rollup(settings.partitions, finishers)

    def apply(self, entries: MutableMapping[bytes, Any], key: bytes | None, message: Mapping[str, Any],
              partition: int, wall_ms: float) -> Iterable[Output]:
        if key is None:
            return ()
        entry, snapshot = self.rollup.apply(entries.get(key), dict(message))
        entries[key] = entry
        return () if snapshot is None else [(self.metrics_topic, key, snapshot)]

    def revoke(self, partition: int) -> None:
        """Nothing is kept outside the table."""
