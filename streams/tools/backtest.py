"""The ``backtest`` command: replay a historical events file through the real pipeline and score
its churn-risk signals against churn labels (definitions in :mod:`streams.tools.backtest_scoring`).

Steps: start the embedded broker (unless ``--bootstrap``), create topics of the run's own, start a
worker process (``streams worker``, the full pipeline and configuration), produce the file as fast
as the broker takes it, then close the stream through the file's newest event (``streams close``):
every partition finishes the last day, which is scored; wait until the worker has consumed
everything and the signals topic is quiet; read the signals; report. Nothing goes past the end of
the file: the replay judges users as living through those days would have, no later.
"""

from __future__ import annotations

import asyncio
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import orjson
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from streams.config import Settings
from streams.core.contract import parse_time_ms
from streams.core.eventtime import iso_ms
from streams.local.broker import broker_for
from streams.local.worker_process import WorkerProcess
from streams.runtime.topics import ensure_topics
from streams.tools.backtest_scoring import ChurnScore, high_flags, read_labels, score_flags
from streams.tools.close import close_stream
from streams.tools.kafkaio import read_json, send_all

console = Console(stderr=True)
POLL_S = 0.5


@dataclass
class Replay:
    """What the replay sent and saw."""

    events: int = 0
    skipped: int = 0
    first_ms: int | None = None
    last_ms: int | None = None
    seconds: float = 0.0
    signals: list[dict[str, Any]] = field(default_factory=list)


def run_tag(settings: Settings, data_dir: str) -> Settings:
    """Topics, group and state directory of this run only, so a backtest never mixes with other data."""
    tag = uuid.uuid4().hex[:8]
    return settings.with_overrides(
        app_id=f"backtest-{tag}", events_topic=f"bt-{tag}-events", dead_letter_topic=f"bt-{tag}-dead-letter",
        signals_topic=f"bt-{tag}-signals", sessions_topic=f"bt-{tag}-sessions", metrics_topic=f"bt-{tag}-metrics",
        partials_topic=f"bt-{tag}-partials", data_dir=data_dir)


def _records(path: Path, replay: Replay) -> Iterator[tuple[bytes | None, bytes]]:
    """(key, line) for every event line, keyed by user; notes the event-time span."""
    with open(path, "rb") as fh:
        for line in fh:
            line = line.strip()
            if not line:
                continue
            try:
                doc = orjson.loads(line)
                user = doc.get("user_id") or doc.get("anonymous_id")
                ts = parse_time_ms(doc.get("timestamp"))
            except (orjson.JSONDecodeError, AttributeError):
                replay.skipped += 1
                continue
            if ts is not None:
                replay.first_ms = ts if replay.first_ms is None else min(replay.first_ms, ts)
                replay.last_ms = ts if replay.last_ms is None else max(replay.last_ms, ts)
            replay.events += 1
            yield (user.encode() if isinstance(user, str) and user else None), line


def _consumed(worker: WorkerProcess) -> tuple[int, int]:
    """(events judged, close records read) by the worker."""
    doc = worker.figures()
    return sum(v for k, v in doc["outcomes"].items() if k != "rekeyed"), doc["closed"]


