"""Per-message cost of Faust's Prometheus monitor, and of our own sensor (docs/metrics.md#metrics).

Calls the four hooks Faust runs for every consumed message (message in, stream event in and
out, message out) directly, so the figure is the monitors' own work without broker noise.
Prints microseconds per message; run on an idle machine, a busy one inflates all figures:

    .venv/bin/python -m tests.support.bench_faust_sensor
"""

from __future__ import annotations

import time
from typing import Any

from faust.sensors import Sensor
from faust.sensors.base import SensorDelegate
from faust.sensors.monitor import Monitor
from faust.sensors.prometheus import FaustMetrics, PrometheusMonitor
from faust.types import TP
from prometheus_client import CollectorRegistry

from streams.runtime.monitor import WorkerMonitor

MESSAGES = 200_000
TP0 = TP("events", 0)


class _Message:
    """The attributes the monitors set on a message."""

    def __init__(self) -> None:
        self.time_in = self.time_out = self.time_total = None
        self.stream_meta: dict[str, Any] = {}


class _Owner:
    """A stream's task owner (the monitors key weak references by it)."""


class _Stream:
    task_owner = _Owner()
    shortlabel = "Stream: events"
    label = "events"


class _Event:
    message: _Message


class _App:
    """What ``SensorDelegate.add`` touches."""

    class beacon:  # noqa: N801 (Faust's attribute name)
        @staticmethod
        def new(_: Any) -> None:
            return None


def per_message_us(hooks: Any, n: int = MESSAGES) -> float:
    """Microseconds per message of the four per-message hooks of ``hooks``."""
    stream, event = _Stream(), _Event()
    start = time.perf_counter()
    for offset in range(n):
        message = _Message()
        event.message = message
        hooks.on_message_in(TP0, offset, message)
        state = hooks.on_stream_event_in(TP0, offset, stream, event)
        hooks.on_stream_event_out(TP0, offset, stream, event, state)
        hooks.on_message_out(TP0, offset, message)
    return (time.perf_counter() - start) / n * 1e6


def delegate(*sensors: Sensor) -> SensorDelegate:
    hooks = SensorDelegate(_App())  # type: ignore[arg-type]
    for sensor in sensors:
        hooks.add(sensor)
    return hooks


def main() -> None:
    prometheus = PrometheusMonitor(metrics=FaustMetrics.create(CollectorRegistry(), "bench"))
    runs = {
        "Faust default Monitor": Monitor(),
        "Faust PrometheusMonitor": prometheus,
        "sensors: Faust's Monitor": delegate(Monitor()),
        "sensors: WorkerMonitor (replaces it)": delegate(WorkerMonitor()),
        "sensors: Faust's Monitor + a no-op": delegate(Monitor(), Sensor()),
    }
    for name, hooks in runs.items():
        per_message_us(hooks, 20_000)  # warm up
        best = min(per_message_us(hooks) for _ in range(3))
        print(f"{name:36s} {best:6.2f} us/message")


if __name__ == "__main__":
    main()
