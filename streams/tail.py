"""The ``tail`` command: a topic's messages, readable for people or as JSON lines for tools."""

from __future__ import annotations

import asyncio
import sys
import uuid
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer
from rich.console import Console

from .config import Settings

console = Console()


def _render(record: Any) -> str:
    """One readable line: the fields people scan for first, then the rest."""
    if not isinstance(record, dict):
        return repr(record)
    head = [str(record[k]) for k in ("reason", "type", "kind", "level", "band", "user_id", "account_id")
            if record.get(k) is not None]
    rest = {k: v for k, v in record.items() if k not in ("payload",)}
    return f"{' '.join(head)}  {orjson.dumps(rest).decode()}"


async def _tail(settings: Settings, topic: str, as_json: bool, from_end: bool, max_messages: int | None,
                idle_timeout: float | None) -> int:
    consumer = AIOKafkaConsumer(topic, group_id=f"tail-{uuid.uuid4().hex[:8]}",
                                auto_offset_reset="latest" if from_end else "earliest",
                                enable_auto_commit=False, session_timeout_ms=10000,
                                heartbeat_interval_ms=1000, **settings.kafka_client_options())
    await consumer.start()
    seen = 0
    try:
        while max_messages is None or seen < max_messages:
            batch = await consumer.getmany(timeout_ms=int((idle_timeout or 3600) * 1000))
            if not batch:
                break
            for tp, records in batch.items():
                for msg in records:
                    try:
                        value = orjson.loads(msg.value) if msg.value else None
                    except orjson.JSONDecodeError:
                        value = msg.value.decode("utf-8", "replace")
                    if as_json:
                        sys.stdout.write(orjson.dumps({"topic": msg.topic, "partition": msg.partition,
                                                       "offset": msg.offset, "key": msg.key.decode("utf-8", "replace") if msg.key else None,
                                                       "value": value}).decode() + "\n")
                    else:
                        console.print(f"[dim]{msg.partition}:{msg.offset}[/] {_render(value)}", markup=True,
                                      highlight=False, soft_wrap=True)
                    seen += 1
                    if max_messages is not None and seen >= max_messages:
                        return seen
            sys.stdout.flush()
    finally:
        await consumer.stop()
    return seen


def tail_topic(settings: Settings, topic: str, as_json: bool = False, from_end: bool = False,
               max_messages: int | None = None, idle_timeout: float | None = None) -> int:
    try:
        return asyncio.run(_tail(settings, topic, as_json, from_end, max_messages, idle_timeout))
    except KeyboardInterrupt:
        return 0
