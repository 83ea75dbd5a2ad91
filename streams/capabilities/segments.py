"""Segment dimensions: where a user's value comes from, and the bounded labels it is counted under.

User records store a small integer code per value rather than the string (one byte instead of
five to twenty, for every dimension of every user). Codes are per partition: a dimension with
configured ``values`` has them fixed (``other`` for anything else); one without admits the first
``max_values`` values the partition sees, in order, and counts later ones as ``other``. The code
table is kept in a reserved record of the partition's state table, written with the user records
that use it, so it survives restarts and rebalances exactly as they do.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Sequence

from streams.config import (
    RESERVED_KEY_PREFIX,
    SEGMENT_OTHER,
    SEGMENT_UNKNOWN,
    SEGMENT_VALUE_MAX_CHARS,
    ConfigError,
    SegmentDimension,
)
from streams.core.state import UserState

if TYPE_CHECKING:
    from streams.core.capability import PartitionContext
    from streams.core.contract import Event

def labels_key(partition: int) -> bytes:
    """The partition's code tables: a reserved key (never a user id: it starts with a zero byte)
    of its own per partition, since the memory store keeps every partition in one dictionary."""
    return RESERVED_KEY_PREFIX + b"activity-labels:%d" % partition
OTHER_CODE = 0


class SegmentSources:
    """Where each dimension's value is read from an event (prepared once, used on every event)."""

    def __init__(self, dims: Sequence[SegmentDimension]) -> None:
        self.sources = [(index, dim.source == "traits", dim.path) for index, dim in enumerate(dims)]

    def observe(self, event: "Event") -> list[tuple[int, str]]:
        """(dimension index, raw value) for each dimension this event carries a value for.

        Traits count from identify events only (a group event's traits describe the account);
        context counts from every event.
        """
        out = []
        identify = event.type == "identify"
        for index, traits, path in self.sources:
            if traits:
                if not identify:
                    continue
                value: Any = event.traits
            else:
                value = event.context
            if not value:
                continue
            for part in path:
                value = value.get(part) if value.__class__ is dict else None
            if value.__class__ is str:  # the usual case
                if value:
                    out.append((index, value if len(value) <= SEGMENT_VALUE_MAX_CHARS
                                else value[:SEGMENT_VALUE_MAX_CHARS]))
                continue
            if value is None or isinstance(value, (dict, list)):
                continue
            value = ("true" if value else "false") if isinstance(value, bool) else str(value)
            out.append((index, value[:SEGMENT_VALUE_MAX_CHARS]))
        return out


class LabelCodes:
    """One partition's value <-> code tables, one per dimension."""

    def __init__(self, dims: Sequence[SegmentDimension], ctx: "PartitionContext") -> None:
        self.dims = list(dims)
        self.ctx = ctx
        names = [d.name for d in self.dims]
        self.key = labels_key(ctx.partition)
        record = ctx.user(self.key)
        stored = record.ext.get("labels") if record is not None else None
        self.record = record or UserState()
        tables: list[list[str]] = [[SEGMENT_OTHER] for _ in self.dims]
        if stored:
            old_names = stored["dims"]
            if old_names != names[:len(old_names)]:
                raise ConfigError(
                    f"activity.segments: partition {ctx.partition} holds segment history recorded for "
                    f"dimensions {old_names}, the configuration has {names}; dimensions can be appended, "
                    "not removed or reordered (or start from fresh state with a new app_id)")
            for index, values in enumerate(stored["values"]):
                tables[index] = list(values)
        for index, dim in enumerate(self.dims):
            for value in dim.values:
                if value not in tables[index]:
                    tables[index].append(value)
        self.tables = tables
        self.codes = [{value: code for code, value in enumerate(table)} for table in tables]
        if not stored or stored["dims"] != names or stored["values"] != tables:
            self._save()

    def code(self, dim: int, value: str) -> int:
        """The code of a value, admitting it if the dimension has room."""
        codes = self.codes[dim]
        code = codes.get(value)
        if code is not None:
            return code
        config = self.dims[dim]
        if config.values or len(codes) > config.max_values:
            return OTHER_CODE
        code = codes[value] = len(self.tables[dim])
        self.tables[dim].append(value)
        self._save()
        return code

    def name(self, dim: int, code: Any) -> str:
        if code is None:
            return SEGMENT_UNKNOWN
        table = self.tables[dim]
        return table[code] if 0 <= code < len(table) else SEGMENT_OTHER

    def _save(self) -> None:
        """Queue the tables for the next flush, together with the records that use a new code."""
        if not self.dims:
            return
        self.record.ext["labels"] = {"dims": [d.name for d in self.dims], "values": self.tables}
        self.ctx.mark_dirty(self.key, self.record)
