"""Peer percentiles kept incrementally: counts per value bucket, per peer group and measure.

The engagement score judges each measure partly against the user's peers: the user's mid-rank
(peers below plus half the ties, over the group's size) among the *latest values* of the users in
scope (active within ``horizon_days``) in the same partition with the same peer-segment value.
Ranking a day's whole batch at once needs every user of the batch at hand; here each user adds
their values to counts when they are judged and takes their previous values out, so a rank is a
few look-ups however many users there are (``docs/health-and-risk.md#peers``).

Values are counted in buckets, one array of counts per (group, measure), with totals per block
of 64 buckets so that "how many below" sums at most two short runs:

* recency: the last active day, exact (a ring of days: every value in scope lies within
  ``horizon_days`` of the day judged);
* frequency: active days in the cadence window, then visits (ties broken by visits up to 63);
* depth: active minutes in the window, exact below 512, then 32 buckets per doubling;
* core actions: weighted core actions (quarters) in the window, exact below 64 actions, then 32
  buckets per doubling, ties broken by breadth;
* trend: in steps of 0.005.

Where two values share a bucket they count as ties, so a percentile can differ from the exact
mid-rank of the raw values by at most half the share of the group whose values fall in the
user's bucket (none for recency, and for the others within the exact ranges above).
"""

from __future__ import annotations

from typing import Any, Sequence

from streams.config import MIN_PEERS

BLOCK_BITS = 6
VISIT_SLOTS = 64
#: Buckets of the log-scaled measures: exact below 2**EXACT_BITS, then 32 per doubling up to 2**24.
SUB_BITS = 5
TOP_BITS = 24
TREND_STEPS = 200
MEASURES = 5
RECENCY, FREQUENCY, DEPTH, CORE, TREND = range(MEASURES)
ALL = "*"
"""The partition-wide group (every user in scope; the fall-back for small groups)."""


def log_bucket(value: int, exact_bits: int) -> int:
    """``value`` itself below ``2 ** exact_bits``, then 32 buckets per doubling (monotone)."""
    if value < 1 << exact_bits:
        return max(0, value)
    top = min(value.bit_length() - 1, TOP_BITS)
    value = min(value, (1 << (TOP_BITS + 1)) - 1)
    return (1 << exact_bits) + (top - exact_bits) * (1 << SUB_BITS) + ((value >> (top - SUB_BITS)) & ((1 << SUB_BITS) - 1))


def log_size(exact_bits: int) -> int:
    return (1 << exact_bits) + (TOP_BITS + 1 - exact_bits) * (1 << SUB_BITS)


class Counts:
    """Counts per bucket with block totals: add O(1), "how many in a range" O(block)."""

    __slots__ = ("counts", "blocks")

    def __init__(self, size: int) -> None:
        self.counts = [0] * size
        self.blocks = [0] * ((size >> BLOCK_BITS) + 1)

    def add(self, bucket: int, n: int) -> None:
        self.counts[bucket] += n
        self.blocks[bucket >> BLOCK_BITS] += n

    def below(self, bucket: int) -> int:
        """Values in buckets ``0 .. bucket - 1``."""
        full = bucket >> BLOCK_BITS
        return sum(self.blocks[:full]) + sum(self.counts[full << BLOCK_BITS:bucket])

    def span(self, lo: int, hi: int) -> int:
        """Values in buckets ``lo .. hi - 1`` (``lo <= hi``)."""
        return self.below(hi) - self.below(lo)


class PeerScale:
    """How a user's peer values map to buckets (fixed by the configuration)."""

    def __init__(self, horizon_days: int, core_kinds: int) -> None:
        ring = 1
        while ring < 2 * horizon_days + 2:
            ring <<= 1
        self.ring = ring
        self.horizon = horizon_days
        self.breadths = core_kinds + 1
        self.sizes = (ring, 15 * VISIT_SLOTS, log_size(9), log_size(8) * self.breadths, TREND_STEPS * 3 // 2 + 2)

    def buckets(self, last_active: int, days: int, visits: int, minutes: int, core_units: int, breadth: int,
                trend: float | None) -> list[int]:
        """The five buckets of a user's values (``last_active`` is kept as the day itself)."""
        return [last_active, min(days, 14) * VISIT_SLOTS + min(visits, VISIT_SLOTS - 1), log_bucket(minutes, 9),
                log_bucket(core_units, 8) * self.breadths + min(breadth, self.breadths - 1),
                0 if trend is None else 1 + round(min(trend, 1.5) * TREND_STEPS)]


class Group:
    """The counts of one peer group, one per measure."""

    __slots__ = ("members", "measures")

    def __init__(self, scale: PeerScale) -> None:
        self.members = 0
        self.measures = [Counts(size) for size in scale.sizes]


class PeerRanks:
    """One partition's peer groups: users' latest values in, percentiles out."""

    def __init__(self, scale: PeerScale) -> None:
        self.scale = scale
        self.groups: dict[Any, Group] = {}

    def _group(self, key: Any) -> Group:
        group = self.groups.get(key)
        if group is None:
            group = self.groups[key] = Group(self.scale)
        return group

    def _apply(self, key: Any, buckets: Sequence[int], n: int) -> None:
        ring = self.scale.ring
        targets = [self._group(ALL)] if key is None else [self._group(ALL), self._group(key)]
        for group in targets:
            group.members += n
            measures = group.measures
            measures[RECENCY].add(buckets[RECENCY] % ring, n)
            for m in range(1, MEASURES):
                measures[m].add(buckets[m], n)

    def add(self, key: Any, buckets: Sequence[int]) -> None:
        """Count a user's values in group ``key`` (None: no segment value) and partition-wide."""
        self._apply(key, buckets, 1)

    def remove(self, key: Any, buckets: Sequence[int]) -> None:
        self._apply(key, buckets, -1)

    def percentiles(self, key: Any, buckets: Sequence[int], day: int) -> list[float]:
        """Mid-rank of each value (the user's own counted: call after :meth:`add`) within group
        ``key``, or partition-wide when that group has fewer than ``MIN_PEERS`` users; ``day`` is
        the day judged (every last-active day in scope lies within ``horizon_days`` before it)."""
        group = self.groups.get(key) if key is not None else None
        if group is None or group.members < MIN_PEERS:
            group = self.groups[ALL]
        n = group.members
        out = []
        ring = self.scale.ring
        recency = group.measures[RECENCY]
        own = buckets[RECENCY]
        oldest = day - self.scale.horizon
        if own < oldest:  # cannot happen for a user in scope; ranked lowest if it does
            below = 0
        else:
            lo, hi = oldest % ring, own % ring
            below = recency.span(lo, hi) if lo <= hi else recency.span(lo, ring) + recency.below(hi)
        equal = recency.counts[own % ring]
        out.append((below + equal / 2) / n)
        for m in range(1, MEASURES):
            counts = group.measures[m]
            bucket = buckets[m]
            out.append((counts.below(bucket) + counts.counts[bucket] / 2) / n)
        return out
