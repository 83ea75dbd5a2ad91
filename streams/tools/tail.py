"""The ``tail`` command: a topic's messages, readable for people or as JSON lines for tools."""

from __future__ import annotations

import asyncio
import sys
from typing import Any

import orjson
from rich.console import Console

from streams.config import Settings
from streams.tools.kafkaio import consume

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
    seen = 0
    async for msg in consume(settings, topic, from_end=from_end, idle_timeout=idle_timeout,
                             max_messages=max_messages):
        try:
            value = orjson.loads(msg.value) if msg.value else None
        except orjson.JSONDecodeError:
            value = msg.value.decode("utf-8", "replace")
        if as_json:
            key = msg.key.decode("utf-8", "replace") if msg.key else None
            sys.stdout.write(orjson.dumps({"topic": msg.topic, "partition": msg.partition,
                                           "offset": msg.offset, "key": key, "value": value}).decode() + "\n")
            sys.stdout.flush()
        else:
            console.print(f"[dim]{msg.partition}:{msg.offset}[/] {_render(value)}", highlight=False,
                          soft_wrap=True)
        seen += 1
    return seen


def tail_topic(settings: Settings, topic: str, as_json: bool = False, from_end: bool = False,
               max_messages: int | None = None, idle_timeout: float | None = None) -> int:
    try:
        return asyncio.run(_tail(settings, topic, as_json, from_end, max_messages, idle_timeout))
    except KeyboardInterrupt:
        return 0
