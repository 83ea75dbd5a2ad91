"""Event time of one partition: the watermark that closes its days, sessions and inactivity.

A partition's users receive events from two inputs: the partition of the events topic itself
(producers that place users where Kafka's murmur2 does) and the partition of the internal re-key
topic, where the other partitions forward the events they read for this partition's users
(producers with another partitioner, or none). Each partition judges the events it reads against
its own source watermark (:mod:`streams.core.sourceclock`) and tells every other partition how far
that watermark has come, with markers on the re-key topic behind the events it forwarded.

The partition's watermark, the one its capabilities see, is the minimum over its inputs (the rule
of Flink and Beam: an operator's watermark is the minimum over its inputs): its own source
watermark and the latest marker of every other partition. So a forwarded event can never arrive
after the watermark passed it: its source judged it on time, and the marker that could move the
watermark past it comes after it on the re-key topic. A partition that has read nothing for a
while is *idle* and is left out of the minimum (Flink's idleness); when every input is idle the
minimum of all of them is used, so quiet partitions still advance with the wall clock.

The watermark never moves back. Only events, markers and the idle rule move it, so replaying last
year's events gives the answers living through them gave.
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
    """What a partition's capabilities see: the watermark, and the newest event time applied."""

    __slots__ = ("value", "max_ts")

    def __init__(self) -> None:
        self.value = NO_TIME
        self.max_ts = NO_TIME

    def is_late(self, ts: int) -> bool:
        return ts < self.value


class Inputs:
    """The latest marker of every other partition (the minimum is taken by the processor)."""

    __slots__ = ("own", "marks", "idle")

    def __init__(self, own: int, partitions: int) -> None:
        self.own = own
        self.marks = [NO_TIME] * partitions
        """Per source partition: its source watermark, as its latest marker said."""
        self.idle = [False] * partitions

    def mark(self, source: int, watermark: int, idle: bool) -> bool:
        """A marker from ``source``; True when it changes what this partition waits for."""
        if source == self.own or not 0 <= source < len(self.marks):
            return False
        changed = idle != self.idle[source] or watermark > self.marks[source]
        self.idle[source] = idle
        if watermark > self.marks[source]:
            self.marks[source] = watermark
        return changed

    def state(self) -> list[list[int]]:
        return [[value, int(idle)] for value, idle in zip(self.marks, self.idle)]

    def restore(self, stored: list[list[int]]) -> None:
        for source, (value, idle) in enumerate(stored[:len(self.marks)]):
            self.marks[source], self.idle[source] = value, bool(idle)
