"""A steady stream of events into a running pipeline, in the background, with its own record.

Rates, lags and histograms need traffic that keeps coming while Prometheus scrapes; the record of
what was sent is the independent figure the fleet's gauges are compared with.
"""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from typing import Any

from streams.config import Settings
from streams.tools.kafkaio import event_records, send_all

USERS = 40
BATCH = 50
PAUSE_S = 0.2
#: One message in each batch breaks the contract, so dead-letter series carry traffic too.
INVALID = (b"user-0", b"{not json")


class Feeder:
    """Sends a batch of valid activity events (plus one invalid message) every ``PAUSE_S`` until paused."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.sent: list[dict[str, Any]] = []
        """Every valid event sent, in order."""
        self.invalid = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="feeder", daemon=True)
        self._error: BaseException | None = None

    def _batch(self, start: int) -> list[dict[str, Any]]:
        now = int(time.time() * 1000)
        docs: list[dict[str, Any]] = []
        for i in range(BATCH):
            kind = ("track", "page", "screen")[i % 3]
            doc: dict[str, Any] = {"event_id": uuid.uuid4().hex, "type": kind,
                                   "user_id": f"user-{(start + i) % USERS}", "timestamp": now - (BATCH - i)}
            if kind == "track":
                doc["event"] = "clicked"
            docs.append(doc)
        return docs

    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                docs = self._batch(len(self.sent))
                asyncio.run(send_all(self.settings, [*event_records(docs), INVALID]))
                self.sent.extend(docs)
                self.invalid += 1
                self._stop.wait(PAUSE_S)
        except BaseException as exc:  # surfaced by pause()
            self._error = exc

    def __enter__(self) -> "Feeder":
        self._thread.start()
        return self

    def pause(self) -> None:
        """Stop sending (after the batch in flight) and re-raise anything the sender hit."""
        self._stop.set()
        self._thread.join(timeout=30)
        if self._error is not None:
            raise self._error

    def __exit__(self, *exc: Any) -> None:
        self.pause()
