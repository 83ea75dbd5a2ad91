"""The source watermark rule of docs/contract.md, computed plainly, for the batch side of tests.

Per partition, in the order its events are read: the last ``events`` on-time events, each user
keeping only its newest ``per_user`` of them; the
watermark is the lower of the r-th largest of their times and the r-th largest of their users'
latest times (each user once, with its most recent event in the window), minus the allowed
lateness, where r is one in ``share`` of what is counted, at least 3 when the window holds 8
users and 2 from 4, and 1 below 4 users; it never moves back. An event older than the watermark
when it is read is late. Written from the definition, sharing no code with
``streams.core.sourceclock`` (a list, a dict and two sorts per event).
"""

from __future__ import annotations


class ReferenceWatermark:
    def __init__(self, lateness_ms: int, events: int = 256, share: int = 16, per_user: int = 8) -> None:
        self.lateness_ms = lateness_ms
        self.per_user = per_user
        self.size = events
        self.share = share
        self.window: list[tuple[str, int]] = []
        self.value: int | None = None

    def is_late(self, ts: int) -> bool:
        return self.value is not None and ts < self.value

    def observe(self, user: str, ts: int) -> None:
        """An on-time event of ``user`` was read."""
        self.window.append((user, ts))
        mine = [i for i, (who, _) in enumerate(self.window) if who == user]
        if len(mine) > self.per_user:
            del self.window[mine[0]]
        self.window = self.window[-self.size:]
        latest: dict[str, int] = {}
        for who, when in self.window:  # in order: the last one of each user stays
            latest[who] = when
        users = len(latest)

        def needed(counted: int) -> int:
            if users < 4:
                return 1
            return max(1 + (counted - 1) // self.share, 3 if users >= 8 else 2)

        by_event = sorted((t for _, t in self.window), reverse=True)[needed(len(self.window)) - 1]
        by_user = sorted(latest.values(), reverse=True)[needed(users) - 1]
        candidate = min(by_event, by_user) - self.lateness_ms
        self.value = candidate if self.value is None else max(self.value, candidate)
