"""Producing and consuming with plain aiokafka, shared by the tools, demo, benchmark and tests.

Both check the broker first (:func:`~streams.runtime.connect.check_broker`): a wrong address
ends within ``connect_timeout_s`` in one line naming it, and no client is left unclosed.
"""

from __future__ import annotations

import asyncio
import uuid
from typing import Any, AsyncIterator, Callable, Iterable

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from streams.config import Settings
from streams.runtime.connect import check_broker

SEND_WINDOW = 2000


class Publisher:
    """A started producer that publishes batches of (key, value) pairs and waits for them.

    Keyed records use Kafka's default (murmur2) partitioner, as the pipeline expects.
    """

    def __init__(self, settings: Settings, topic: str | None = None) -> None:
        self.settings = settings
        self.topic = topic or settings.events_topic
        self.producer: AIOKafkaProducer | None = None
        self.sent = 0

    async def __aenter__(self) -> "Publisher":
        await check_broker(self.settings)
        self.producer = AIOKafkaProducer(linger_ms=5, max_batch_size=256 * 1024, acks="all",
                                         **self.settings.kafka_client_options())
        try:
            await self.producer.start()
        except BaseException:
            await self.producer.stop()
            raise
        return self

    async def __aexit__(self, *exc: Any) -> None:
        if self.producer is not None:
            await self.producer.stop()

    async def send(self, records: Iterable[tuple[bytes | None, bytes]],
                   on_sent: Callable[[int], None] | None = None) -> int:
        """Publish every record (in windows of SEND_WINDOW in flight); returns how many."""
        assert self.producer is not None, "use Publisher as an async context manager"
        pending = []
        count = 0
        for key, value in records:
            pending.append(await self.producer.send(self.topic, value=value, key=key))
            count += 1
            if len(pending) >= SEND_WINDOW:
                await asyncio.gather(*pending)
                if on_sent:
                    on_sent(len(pending))
                pending.clear()
        if pending:
            await asyncio.gather(*pending)
            if on_sent:
                on_sent(len(pending))
        self.sent += count
        return count


async def send_all(settings: Settings, records: Iterable[tuple[bytes | None, bytes]],
                   topic: str | None = None, on_sent: Callable[[int], None] | None = None) -> int:
    """Publish (key, value) pairs with a producer of their own; returns how many."""
    async with Publisher(settings, topic) as publisher:
        return await publisher.send(records, on_sent)


def event_records(events: Iterable[dict[str, Any]]) -> Iterable[tuple[bytes | None, bytes]]:
    """(key, value) pairs for event documents, keyed by user_id or anonymous_id."""
    for doc in events:
        user = doc.get("user_id") or doc.get("anonymous_id")
        yield (user.encode() if isinstance(user, str) and user else None), orjson.dumps(doc)


async def consume(settings: Settings, topic: str, from_end: bool = False,
                  idle_timeout: float | None = None, max_messages: int | None = None) -> AsyncIterator[Any]:
    """Yield a topic's records (aiokafka ConsumerRecord) from the start, until idle or ``max_messages``."""
    await check_broker(settings)
    consumer = AIOKafkaConsumer(topic, group_id=f"reader-{uuid.uuid4().hex[:8]}",
                                auto_offset_reset="latest" if from_end else "earliest",
                                enable_auto_commit=False, session_timeout_ms=10000,
                                heartbeat_interval_ms=1000, **settings.kafka_client_options())
    seen = 0
    try:
        await consumer.start()
        while max_messages is None or seen < max_messages:
            batch = await consumer.getmany(timeout_ms=int((idle_timeout or 3600) * 1000))
            if not batch:
                return
            for records in batch.values():
                for record in records:
                    yield record
                    seen += 1
                    if max_messages is not None and seen >= max_messages:
                        return
    finally:
        await consumer.stop()


async def read_json(settings: Settings, topic: str, idle_timeout: float = 3.0) -> list[Any]:
    """Every JSON value on a topic until it has been idle for ``idle_timeout`` seconds."""
    return [orjson.loads(r.value) async for r in consume(settings, topic, idle_timeout=idle_timeout)
            if r.value is not None]
