"""Prometheus exposition of a worker: outcome counters and state-derived gauges.

Counters are kept as plain dict counts on the hot path and turned into Prometheus families only
when scraped, which costs nothing per event. Gauges are computed from the partitions this worker
owns right now, so ``sum()`` over workers is exact and a partition is never counted twice.
"""

from __future__ import annotations

import time
from typing import Any, Iterator

from prometheus_client import CollectorRegistry, ProcessCollector
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from streams.config import DEAD_LETTER_REASONS, METRIC_PREFIX, OUTCOMES
from streams.runtime.partitions import Runtime

P = METRIC_PREFIX


class RuntimeCollector(Collector):
    """Reads the runtime's counts and figures at scrape time."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime

    def collect(self) -> Iterator[Metric]:
        rt = self.runtime
        events = CounterMetricFamily(f"{P}_events", "Consumed messages by outcome "
                                     "(applied, duplicate, late, dead_letter, rekeyed).", labels=["outcome"])
        for outcome in OUTCOMES:
            events.add_metric([outcome], rt.outcomes.get(outcome, 0))
        yield events
        dead = CounterMetricFamily(f"{P}_dead_letters", "Messages written to the dead-letter topic, by reason.",
                                   labels=["reason"])
        for reason in DEAD_LETTER_REASONS:
            dead.add_metric([reason], rt.dead_letter_reasons.get(reason, 0))
        yield dead
        yield CounterMetricFamily(f"{P}_events_ahead", "Events applied although stamped further ahead "
                                  "than the partition's recent users agree time has come (by more than the "
                                  "allowed lateness): a device clock running ahead, or the first events after a "
                                  "quiet spell. They do not move the watermark.", value=rt.ahead)
        yield GaugeMetricFamily(f"{P}_partitions_paused", "Owned partitions whose reading is paused because "
                                "their watermark runs more than max_partition_skew_s ahead of the slowest.",
                                value=sum(1 for proc in rt.processors.values() if proc.paused))
        yield CounterMetricFamily(f"{P}_state_flushes", "State flushes (one per offset commit).", value=rt.flushes)
        yield CounterMetricFamily(f"{P}_state_writes", "User records written to the state table.",
                                  value=rt.store.writes)
        yield CounterMetricFamily(f"{P}_rebalances", "Partition hand-overs seen by this worker.",
                                  value=rt.rebalances)
        yield GaugeMetricFamily(f"{P}_assigned_partitions", "Source partitions this worker owns.",
                                value=len(rt.processors))
        figures = rt.figures()
        yield GaugeMetricFamily(f"{P}_users", "Distinct users with at least one applied event "
                                "(owned partitions; sum over workers).", value=figures.get("users", 0))
        yield GaugeMetricFamily(f"{P}_applied_events", "Events applied to user state, from state "
                                "(survives restarts; sum over workers).", value=figures.get("events", 0))
        wm = GaugeMetricFamily(f"{P}_watermark_seconds", "Event-time watermark per owned partition.",
                               labels=["partition"])
        lag = GaugeMetricFamily(f"{P}_event_time_lag_seconds", "Wall clock minus watermark per owned partition.",
                                labels=["partition"])
        now = time.time()
        for partition, value in sorted(rt.watermarks().items()):
            if value > 0:
                wm.add_metric([str(partition)], value / 1000)
                lag.add_metric([str(partition)], now - value / 1000)
        yield wm
        yield lag
        processors = list(rt.processors.values())
        for index, cap in enumerate(rt.capabilities):
            collect = getattr(cap, "collect", None)
            if collect is not None:
                yield from collect([proc.capabilities[index] for proc in processors])


def build_registry(runtime: Runtime) -> CollectorRegistry:
    """The worker's registry: the pipeline's families, and the process's own CPU time, resident
    memory, open files and start time (``process_*``, read from /proc at scrape time)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(RuntimeCollector(runtime))
    ProcessCollector(registry=registry)
    return registry


def describe(registry: CollectorRegistry) -> dict[str, Any]:
    """Current sample values by name and labels (for the live view and tests)."""
    out: dict[Any, Any] = {}
    for metric in registry.collect():
        for sample in metric.samples:
            out[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return out
