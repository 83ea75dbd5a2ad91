"""Combiners as Faust agents: each runs a keyed fold over an internal topic with its own
changelog-backed table (the rollup of snapshot partials; the per-account combination of shares).

The folding logic is pure (:class:`~streams.core.capability.Combiner`, in the capabilities); this
module is the only place it meets Faust: messages in, table reads and writes, outputs sent.
"""

from __future__ import annotations

import time
from typing import Any, Callable, Iterator, MutableMapping, Sequence

import faust
import orjson

from streams.capabilities.snapshots import RollupCombiner
from streams.config import Settings
from streams.core.capability import Capability, Combiner


class JsonTable(MutableMapping[bytes, Any]):
    """A Faust table of JSON-encoded values seen as a mapping of decoded values."""

    def __init__(self, table: Any) -> None:
        self.table = table

    def __getitem__(self, key: bytes) -> Any:
        stored = self.table.get(key)
        if stored is None:
            raise KeyError(key)
        return orjson.loads(stored)

    def __setitem__(self, key: bytes, value: Any) -> None:
        self.table[key] = orjson.dumps(value)

    def __delitem__(self, key: bytes) -> None:
        del self.table[key]

    def __iter__(self) -> Iterator[bytes]:
        return iter(self.table.keys())

    def __len__(self) -> int:
        return len(self.table)


def install_combiner(app: faust.App, settings: Settings, combiner: Combiner) -> None:
    """Run ``combiner`` as an agent on its source topic, with its table."""
    raw: dict[str, Any] = dict(key_type=bytes, value_type=bytes, key_serializer="raw", value_serializer="raw",
                               partitions=settings.partitions)
    table = app.Table(combiner.table, partitions=settings.partitions, key_type=bytes, value_type=bytes)
    entries = JsonTable(table)
    topics: dict[str, Any] = {}

    @app.agent(app.topic(combiner.source, **raw), name=combiner.name)
    async def combine(stream: faust.StreamT) -> None:
        async for event in stream.events():
            message = event.message
            if not message.value:
                continue
            outputs = combiner.apply(entries, message.key, orjson.loads(message.value), message.partition,
                                     time.time() * 1000)
            for topic, key, doc in outputs:
                if topic not in topics:
                    topics[topic] = app.topic(topic, **raw)
                await topics[topic].send(key=key, value=orjson.dumps(doc))

    def forget(partitions: list[int]) -> None:
        for partition in partitions:
            combiner.revoke(partition)

    when_revoked(app, combiner.source, forget)


def when_revoked(app: faust.App, topic: str, forget: Callable[[list[int]], None]) -> None:
    """Call ``forget(partitions)`` with the partitions of ``topic`` handed to another worker."""
    _on_partitions(app.on_partitions_revoked, "revoked", topic, forget)


def when_assigned(app: faust.App, topic: str, take: Callable[[list[int]], None]) -> None:
    """Call ``take(partitions)`` with the partitions of ``topic`` assigned to this worker."""
    _on_partitions(app.on_partitions_assigned, "assigned", topic, take)


def _on_partitions(signal: Any, name: str, topic: str, call: Callable[[list[int]], None]) -> None:
    async def receiver(sender: Any, *args: Any, signal: Any = None, **kwargs: Any) -> None:
        tps = args[0] if args else kwargs.get(name, ())  # Faust sends (app, partitions)
        call(sorted(tp.partition for tp in tps if tp.topic == topic))

    signal.connect(receiver)  # mode's signature wants a plain callable


def install_agents(app: faust.App, settings: Settings, capabilities: Sequence[Capability]) -> None:
    """The rollup (with every capability's snapshot finishers) and each capability's combiners."""
    finishers: dict[str, Any] = {}
    for cap in capabilities:
        finishers.update(cap.finishers())
    install_combiner(app, settings, RollupCombiner(settings, finishers))
    for cap in capabilities:
        for combiner in cap.combiners():
            install_combiner(app, settings, combiner)
