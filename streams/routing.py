"""Which partition a user belongs to, so every event of a user is judged by one worker.

The pipeline's exactness rests on each user living in one partition. Producers should key by
user id with Kafka's default (murmur2) partitioner; messages that arrive unkeyed, keyed by
something else, or placed by another partitioner (librdkafka's default is CRC32) are forwarded
to the user's home partition instead of being counted where they landed.
"""

from __future__ import annotations

from aiokafka.partitioner import murmur2


class HomePartitions:
    """murmur2(key) mod N, as Kafka's Java client computes it, remembered for known keys."""

    def __init__(self, partitions: int, cache_size: int) -> None:
        self.partitions = partitions
        self.cache_size = cache_size
        self._cache: dict[bytes, int] = {}

    def __call__(self, key: bytes) -> int:
        home = self._cache.get(key)
        if home is None:
            home = (murmur2(key) & 0x7FFFFFFF) % self.partitions
            if len(self._cache) >= self.cache_size:
                self._cache.clear()
            self._cache[key] = home
        return home
