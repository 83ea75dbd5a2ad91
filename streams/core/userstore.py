"""User records in a changelog-backed Faust table, written at most once per user per flush.

Faust writes one changelog message per ``table[key] = value``. Writing on every event would cost
one message per event (and per metric, with one table per metric), which is where Faust
pipelines lose most of their speed. Here events update decoded records in memory and mark them
dirty; :meth:`UserStore.flush` encodes each dirty record once and writes it to the store and
the changelog. The runtime flushes before every offset commit, so the changelog always holds at
least what the committed offsets claim.

The table holds encoded bytes (compact for millions of users; the same bytes go to RocksDB).
A bounded cache keeps recently used records decoded.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any, Callable, Iterator

from streams.config import RESERVED_KEY_PREFIX
from streams.core.state import UserState




class _PartitionKeys:
    """Which store keys belong to a partition, for memory and RocksDB stores alike."""

    def __init__(self, table: Any) -> None:
        self.table = table
        self.store = table.data
        self.rocksdb = hasattr(self.store, "_db_for_partition")

    def get(self, partition: int, key: bytes) -> bytes | None:
        if self.rocksdb:
            return self.store._db_for_partition(partition).get(key)
        return self.store.data.get(key)

    def put(self, partition: int, key: bytes, blob: bytes) -> None:
        if self.rocksdb:
            # Faust's RocksDB store takes the partition from the current event, which a flush at
            # commit time does not have; write to the partition's database directly.
            self.store._db_for_partition(partition).put(key, blob)
            self.store._key_index[key] = partition
        else:
            self.store.data[key] = blob
            self.store._key_partition[key] = partition

    def items(self, partition: int) -> Iterator[tuple[bytes, bytes]]:
        if self.rocksdb:
            skip = self.store.offset_key  # Faust keeps the partition's persisted offset here
            for key, blob in self.store._db_for_partition(partition).items():
                if key != skip:
                    yield key, blob
            return
        owner = self.store._key_partition
        for key, blob in self.store.data.items():
            if owner.get(key) == partition:
                yield key, blob


class UserStore:
    """Decoded, dirty-tracked user records over a Faust table of encoded records."""

    def __init__(self, table: Any, cache_size: int,
                 send_changelog: Callable[[int, bytes, bytes], Any] | None = None) -> None:
        self.keys = _PartitionKeys(table)
        self.cache_size = cache_size
        self._send = send_changelog or table.send_changelog
        self._cache: OrderedDict[bytes, UserState] = OrderedDict()
        self._dirty: dict[int, dict[bytes, UserState]] = {}
        self._last: set[bytes] = set()
        self.writes = 0

    def write_last(self, key: bytes) -> None:
        """Write ``key`` after every other record of its flush (a record that vouches for them)."""
        self._last.add(key)

    def _rank(self, item: tuple[bytes, Any]) -> int:
        key = item[0]
        if key in self._last:
            return 2
        return 0 if key.startswith(RESERVED_KEY_PREFIX) else 1

    def get(self, partition: int, key: bytes) -> UserState | None:
        """The user's record, or None for a user this partition has never applied an event for."""
        dirty = self._dirty.get(partition)
        if dirty is not None:
            state = dirty.get(key)
            if state is not None:
                return state
        cache = self._cache
        state = cache.get(key)
        if state is not None:
            cache.move_to_end(key)
            return state
        blob = self.keys.get(partition, key)
        if blob is None:
            return None
        state = UserState.decode(blob)
        self._remember(key, state)
        return state

    def _remember(self, key: bytes, state: UserState) -> None:
        cache = self._cache
        cache[key] = state
        if len(cache) > self.cache_size:
            cache.popitem(last=False)

    def mark_dirty(self, partition: int, key: bytes, state: UserState) -> None:
        dirty = self._dirty.get(partition)
        if dirty is None:
            dirty = self._dirty[partition] = {}
        dirty[key] = state

    def dirty_count(self) -> int:
        return sum(len(d) for d in self._dirty.values())

    def dirty_states(self, partition: int) -> Iterator[UserState]:
        """The records of a partition waiting for the next flush."""
        return iter(list(self._dirty.get(partition, {}).values()))

    def flush(self, partition: int | None = None) -> int:
        """Write every dirty record (of one partition or all) to the store and changelog once."""
        parts = list(self._dirty) if partition is None else [partition]
        written = 0
        for p in parts:
            dirty = self._dirty.pop(p, None)
            if not dirty:
                continue
            # Reserved records (partition tables such as segment label codes) go first: user
            # records refer to them, and a flush cut short by a crash must never leave a user
            # pointing at a code its recovered table lacks. Records registered with
            # ``write_last`` (the partition's event-time record) go after the users: whenever one
            # is recovered, so are the users of its flush. One changelog partition keeps order.
            for key, state in sorted(dirty.items(), key=self._rank):
                blob = state.encode()
                self.keys.put(p, key, blob)
                self._send(p, key, blob)
                self._remember(key, state)
            written += len(dirty)
        self.writes += written
        return written

    def items(self, partition: int) -> Iterator[tuple[bytes, UserState]]:
        """Every user record of a partition (decoded), used to rebuild partition figures after recovery."""
        for key, blob in self.keys.items(partition):
            if key.startswith(RESERVED_KEY_PREFIX):
                continue
            yield key, UserState.decode(blob)

    def drop_partition(self, partition: int) -> None:
        """Forget cached records of a partition handed to another worker (after its final flush)."""
        self._dirty.pop(partition, None)
        self._cache.clear()
