"""In-process stand-ins for unit tests only: a Faust-table-shaped store and a list sink."""

from __future__ import annotations

from typing import Any, Iterable

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


class Loopback:
    """The re-key topic of a unit-level runtime: what the runtime sends to it comes back to it,
    partition by partition with offsets, as a worker owning every partition would read it.

    ``send`` hands a message of the events topic to the runtime (at the next offset of its
    partition, from ``offsets``), then delivers everything the runtime forwarded or marked since,
    until nothing new is sent (markers go out at the end of each "batch": here, each message).
    """

    def __init__(self, runtime: Runtime, sink: ListSink, offsets: dict[int, int] | None = None) -> None:
        self.runtime = runtime
        self.sink = sink
        self.offsets = offsets if offsets is not None else {}
        """Next offset per partition of the events topic."""
        self.delivered = 0
        self.rekey_offsets: dict[int, int] = {}

    def send(self, partition: int, key: bytes | None, raw: bytes | None, received_ms: int,
             offset: int | None = None) -> str:
        if offset is None:
            offset = self.offsets.get(partition, 0)
            self.offsets[partition] = offset + 1
        outcome = self.runtime.handle(partition, key, raw, offset, received_ms)
        self.pump()
        return outcome

    def close(self, through_ms: int, partitions: Iterable[int] | None = None) -> None:
        """A close record (``streams close``) on every partition (or the ones named)."""
        from streams.core.rekey import CLOSE_KEY, close_record

        for partition in range(self.runtime.settings.partitions) if partitions is None else partitions:
            self.send(partition, CLOSE_KEY, close_record(through_ms), through_ms)

    def pump(self) -> list[str]:
        """Deliver the re-key topic's new records (and the markers they cause); their outcomes."""
        topic = self.runtime.settings.rekey_topic
        outcomes: list[str] = []
        self.runtime.end_batch()
        while self.delivered < len(self.sink.sent):
            sent_to, key, value, partition = self.sink.sent[self.delivered]
            self.delivered += 1
            if sent_to == topic and partition is not None:
                offset = self.rekey_offsets.get(partition, 0)
                self.rekey_offsets[partition] = offset + 1
                outcome = self.runtime.handle_rekeyed(partition, key, value, offset)
                if outcome is not None:
                    outcomes.append(outcome)
            if self.delivered == len(self.sink.sent):
                self.runtime.end_batch()
        return outcomes
