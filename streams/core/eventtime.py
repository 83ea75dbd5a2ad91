"""Event time for one partition: the watermark that closes days, sessions and inactivity.

watermark = newest event time seen - allowed lateness. Events older than the watermark are late.
Only the events move it, so replaying last year's events gives the answers living through them
gave. The wall clock is used for one thing: a partition that has received nothing for
``idle_ms`` is assumed to be living in real time, and its watermark advances with the time
elapsed since its last event (otherwise a quiet partition would never close its last day).
"""

from __future__ import annotations

import time

NO_TIME = -(2**62)


def iso_ms(ms: int) -> str:
    """RFC 3339 UTC with milliseconds (``2026-01-05T00:02:37.584Z``), as every output writes event
    times. Formatted from ``time.gmtime``: a session message writes two, a signal one."""
    seconds, millis = divmod(ms, 1000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + ".%03dZ" % millis


class Watermark:
    __slots__ = ("lateness_ms", "idle_ms", "max_ts", "value", "_last_arrival")

    def __init__(self, lateness_ms: int, idle_ms: int) -> None:
        self.lateness_ms = lateness_ms
        self.idle_ms = idle_ms
        self.max_ts = NO_TIME
        self.value = NO_TIME
        self._last_arrival = 0.0

    def is_late(self, ts: int) -> bool:
        return ts < self.value

    def observe(self, ts: int, wall_ms: float) -> bool:
        """Take an applied event's time into account; True when the watermark moved forward."""
        self._last_arrival = wall_ms
        if ts <= self.max_ts:
            return False
        self.max_ts = ts
        candidate = ts - self.lateness_ms
        if candidate > self.value:
            self.value = candidate
            return True
        return False

    def restore(self, max_ts: int, wall_ms: float) -> None:
        """Resume from the newest event time found in recovered state."""
        if max_ts > self.max_ts:
            self.max_ts = max_ts
            self.value = max(self.value, max_ts - self.lateness_ms)
        self._last_arrival = wall_ms

    def idle_advance(self, wall_ms: float) -> bool:
        """Advance a quiet partition with the wall clock; True when the watermark moved."""
        if self.max_ts == NO_TIME:
            return False
        silent = wall_ms - self._last_arrival
        if silent < self.idle_ms:
            return False
        candidate = int(self.max_ts + silent - self.lateness_ms)
        if candidate > self.value:
            self.value = candidate
            return True
        return False
