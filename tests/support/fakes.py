"""In-process stand-ins for unit tests only: a Faust-table-shaped store and a list sink."""

from __future__ import annotations

from typing import Any

import orjson

from streams.config import Settings, load_settings
from streams.core.capability import Capability
from streams.core.processor import PartitionProcessor
from streams.core.userstore import UserStore
from streams.runtime.partitions import Runtime


class _MemoryStore:
    """The two attributes of Faust's memory store that UserStore uses."""

    def __init__(self) -> None:
        self.data: dict[bytes, bytes] = {}
        self._key_partition: dict[bytes, int] = {}


class FakeTable:
    """A table whose changelog is a list (what a restart would recover from)."""

    def __init__(self) -> None:
        self.data = _MemoryStore()
        self.changelog: list[tuple[int, bytes, bytes]] = []

    def send_changelog(self, partition: int, key: bytes, value: bytes) -> None:
        self.changelog.append((partition, key, value))

    def recovered(self) -> "FakeTable":
        """A new table rebuilt from this one's changelog, as Faust recovery would."""
        table = FakeTable()
        for partition, key, value in self.changelog:
            table.data.data[key] = value
            table.data._key_partition[key] = partition
        table.changelog = list(self.changelog)
        return table


class ListSink:
    """Collects every output record."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, bytes | None, bytes, int | None]] = []

    def send(self, topic: str, key: bytes | None, value: bytes, partition: int | None = None) -> None:
        self.sent.append((topic, key, value, partition))

    def values(self, topic: str) -> list[Any]:
        return [orjson.loads(v) for t, _, v, _ in self.sent if t == topic]


def unit_settings(**overrides: Any) -> Settings:
    base: dict[str, Any] = dict(bootstrap="unit:9092", partitions=1, allowed_lateness_s=600)
    base.update(overrides)
    return load_settings(env={}, overrides=base)


def unit_runtime(settings: Settings | None = None, capabilities: list[Capability] | None = None,
                 table: FakeTable | None = None) -> tuple[Runtime, FakeTable, ListSink]:
    """A Runtime over a fake table and sink, as a worker would build it."""
    settings = settings or unit_settings()
    table = table or FakeTable()
    sink = ListSink()
    runtime = Runtime(settings, UserStore(table, settings.state_cache_users), sink, capabilities or [])
    return runtime, table, sink


def processor(runtime: Runtime, partition: int = 0) -> PartitionProcessor:
    return runtime.processor(partition)
