"""The ``simulate`` command's work: a simulation written as JSON lines, plus churn labels as CSV."""

from __future__ import annotations

import csv
import time
from dataclasses import dataclass
from typing import IO, Any, Iterator

from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from streams.config import MS_PER_DAY
from streams.sim.faults import with_malformed
from streams.sim.simulator import SimulationConfig, churn_labels, rfc3339, timed_events
from streams.tools.kafkaio import event_records

console = Console(stderr=True)
WRITE_CHUNK = 20_000


@dataclass
class ExportSummary:
    events: int = 0
    malformed: int = 0
    bytes: int = 0
    last_ms: int = 0
    labels: int = 0
    seconds: float = 0.0


def write_labels(config: SimulationConfig, out: IO[str], until_ms: int | None = None) -> int:
    """``user_id,churned_at`` rows (RFC 3339) for the simulation's churners; returns how many."""
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(("user_id", "churned_at"))
    labels = churn_labels(config, until_ms=until_ms)
    writer.writerows((user, rfc3339(ms)) for user, ms in labels)
    return len(labels)


def export(config: SimulationConfig, out: IO[bytes], labels: IO[str] | None = None,
           max_events: int | None = None, bad_rate: float = 0.0, progress: bool = False) -> ExportSummary:
    """Write the simulation's events as JSON lines (with malformed lines at ``bad_rate``).

    Labels cover the written events only: with ``max_events`` a churner is listed when its
    churn (last event) falls within what was written.
    """
    summary = ExportSummary(last_ms=config.start_ms)
    started = time.perf_counter()

    def documents() -> Iterator[dict[str, Any]]:
        for ts, doc in timed_events(config, max_events=max_events):
            summary.last_ms = ts
            summary.events += 1
            yield doc

    records = event_records(documents())
    if bad_rate:
        records = with_malformed(records, bad_rate, config.seed)
    with Progress(TextColumn("simulating"), BarColumn(), TextColumn("day {task.completed:.0f}/{task.total}"),
                  TextColumn("{task.fields[events]:,} events"), TimeElapsedColumn(),
                  console=console, disable=not progress, transient=True) as bar:
        task = bar.add_task("simulate", total=config.days, events=0)
        chunk: list[bytes] = []
        lines = 0
        for _, value in records:
            chunk.append(value)
            chunk.append(b"\n")
            summary.bytes += len(value) + 1
            lines += 1
            if len(chunk) >= 2 * WRITE_CHUNK:
                out.write(b"".join(chunk))
                chunk.clear()
                bar.update(task, completed=(summary.last_ms - config.start_ms) / MS_PER_DAY,
                           events=summary.events)
        out.write(b"".join(chunk))
    summary.malformed = lines - summary.events
    if labels is not None:
        complete = max_events is None or summary.events < max_events
        summary.labels = write_labels(config, labels, until_ms=None if complete else summary.last_ms + 1)
    summary.seconds = time.perf_counter() - started
    return summary


def report(summary: ExportSummary, config: SimulationConfig, out_name: str, labels_name: str | None) -> None:
    """One summary line (stderr), so stdout stays pure JSON lines."""
    rate = summary.events / summary.seconds if summary.seconds else 0.0
    days = (summary.last_ms - config.start_ms) / MS_PER_DAY
    faults = f", {summary.malformed} malformed" if summary.malformed else ""
    console.print(f"wrote {summary.events:,} events{faults} ({summary.bytes:,} bytes, {days:.1f} simulated days "
                  f"of {config.users} users) to {out_name} in {summary.seconds:.1f}s ({rate:,.0f} events/s)",
                  soft_wrap=True)
    if labels_name:
        console.print(f"wrote {summary.labels} churn labels to {labels_name}", soft_wrap=True)
