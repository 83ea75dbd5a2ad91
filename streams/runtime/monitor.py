"""Pipeline-health metrics only the running Faust worker knows: offset lag, records sent, commit time.

The runtime (``metrics.RuntimeCollector``) knows what happened to events; this module adds what
the Kafka client sees. Everything is read at scrape time from values Faust and aiokafka already
keep in memory (no broker round trip), and the worker's monitor adds no per-record work to
Faust's own, so a scrape stays cheap however busy the worker is.

Why not Faust's own sensor (``faust.sensors.prometheus.setup_prometheus_sensors``): its monitor
observes histograms on every message and stream event (the hot path),
mounts a second ``/metrics`` route, reports latencies in milliseconds, and names its series
after the app id (``<app_id>_...``), which changes per deployment and collides with our prefix
when the app id is ``engagement``. What it offers that an operator needs -- end vs committed
offsets, records sent per topic, commit latency -- is here, in base units and with our prefix.
See docs/metrics.md#metrics.
"""

from __future__ import annotations

import time
from collections import Counter
from typing import Any, Callable, Iterable, Iterator, Mapping

from faust.sensors.monitor import Monitor
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector

from streams.config import COMMIT_BUCKETS_S, METRIC_PREFIX, OUTPUT_ROLES, Settings

P = METRIC_PREFIX


def output_roles(settings: Settings, changelog_topics: Iterable[str]) -> dict[str, str]:
    """Topic name -> the bounded label value naming its role (topic names vary per deployment)."""
    roles = {topic: "changelog" for topic in changelog_topics}
    roles.update({settings.rekey_topic: "rekeyed", settings.dead_letter_topic: "dead_letters",
                  settings.signals_topic: "signals", settings.sessions_topic: "sessions",
                  settings.metrics_topic: "metrics", settings.partials_topic: "partials"})
    return roles


def offset_lag(consumer: Any, topic: str) -> dict[int, int]:
    """Messages not yet committed per owned partition of ``topic``: end offset - committed offset.

    The end offset (high watermark) is the one aiokafka learned from its last fetch response; the
    committed offset is Faust's record of what it committed (or found committed at assignment).
    Before the first commit the read position stands in. Partitions without a known end offset
    (not fetched yet) are left out rather than guessed. Never negative: a broker may report a
    stale end offset (the embedded broker does, see ``streams.runtime.tansu``).
    """
    try:
        assigned = [tp for tp in consumer.assignment() if tp.topic == topic]
    except Exception:  # consumer not started yet, or being rebuilt during a rebalance
        return {}
    committed: Mapping[Any, int | None] = getattr(consumer, "_committed_offset", {})
    read: Mapping[Any, int | None] = getattr(consumer, "_read_offset", {})
    lag: dict[int, int] = {}
    for tp in assigned:
        try:
            end = consumer.highwater(tp)
        except Exception:  # the partition moved away between assignment() and now
            continue
        if end is None:
            continue
        position = committed.get(tp)
        if position is None:
            last_read = read.get(tp)
            position = last_read + 1 if last_read is not None else None
        if position is None:
            continue
        lag[tp.partition] = max(0, end - position)
    return lag


class WorkerMonitor(Monitor):
    """Faust's monitor, extended: flushes state before each commit and times commits in buckets.

    It replaces the app's default monitor (``app.monitor``) rather than joining it as a second
    sensor: Faust calls every sensor's hooks four times per consumed message, so one more sensor
    is one more set of calls per event. Records Faust sends (the rollup's and account agent's
    outputs and tables) are counted by the monitor's own ``messages_sent_by_topic``.

    ``before_commit`` runs when Faust starts a commit, before it picks the offsets, flushes the
    producer and commits: the runtime writes its dirty user records there, so the changelog
    always holds every event the committed offsets cover. Commit time spans that flush, the
    producer flush and the commit request itself.
    """

    def __init__(self, before_commit: Callable[[], Any] | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.before_commit = before_commit
        self.buckets = [0] * (len(COMMIT_BUCKETS_S) + 1)
        self.commits = 0
        self.total_s = 0.0

    def on_commit_initiated(self, consumer: Any) -> Any:
        started = time.monotonic()
        if self.before_commit is not None:
            self.before_commit()
        return started

    def on_commit_completed(self, consumer: Any, state: Any) -> None:
        if not isinstance(state, float):
            return
        elapsed = time.monotonic() - state
        self.commit_latency.append(elapsed)
        self.commits += 1
        self.total_s += elapsed
        for index, bound in enumerate(COMMIT_BUCKETS_S):
            if elapsed <= bound:
                self.buckets[index] += 1
                return
        self.buckets[-1] += 1


class WorkerCollector(Collector):
    """Consumer offset lag, records sent by role, and commit durations, at scrape time."""

    def __init__(self, app: Any, settings: Settings, sensor: WorkerMonitor,
                 batched: Mapping[str, int] | None = None) -> None:
        self.app = app
        self.settings = settings
        self.sensor = sensor
        self.batched = batched if batched is not None else {}
        """Records per topic sent past Faust's producer (``outputs.OutputBuffer``)."""

    def collect(self) -> Iterator[Metric]:
        lag = GaugeMetricFamily(f"{P}_consumer_offset_lag", "Messages on the events topic not yet committed "
                                "by this worker (end offset - committed offset), per owned partition.",
                                labels=["partition"])
        consumer = getattr(self.app, "_consumer", None)  # never create one just to be scraped
        if consumer is not None:
            for partition, value in sorted(offset_lag(consumer, self.settings.events_topic).items()):
                lag.add_metric([str(partition)], value)
        yield lag
        out = CounterMetricFamily(f"{P}_output_messages", "Records this worker handed to the producer, by "
                                  "output (signals, sessions, metrics, partials, dead_letters, rekeyed, changelog).",
                                  labels=["output"])
        # Tables' changelogs (state, rollup) are looked up now: tables may be added after us.
        roles = output_roles(self.settings, (table.changelog_topic_name for table in self.app.tables.values()))
        sent = Counter({role: 0 for role in OUTPUT_ROLES})
        for topic, count in [*self.sensor.messages_sent_by_topic.items(), *self.batched.items()]:
            if topic in roles:  # Faust's own internal topics are not ours to report
                sent[roles[topic]] += count
        for role in OUTPUT_ROLES:
            out.add_metric([role], sent[role])
        yield out
        cumulative, buckets = 0, []
        for bound, count in zip((*map(str, COMMIT_BUCKETS_S), "+Inf"), self.sensor.buckets):
            cumulative += count
            buckets.append((bound, cumulative))
        yield HistogramMetricFamily(f"{P}_commit_duration_seconds", "Time from starting an offset commit "
                                    "(state and output flush included) to its completion.",
                                    buckets=buckets, sum_value=self.sensor.total_s)
