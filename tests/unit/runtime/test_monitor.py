"""Worker metrics from the Kafka client: consumer offset lag, outputs by role, commit durations."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import Counter
from types import SimpleNamespace
from typing import Any

import pytest
from aiokafka.partitioner import DefaultPartitioner
from faust.types import TP
from prometheus_client import CollectorRegistry

from streams.config import COMMIT_BUCKETS_S, Settings
from streams.runtime.metrics import describe
from streams.runtime.monitor import WorkerCollector, WorkerMonitor, offset_lag
from streams.tools.kafkaio import event_records, send_all
from tests.support.wait import wait_for


class FakeConsumer:
    """The parts of Faust's consumer that ``offset_lag`` reads."""

    def __init__(self, ends: dict[TP, int | None], committed: dict[TP, int], read: dict[TP, int]) -> None:
        self.ends = ends
        self._committed_offset = committed
        self._read_offset = read

    def assignment(self) -> set[TP]:
        return set(self.ends)

    def highwater(self, tp: TP) -> int | None:
        return self.ends[tp]


def test_offset_lag_is_end_minus_committed_per_owned_partition_of_the_topic() -> None:
    ev = [TP("events", p) for p in range(6)]
    consumer = FakeConsumer(
        ends={ev[0]: 120, ev[1]: 50, ev[2]: 7, ev[3]: None, ev[4]: 30, ev[5]: 10, TP("users-changelog", 0): 999},
        committed={ev[0]: 100, ev[1]: 50, ev[4]: 40, TP("users-changelog", 0): 1},
        read={ev[2]: 4, ev[3]: 3})
    # 0: 20 behind; 1: caught up; 2: never committed, read up to offset 4 -> next is 5;
    # 3: end unknown (not fetched yet) -> left out; 4: stale end offset -> 0, never negative;
    # 5: neither committed nor read -> unknown, left out; the changelog is not the events topic.
    assert offset_lag(consumer, "events") == {0: 20, 1: 0, 2: 2, 4: 0}


def test_offset_lag_of_a_consumer_that_is_not_running_is_empty() -> None:
    class NotStarted:
        def assignment(self) -> set[TP]:
            raise RuntimeError("consumer not started")

    assert offset_lag(NotStarted(), "events") == {}


def test_monitor_reports_commit_durations_in_seconds_and_records_sent_by_role() -> None:
    sensor = WorkerMonitor()
    for elapsed in (0.001, 0.02, 0.02, 0.3, 60.0):
        sensor.on_commit_completed(None, time.monotonic() - elapsed)
    sensor.on_commit_completed(None, None)  # a commit whose start we did not see is not counted
    for topic, times in (("sig", 3), ("app-rekey", 2), ("ev", 6), ("app-users-changelog", 4), ("app-rollup-changelog", 1),
                         ("app-__assignor-__leader", 9)):
        for _ in range(times):
            sensor.on_send_initiated(None, topic, None, 0, 0)
    settings = Settings(app_id="app", events_topic="ev", signals_topic="sig")
    tables = {name: SimpleNamespace(changelog_topic_name=f"app-{name}-changelog") for name in ("users", "rollup")}
    registry = CollectorRegistry(auto_describe=False)
    # Records the processors queued (batched past Faust's producer) add to Faust's own counts.
    batched = Counter({"sig": 2, "engagement-sessions": 5, "app-users-changelog": 10})
    registry.register(WorkerCollector(SimpleNamespace(_consumer=None, tables=tables), settings, sensor, batched))
    values = describe(registry)
    bucket = {bound: values[("engagement_commit_duration_seconds_bucket", (("le", bound),))]
              for bound in ("0.005", "0.025", "0.5", "10.0", "+Inf")}
    assert bucket == {"0.005": 1, "0.025": 3, "0.5": 4, "10.0": 4, "+Inf": 5}
    assert values[("engagement_commit_duration_seconds_count", ())] == 5
    assert 60.3 < values[("engagement_commit_duration_seconds_sum", ())] < 60.5
    assert len(COMMIT_BUCKETS_S) + 1 == len(sensor.buckets)
    outputs = {dict(labels)["output"]: v for (name, labels), v in values.items()
               if name == "engagement_output_messages_total"}
    # Faust's internal leader topic and the input are not outputs; both tables' changelogs are.
    assert outputs == {"signals": 5, "rekeyed": 2, "changelog": 15, "dead_letters": 0, "sessions": 5,
                       "metrics": 0, "partials": 0}
    assert not [k for k in values if k[0] == "engagement_consumer_offset_lag"]  # no consumer, no guess


def events(n: int, users: int = 20) -> list[dict[str, Any]]:
    now = int(time.time() * 1000)
    return [{"event_id": uuid.uuid4().hex, "type": "page", "user_id": f"u{i % users}", "timestamp": now - n + i}
            for i in range(n)]


def lag_gauges(worker: Any) -> dict[int, float]:
    found = {}
    for line in worker.get("/metrics").decode().splitlines():
        if line.startswith("engagement_consumer_offset_lag{"):
            labels, value = line.rsplit(" ", 1)
            found[int(labels.split('"')[1])] = float(value)
    return found


@pytest.mark.integration
def test_offset_lag_counts_exactly_the_messages_consumed_since_the_last_commit(make_settings: Any,
                                                                               workers: Any) -> None:
    settings = make_settings(partitions=4)
    asyncio.run(send_all(settings, event_records(events(100))))
    first = workers(settings, name="committer").wait_ready(partitions=4)
    wait_for(lambda: sum(first.figures()["outcomes"].values()) == 100, message="100 events consumed")
    wait_for(lambda: lag_gauges(first) == {0: 0, 1: 0, 2: 0, 3: 0}, message="committed: no lag")
    first.stop()

    # 300 more, read by a worker that will not commit for a long time: each partition's lag is
    # the number of those messages Kafka's partitioner put there.
    late = list(event_records(events(300)))
    asyncio.run(send_all(settings, late))
    partitioner = DefaultPartitioner()
    expected = Counter(partitioner(key, list(range(4)), list(range(4))) for key, _ in late)
    second = workers(settings.with_overrides(commit_interval_s=3600.0), name="holder").wait_ready(partitions=4)
    wait_for(lambda: second.figures()["outcomes"].get("applied") == 300, message="300 events applied")
    wait_for(lambda: lag_gauges(second) == {p: float(expected[p]) for p in range(4)},
             message=f"lag per partition == {dict(expected)}")
