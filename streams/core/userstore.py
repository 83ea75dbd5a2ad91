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
from itertools import islice
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
        self._reserved: dict[int, set[bytes]] = {}
        """Dirty reserved records per partition (written before the user records of a flush)."""
        self._last: set[bytes] = set()
        """Records written after every other record of their partition (see :meth:`write_last`)."""
        self.writes = 0

    def write_last(self, key: bytes) -> None:
        """Write ``key`` after every other dirty record of its partition (a record that vouches for
        them: the partition's event-time record; whenever it is recovered, so are they)."""
        self._last.add(key)

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
        if key[:1] == RESERVED_KEY_PREFIX and key not in self._last:
            self._reserved.setdefault(partition, set()).add(key)

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
            if dirty:
                written += self._write(p, dirty, len(dirty))
        self.writes += written
        return written

    def flush_some(self, limit: int) -> int:
        """Write up to ``limit`` dirty records (fewer when fewer are dirty); the rest stay dirty
        for the next call or :meth:`flush`. The worker flushes in such slices before a commit,
        yielding to the event loop between them, so the commit after a day's close (a record for
        each user judged) never blocks the loop for the whole flush."""
        written = 0
        for p in list(self._dirty):
            dirty = self._dirty[p]
            written += self._write(p, dirty, limit - written)
            if not dirty:
                del self._dirty[p]
            if written >= limit:
                break
        self.writes += written
        return written

    def _write(self, partition: int, dirty: dict[bytes, UserState], limit: int) -> int:
        """Encode and write up to ``limit`` records of ``dirty`` (removing them from it).

        Reserved records (partition tables such as segment label codes) go first, whatever the
        limit: user records refer to them, and a flush cut short by a crash must never leave a
        user pointing at a code its recovered table lacks. Records registered with
        :meth:`write_last` go last, once nothing else of the partition is dirty. One changelog
        partition keeps order.
        """
        keys, send, remember = self.keys, self._send, self._remember
        written = 0
        for key in sorted(k for k in self._reserved.pop(partition, ()) if k in dirty):
            state = dirty.pop(key)
            blob = state.encode()
            keys.put(partition, key, blob)
            send(partition, key, blob)
            remember(key, state)
            written += 1
        last = self._last
        batch = list(islice((item for item in dirty.items() if item[0] not in last), max(0, limit - written)))
        if len(batch) + len(self._last & dirty.keys()) == len(dirty):  # nothing else left: the vouching records too
            batch += [(key, dirty[key]) for key in sorted(last & dirty.keys())]
        for key, state in batch:  # oldest first
            del dirty[key]
            blob = state.encode()
            keys.put(partition, key, blob)
            send(partition, key, blob)
            remember(key, state)
        return written + len(batch)

    def items(self, partition: int) -> Iterator[tuple[bytes, UserState]]:
        """Every user record of a partition (decoded), used to rebuild partition figures after recovery."""
        for key, blob in self.keys.items(partition):
            if key.startswith(RESERVED_KEY_PREFIX):
                continue
            yield key, UserState.decode(blob)

    def drop_partition(self, partition: int) -> None:
        """Forget cached records of a partition handed to another worker (after its final flush)."""
        self._dirty.pop(partition, None)
        self._reserved.pop(partition, None)
        self._cache.clear()
