"""The source watermark rule of docs/contract.md, computed plainly, for the batch side of tests.

Per partition, in the order its events are read: each user's latest event time among the last
``users`` distinct users read; the watermark is the r-th largest of them minus the allowed lateness
(r = 1 + (number kept - 1) // ``share``), and never moves back. An event older than the
watermark when it is read is late. Written from the definition, sharing no code with
``streams.core.sourceclock`` (no sorted list, no ordered dict: a dict and a sort per event).
"""

from __future__ import annotations


class ReferenceWatermark:
    def __init__(self, lateness_ms: int, users: int = 256, share: int = 16) -> None:
        self.lateness_ms = lateness_ms
        self.users = users
        self.share = share
        self.latest: dict[str, int] = {}
        self.value: int | None = None

    def is_late(self, ts: int) -> bool:
        return self.value is not None and ts < self.value

    def observe(self, user: str, ts: int) -> None:
        """An on-time event of ``user`` was read."""
        self.latest.pop(user, None)
        self.latest[user] = ts  # dicts keep insertion order: the first key is the least recent user
        if len(self.latest) > self.users:
            del self.latest[next(iter(self.latest))]
        times = sorted(self.latest.values(), reverse=True)
        candidate = times[(len(times) - 1) // self.share] - self.lateness_ms
        self.value = candidate if self.value is None else max(self.value, candidate)
