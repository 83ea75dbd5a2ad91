"""What the worker produces (signals, sessions, snapshots' shares, dead letters, re-keyed events,
state changelog), queued synchronously and sent to Kafka in batches.

Faust's ``Topic.send_soon`` costs a future, a producer-buffer task and a trip through Faust's
sensors per record: at one output per few events that was a third of the pipeline's time. The
processors here append ``(topic, key, value, partition)`` to a list; every
``OUTPUT_LINGER_MS`` (and whenever Faust commits) the list is grouped by topic partition and
handed to aiokafka as whole record batches (``create_batch`` / ``send_batch``).

Delivery: Faust flushes its producer before it commits offsets. :class:`OutputBuffer` hooks that
flush (:meth:`wrap_flush`): queued records are batched, then aiokafka's flush waits for every
batch, and a failed batch fails the commit. So a committed offset implies that the outputs and
state written for the events before it are in Kafka (at least once, as with Faust's own path).
Order is kept per topic partition (the state changelog relies on it: partition tables before the
user records that refer to them).
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections import Counter
from typing import Any, Callable

from faust.exceptions import NotReady

from streams.config import OUTPUT_KEY_CACHE, OUTPUT_LINGER_MS
from streams.core.routing import HomePartitions

log = logging.getLogger(__name__)

#: Called with (topic partition, offset of the batch's last record) once a batch is written.
OnWritten = Callable[[Any, int], None]


class OutputBuffer:
    """Records queued by the processors, produced in batches through Faust's aiokafka producer."""

    def __init__(self, producer: Callable[[], Any]) -> None:
        self._producer = producer
        self._pending: list[tuple[str, bytes | None, bytes, int | None]] = []
        self._placement: dict[str, HomePartitions] = {}
        self._round_robin = itertools.count()
        self._on_written: dict[str, OnWritten] = {}
        self._timer: asyncio.TimerHandle | None = None
        self._lock = asyncio.Lock()
        self._failure: BaseException | None = None
        self._inflight: list[asyncio.Future[Any]] = []
        self.sent: Counter[str] = Counter()
        """Records handed to the producer, per topic (``engagement_output_messages_total``)."""

    def send(self, topic: str, key: bytes | None, value: bytes, partition: int | None = None) -> None:
        """Queue a record; ``partition`` None places it as Kafka's default partitioner would."""
        self._pending.append((topic, key, value, partition))
        if self._timer is None:
            self._schedule()

    def _schedule(self) -> None:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # no loop (a flush outside the worker): the next drain takes it
            return
        self._timer = loop.call_later(OUTPUT_LINGER_MS / 1000, self._kick)

    def on_written(self, topic: str, callback: OnWritten) -> None:
        """Call ``callback`` after each batch of ``topic`` is acknowledged (RocksDB's changelog offsets)."""
        self._on_written[topic] = callback

    def _kick(self) -> None:
        self._timer = None
        task = asyncio.ensure_future(self.drain())
        task.add_done_callback(self._drained)

    def _drained(self, task: asyncio.Task[None]) -> None:
        if not task.cancelled() and task.exception() is not None:
            self._fail(task.exception())  # type: ignore[arg-type]  # e.g. metadata for a topic: fails the next flush

    def _fail(self, exc: BaseException) -> None:
        if self._failure is None:
            log.error("output records could not be produced: %r", exc)
            self._failure = exc

    async def drain(self) -> None:
        """Hand every queued record to the producer, batched per topic partition (not awaiting acks)."""
        async with self._lock:
            self._prune()
            while self._pending:
                try:
                    producer = self._producer()
                except NotReady:  # the worker is starting or stopping: keep the records for later
                    self._schedule()
                    return
                pending, self._pending = self._pending, []
                groups: dict[tuple[str, int], list[tuple[bytes | None, bytes]]] = {}
                for topic, key, value, partition in pending:
                    if partition is None:
                        partition = await self._partition(producer, topic, key)
                    group = groups.get((topic, partition))
                    if group is None:
                        group = groups[(topic, partition)] = []
                    group.append((key, value))
                for (topic, partition), records in groups.items():
                    await self._send(producer, topic, partition, records)

    async def _send(self, producer: Any, topic: str, partition: int, records: list[tuple[bytes | None, bytes]]) -> None:
        batch = producer.create_batch()
        count = 0
        for key, value in records:
            if batch.append(key=key, value=value, timestamp=None) is None:
                await self._submit(producer, batch, topic, partition, count)
                batch, count = producer.create_batch(), 0
                batch.append(key=key, value=value, timestamp=None)
            count += 1
        await self._submit(producer, batch, topic, partition, count)
        self.sent[topic] += len(records)

    async def _submit(self, producer: Any, batch: Any, topic: str, partition: int, count: int) -> None:
        future: asyncio.Future[Any] = await producer.send_batch(batch, topic, partition=partition)
        self._inflight.append(future)
        callback = self._on_written.get(topic)
        if callback is not None:
            def written(fut: asyncio.Future[Any]) -> None:
                if not fut.cancelled() and fut.exception() is None:
                    meta = fut.result()
                    callback(meta.topic_partition, meta.offset + count - 1)

            future.add_done_callback(written)

    def _prune(self) -> None:
        """Forget acknowledged batches, remembering the first failure."""
        waiting = []
        for future in self._inflight:
            if not future.done():
                waiting.append(future)
            elif future.cancelled():
                self._fail(asyncio.CancelledError("an output batch was cancelled"))
            elif future.exception() is not None:
                self._fail(future.exception())  # type: ignore[arg-type]
        self._inflight = waiting

    async def _partition(self, producer: Any, topic: str, key: bytes | None) -> int:
        """Kafka's default placement: murmur2 of the key modulo the topic's partition count (as
        the broker reports it), keyless records round robin."""
        placement = self._placement.get(topic)
        if placement is None:
            count = len(await producer.partitions_for(topic))
            placement = self._placement[topic] = HomePartitions(count, OUTPUT_KEY_CACHE)
        if key is None:
            return next(self._round_robin) % placement.partitions
        return placement(key)

    async def flush(self) -> None:
        """Hand over everything queued and wait until Kafka acknowledged it; raise if any batch
        failed since the last flush (the commit that follows must not go ahead)."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        await self.drain()
        if self._pending:
            raise RuntimeError(f"{len(self._pending)} output records could not be handed to the producer (not running)")
        if self._inflight:
            await asyncio.wait(self._inflight)
        self._prune()
        if self._failure is not None:
            raise RuntimeError(f"output records were not produced: {self._failure!r}") from self._failure

    def wrap_flush(self, faust_producer: Any) -> None:
        """Make Faust's producer flush (run before every offset commit) include these records."""
        original = faust_producer.flush

        async def flush() -> None:
            await self.flush()
            await original()

        faust_producer.flush = flush
