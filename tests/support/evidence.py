"""The source watermark rule of docs/contract.md, computed plainly, for the batch side of tests.

Per partition, in the order its events are read: the last ``events`` on-time events, each user
keeping only its newest ``per_user`` of them; the
watermark is the lower of the r-th largest of their times (r: one in ``share`` of them, at least
2) and the r-th largest of their users' latest times (each user once, with its most recent event
in the window; r: one in ``share`` of them, at least 3 from 8 users, 2 from 4, else 1), minus the
allowed lateness; it never moves back. An event older than the watermark
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

        events = len(self.window)
        by_event = sorted((t for _, t in self.window), reverse=True)[max(1 + (events - 1) // self.share,
                                                                         min(2, events)) - 1]
        floor = 3 if users >= 8 else 2 if users >= 4 else 1
        by_user = sorted(latest.values(), reverse=True)[max(1 + (users - 1) // self.share, floor) - 1]
        candidate = min(by_event, by_user) - self.lateness_ms
        self.value = candidate if self.value is None else max(self.value, candidate)