def replay_file(settings: Settings, events: Path, progress: bool = True) -> Replay:
    """Run the pipeline over ``events`` and return the signals it emitted."""
    replay = Replay()
    started = time.perf_counter()
    asyncio.run(ensure_topics(settings))
    worker = WorkerProcess(settings, log_path=Path(settings.data_dir) / "worker.log")
    with worker:
        worker.wait_ready(timeout=120, partitions=settings.partitions)
        columns = (TextColumn("{task.description:<11}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
        with Progress(*columns, console=console, disable=not progress, transient=False) as bar:
            produced = bar.add_task("producing", total=None)
            asyncio.run(send_all(settings, _records(events, replay), on_sent=lambda n: bar.advance(produced, n)))
            bar.update(produced, total=replay.events)
            if replay.last_ms is None:
                raise ValueError(f"{events}: no events with a timestamp")
            close_stream(settings, replay.last_ms)
            consumed = bar.add_task("processing", total=replay.events)
            while True:
                if not worker.alive():
                    raise RuntimeError(f"the worker stopped (log: {worker.log_path})")
                done, closed = _consumed(worker)
                bar.update(consumed, completed=min(done, replay.events))
                if done >= replay.events and closed >= settings.partitions:
                    break
                time.sleep(POLL_S)
        time.sleep(2 * settings.commit_interval_s + 1)  # outputs go out with the next commit
        replay.signals = asyncio.run(read_json(settings, settings.signals_topic, idle_timeout=5.0))
    replay.seconds = time.perf_counter() - started
    return replay


def report(replay: Replay, score: ChurnScore, settings: Settings) -> None:
    """The summary table, on the terminal."""
    out = Console()
    counts: dict[tuple[str, str], int] = {}
    for sig in replay.signals:
        level = sig.get("to") or sig.get("direction") or ""
        counts[(sig.get("type", "?"), level)] = counts.get((sig.get("type", "?"), level), 0) + 1
    table = Table(title="backtest: churn-risk signals against churn labels", show_header=True)
    table.add_column("figure")
    table.add_column("value", justify="right")
    span = f"{iso_ms(replay.first_ms or 0)[:10]} .. {iso_ms(replay.last_ms or 0)[:10]}"
    rows = [
        ("events replayed", f"{replay.events:,} ({span})"),
        ("replay time", f"{replay.seconds:.0f} s ({replay.events / replay.seconds:,.0f} events/s)" if replay.seconds else "-"),
        ("churners (labels)", f"{score.churners}"),
        ("users flagged high", f"{score.flagged}"),
        ("flagged and churned", f"{score.correct}"),
        (f"caught >= {score.lead_days:g} days ahead", f"{score.caught}"),
        ("flagged too late / missed", f"{score.late} / {score.missed}"),
        ("precision", f"{score.precision:.3f}"),
        (f"recall (>= {score.lead_days:g} days ahead)", f"{score.recall:.3f}"),
        ("F1", f"{score.f1:.3f}"),
        ("median lead time (caught)", "-" if score.median_lead_days is None else f"{score.median_lead_days:.1f} days"),
        ("median lead time (all flagged)", "-" if score.median_lead_days_all is None
         else f"{score.median_lead_days_all:.1f} days"),
    ]
    for name, value in rows:
        table.add_row(name, value)
    out.print(table)
    signals = Table(title="signals emitted", show_header=True)
    for column in ("type", "level", "count"):
        signals.add_column(column)
    for (kind, level), n in sorted(counts.items()):
        signals.add_row(kind, level, str(n))
    out.print(signals)


def run_backtest(settings: Settings, events: Path, labels: Path, lead_days: float = 7.0, window_days: float = 35.0,
                 json_out: Path | None = None, progress: bool = True) -> ChurnScore:
    """The ``backtest`` command."""
    with open(labels, encoding="utf-8") as fh:
        truth = read_labels(fh)
    with broker_for(settings) as (live, _), tempfile.TemporaryDirectory(prefix="backtest-") as data_dir:
        replay = replay_file(run_tag(live, data_dir), events, progress=progress)
    signals = replay.signals
    score = score_flags(high_flags(signals), truth, lead_days=lead_days, window_days=window_days)
    report(replay, score, settings)
    if json_out is not None:
        doc = {"events": replay.events, "first_event": iso_ms(replay.first_ms or 0),
               "last_event": iso_ms(replay.last_ms or 0), "seconds": round(replay.seconds, 1),
               "signals": len(signals), **score.as_dict(),
               "config": {"engagement": settings.engagement, "risk": settings.risk}}
        json_out.write_bytes(orjson.dumps(doc, option=orjson.OPT_INDENT_2 | orjson.OPT_PASSTHROUGH_DATACLASS,
                                          default=_plain))
    return score


def _plain(value: Any) -> Any:
    import dataclasses

    if dataclasses.is_dataclass(value):
        return dataclasses.asdict(value)  # type: ignore[arg-type]
    raise TypeError(f"cannot serialize {type(value).__name__}")
