"""Compensation for the embedded broker's one correctness quirk: end offsets of batched writes.

Tansu answers ListOffsets(latest) with (first offset of the newest batch + 1) rather than
(last offset + 1) when that batch holds several records. Faust reads a changelog only up to
that "end" when it recovers a table, so a restarted worker would recover its state short.

In the local profile the worker asks for end offsets through :func:`true_end_offsets`, which
reads the newest batch and returns its last offset + 1. Apache Kafka answers correctly, so the
fix is never installed against it.
"""

from __future__ import annotations

import logging
from typing import Any, Awaitable, Callable, Mapping

from aiokafka import AIOKafkaConsumer

log = logging.getLogger(__name__)
FETCH_TIMEOUT_MS = 500
MAX_EMPTY_FETCHES = 4


async def true_end_offsets(client_options: Mapping[str, Any], reported: Mapping[Any, int]) -> dict[Any, int]:
    """Correct reported end offsets by reading each partition's newest batch."""
    fixed = dict(reported)
    targets = {tp: end for tp, end in reported.items() if end > 0}
    if not targets:
        return fixed
    consumer = AIOKafkaConsumer(enable_auto_commit=False, **client_options)
    await consumer.start()
    try:
        consumer.assign(list(targets))
        for tp, end in targets.items():
            consumer.seek(tp, end - 1)
        empty = 0
        while empty < MAX_EMPTY_FETCHES:
            batch = await consumer.getmany(timeout_ms=FETCH_TIMEOUT_MS)
            if not any(batch.values()):
                empty += 1
                continue
            empty = 0
            for tp, records in batch.items():
                last = records[-1].offset + 1
                if last > fixed[tp]:
                    fixed[tp] = last
    finally:
        await consumer.stop()
    changed = {str(tp): (reported[tp], fixed[tp]) for tp in targets if fixed[tp] != reported[tp]}
    if changed:
        log.info("end offsets corrected for the embedded broker: %s", changed)
    return fixed


def install(consumer: Any, client_options: Mapping[str, Any]) -> None:
    """Route a Faust consumer's ``highwaters`` (used by table recovery) through the correction."""
    original: Callable[..., Awaitable[Mapping[Any, int]]] = consumer.highwaters

    async def highwaters(*partitions: Any) -> Mapping[Any, int]:
        return await true_end_offsets(client_options, await original(*partitions))

    consumer.highwaters = highwaters
