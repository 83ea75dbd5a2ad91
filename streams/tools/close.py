"""The ``close`` command: declare a finished stream finished, so every day and session is final.

A live stream never ends; its last day closes when event time moves past it. A replay does end,
and without more events its last day and sessions would stay provisional until the idle rule moves
the watermark on by the wall clock. ``streams close`` writes one *close record* to every partition
of the events topic, behind everything produced so far (see :mod:`streams.core.rekey`). Each
partition, when it reads it, moves its watermark to the end of the closing day plus the longest
time any capability needs after a day's end (the session timeout, the scoring settle time): every
day up to that one, and every session ending in it, becomes final. Events produced later that are
older than that are late; newer ones are taken as usual.

Without ``--through`` the stream is closed through the newest event time on the topic (read from
the whole topic once). Give ``--through`` to close at a known time, e.g. the end of a replayed
file, or when some clocks ran ahead and their events should not hold the stream open.
"""

from __future__ import annotations

import asyncio
import uuid

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from streams.config import Settings
from streams.core.contract import parse_time_ms
from streams.core.rekey import CLOSE_KEY, close_record

#: Reading the events topic for its newest event stops after this long without a message.
SCAN_IDLE_S = 2.0


async def newest_event_ms(settings: Settings) -> int | None:
    """The newest usable event time on the events topic (None: no event at all)."""
    consumer = AIOKafkaConsumer(settings.events_topic, group_id=f"close-{uuid.uuid4().hex[:8]}",
                                auto_offset_reset="earliest", enable_auto_commit=False,
                                **settings.kafka_client_options())
    await consumer.start()
    newest: int | None = None
    try:
        while True:
            batch = await consumer.getmany(timeout_ms=int(SCAN_IDLE_S * 1000), max_records=10_000)
            if not batch:
                return newest
            for records in batch.values():
                for record in records:
                    ts = _event_time(record.key, record.value, settings.min_timestamp_ms)
                    if ts is not None and (newest is None or ts > newest):
                        newest = ts
    finally:
        await consumer.stop()


def _event_time(key: bytes | None, value: bytes | None, min_ms: int) -> int | None:
    if key == CLOSE_KEY or not value:
        return None
    try:
        doc = orjson.loads(value)
    except orjson.JSONDecodeError:
        return None
    ts = parse_time_ms(doc.get("timestamp")) if isinstance(doc, dict) else None
    return ts if ts is not None and ts >= min_ms else None


async def send_close(settings: Settings, through_ms: int) -> int:
    """Write a close record to every partition of the events topic; returns how many partitions."""
    producer = AIOKafkaProducer(acks="all", **settings.kafka_client_options())
    await producer.start()
    try:
        partitions = sorted(await producer.partitions_for(settings.events_topic))
        value = close_record(through_ms)
        await asyncio.gather(*[await producer.send(settings.events_topic, value=value, key=CLOSE_KEY, partition=p)
                               for p in partitions])
        return len(partitions)
    finally:
        await producer.stop()


def close_stream(settings: Settings, through_ms: int | None = None) -> tuple[int | None, int]:
    """Close the events topic through ``through_ms`` (default: its newest event);
    returns (the time closed through, partitions closed), (None, 0) for an empty topic."""
    if through_ms is None:
        through_ms = asyncio.run(newest_event_ms(settings))
        if through_ms is None:
            return None, 0
    return through_ms, asyncio.run(send_close(settings, through_ms))
