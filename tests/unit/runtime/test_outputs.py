"""The worker's batched outputs: placement, order, acknowledgement offsets, failures and the commit hook."""

from __future__ import annotations

import asyncio
from collections import Counter, defaultdict
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.partitioner import DefaultPartitioner

from streams.runtime.outputs import OutputBuffer
from streams.tools.kafkaio import consume


async def read_all(settings: Any, topic: str, count: int) -> list[Any]:
    return [record async for record in consume(settings, topic, idle_timeout=5, max_messages=count)]


@pytest.mark.integration
def test_records_land_where_kafka_would_put_them_in_order_and_acks_report_last_offsets(make_settings: Any) -> None:
    settings = make_settings(partitions=3)
    keyed, placed = settings.signals_topic, settings.sessions_topic
    written: dict[int, int] = {}

    async def produce() -> OutputBuffer:
        producer = AIOKafkaProducer(**settings.kafka_client_options(), linger_ms=5)
        await producer.start()
        try:
            outputs = OutputBuffer(lambda: producer)
            outputs.on_written(keyed, lambda tp, offset: written.__setitem__(tp.partition, offset))
            for i in range(900):
                outputs.send(keyed, f"user-{i % 37}".encode(), str(i).encode())
                if i % 10 == 0:
                    outputs.send(placed, None, str(i).encode(), 2)
                if i % 300 == 299:
                    await asyncio.sleep(0.1)  # some drains run on the linger timer, some at flush
            await outputs.flush()
            return outputs
        finally:
            await producer.stop()

    outputs = asyncio.run(produce())
    assert outputs.sent == Counter({keyed: 900, placed: 90})

    records = asyncio.run(read_all(settings, keyed, 900))
    assert len(records) == 900
    partitioner = DefaultPartitioner()
    by_key: dict[bytes, list[int]] = defaultdict(list)
    for record in records:
        assert record.partition == partitioner(record.key, [0, 1, 2], [0, 1, 2])
        by_key[record.key].append(int(record.value))
    # Within a key (one partition), the order of sending is kept.
    assert all(values == sorted(values) for values in by_key.values())
    assert sorted(v for values in by_key.values() for v in values) == list(range(900))
    # The acknowledgement callback saw each partition's last offset.
    last = {p: max(r.offset for r in records if r.partition == p) for p in {r.partition for r in records}}
    assert written == last

    explicit = asyncio.run(read_all(settings, placed, 90))
    assert {r.partition for r in explicit} == {2}
    assert [int(r.value) for r in explicit] == list(range(0, 900, 10))


class _Batch:
    def __init__(self) -> None:
        self.records: list[tuple[Any, Any]] = []

    def append(self, *, key: Any, value: Any, timestamp: Any) -> Any:
        self.records.append((key, value))
        return object()


class _Producer:
    """aiokafka's batch interface; every batch of ``failing`` fails when acknowledged."""

    def __init__(self, failing: str | None = None) -> None:
        self.failing = failing
        self.batches: list[tuple[str, int, list[tuple[Any, Any]]]] = []

    def create_batch(self) -> _Batch:
        return _Batch()

    async def partitions_for(self, topic: str) -> set[int]:
        return {0, 1}

    async def send_batch(self, batch: _Batch, topic: str, *, partition: int) -> asyncio.Future[Any]:
        self.batches.append((topic, partition, batch.records))
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        if topic == self.failing:
            future.set_exception(RuntimeError("broker said no"))
        else:
            future.set_result(None)
        return future


class _FaustProducer:
    def __init__(self, log: list[str]) -> None:
        self.log = log

    async def flush(self) -> None:
        self.log.append("faust flush")  # the producer's own flush, then Faust commits


def test_a_failed_batch_fails_the_flush_faust_runs_before_committing() -> None:
    async def run() -> tuple[list[str], list[Any], str]:
        producer = _Producer(failing="signals")
        outputs = OutputBuffer(lambda: producer)
        log: list[str] = []
        faust_producer = _FaustProducer(log)
        outputs.wrap_flush(faust_producer)
        outputs.send("sessions", b"k", b"1", 0)
        outputs.send("signals", b"k", b"2", 1)
        try:
            await faust_producer.flush()
        except RuntimeError as exc:
            return log, producer.batches, str(exc)
        return log, producer.batches, ""

    log, batches, error = asyncio.run(run())
    # Queued records were handed to the producer when Faust flushed ...
    assert batches == [("sessions", 0, [(b"k", b"1")]), ("signals", 1, [(b"k", b"2")])]
    # ... and the failure stopped the flush, so the commit that follows it does not happen.
    assert "broker said no" in error
    assert log == []


def test_a_successful_flush_passes_and_leaves_nothing_queued() -> None:
    log: list[str] = []

    async def run() -> tuple[list[Any], list[Any]]:
        producer = _Producer()
        outputs = OutputBuffer(lambda: producer)
        faust_producer = _FaustProducer(log)
        outputs.wrap_flush(faust_producer)
        for i in range(5):
            outputs.send("t", None, b"%d" % i)  # keyless: spread round robin
        await faust_producer.flush()
        first = list(producer.batches)
        await faust_producer.flush()  # nothing new queued: nothing sent
        return first, producer.batches

    first, after = asyncio.run(run())
    assert sorted((p, [v for _, v in records]) for _, p, records in first) == [(0, [b"0", b"2", b"4"]),
                                                                              (1, [b"1", b"3"])]
    assert after == first
    assert log == ["faust flush", "faust flush"]


def test_records_queued_while_the_producer_is_not_running_wait_and_a_flush_then_refuses() -> None:
    from faust.exceptions import NotReady

    async def run() -> tuple[str, list[Any]]:
        running: list[_Producer] = []

        def producer() -> _Producer:
            if not running:
                raise NotReady("Producer service not yet started")
            return running[0]

        outputs = OutputBuffer(producer)
        outputs.send("t", b"k", b"1", 0)
        try:
            await outputs.flush()
            refused = ""
        except RuntimeError as exc:
            refused = str(exc)
        running.append(_Producer())
        await outputs.flush()  # kept, not dropped: sent once the producer runs
        return refused, running[0].batches

    refused, batches = asyncio.run(run())
    assert "not running" in refused
    assert batches == [("t", 0, [(b"k", b"1")])]
