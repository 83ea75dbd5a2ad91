"""Dead-letter records: a rejected message, why, and where it came from, so nothing is lost."""

from __future__ import annotations

import base64
from typing import Any

import orjson


def dead_letter(reason: str, message: str, raw: bytes | None, key: bytes | None, topic: str,
                partition: int, offset: int, timestamp_ms: int, max_payload: int) -> bytes:
    """The JSON value written to the dead-letter topic for one rejected message.

    The original bytes are kept (truncated above ``max_payload``): as text when they are UTF-8,
    otherwise base64, so an operator can fix and re-publish them.
    """
    raw = raw or b""
    kept = raw[:max_payload]
    try:
        payload, encoding = kept.decode("utf-8"), "utf-8"
    except UnicodeDecodeError:
        payload, encoding = base64.b64encode(kept).decode("ascii"), "base64"
    record: dict[str, Any] = {
        "reason": reason,
        "message": message,
        "source": {"topic": topic, "partition": partition, "offset": offset, "timestamp": timestamp_ms},
        "key": key.decode("utf-8", "replace") if key is not None else None,
        "payload": payload,
        "payload_encoding": encoding,
        "payload_bytes": len(raw),
        "truncated": len(raw) > max_payload,
    }
    return orjson.dumps(record)
