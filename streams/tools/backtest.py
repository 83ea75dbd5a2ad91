"""The ``backtest`` command: replay a historical events file through the real pipeline and judge its
churn-risk signals against churn labels, beside baselines computed from the same events in the
same run (definitions in :mod:`streams.tools.backtest_scoring` and
:mod:`streams.tools.backtest_baselines`; the file's reading in :mod:`streams.tools.backtest_input`).

Steps: count the file's lines (the progress bars' total), start the embedded broker (unless
``--bootstrap``), create topics of the run's own, start a worker process (``streams worker``, the
full pipeline and configuration), produce the file as fast as the broker takes it (noting each
user's activity for the baselines), then push every partition's watermark just past the end of
the file's last day (one synthetic event per partition, from users named ``__backtest-*``), so
the last day is judged; wait until the worker has consumed everything; read the signals; judge
and report. Nothing goes past the end of the file: the replay judges users as living through
those days would have, no later.
"""

from __future__ import annotations

import asyncio
import dataclasses
import tempfile
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import orjson
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table

from streams.config import MS_PER_MINUTE, Settings
from streams.core.calendar import DayClock
from streams.core.eventtime import iso_ms
from streams.core.routing import HomePartitions
from streams.local.broker import broker_for
from streams.local.worker_process import WorkerProcess
from streams.runtime.topics import ensure_topics
from streams.tools.backtest_baselines import bottom_of_account, everyone, silent
from streams.tools.backtest_input import (
    Histories,
    ReadStats,
    checkpoints_option,
    count_lines,
    read_labels,
    records,
)
from streams.tools.backtest_scoring import (
    Figures,
    Flag,
    PipelineRisk,
    band_changes_per_month,
    judge_flags,
    judge_ranking,
    population,
)
from streams.tools.kafkaio import read_json, send_all

console = Console(stderr=True)
SYNTHETIC_PREFIX = "__backtest-"
POLL_S = 0.5
REPORT_WIDTH = 150
"""Width of the report when not on a terminal (a file, a pipe)."""
PIPELINE = "pipeline: band high"


@dataclass
class Replay:
    """What the replay sent and saw."""

    lines: int = 0
    stats: ReadStats = field(default_factory=ReadStats)
    histories: Histories = field(default_factory=Histories)
    seconds: float = 0.0
    signals: list[dict[str, Any]] = field(default_factory=list)
    trace: list[dict[str, Any]] = field(default_factory=list)
    """Every judgement's current risk (``[risk].trace_topic``)."""


def run_tag(settings: Settings, data_dir: str) -> Settings:
    """Topics, group and state directory of this run only, so a backtest never mixes with other data."""
    tag = uuid.uuid4().hex[:8]
    return settings.with_overrides(
        app_id=f"backtest-{tag}", events_topic=f"bt-{tag}-events", dead_letter_topic=f"bt-{tag}-dead-letter",
        signals_topic=f"bt-{tag}-signals", sessions_topic=f"bt-{tag}-sessions", metrics_topic=f"bt-{tag}-metrics",
        partials_topic=f"bt-{tag}-partials", data_dir=data_dir,
        risk=dataclasses.replace(settings.risk, trace_topic=f"bt-{tag}-risk-trace"))


def watermark_pushers(settings: Settings, at_ms: int) -> list[tuple[bytes, bytes]]:
    """One synthetic activity event per partition at ``at_ms`` (users chosen to land in each)."""
    home = HomePartitions(settings.partitions, settings.partitions * 64)
    found: dict[int, bytes] = {}
    n = 0
    while len(found) < settings.partitions:
        key = f"{SYNTHETIC_PREFIX}{n}".encode()
        found.setdefault(home(key), key)
        n += 1
    return [(key, orjson.dumps({"event_id": f"{key.decode()}-{at_ms}", "type": "track", "event": "backtest_end",
                                "user_id": key.decode(), "timestamp": iso_ms(at_ms)}))
            for _, key in sorted(found.items())]


def end_of_replay(settings: Settings, last_ms: int) -> int:
    """An event time whose watermark has passed the end of the last day of the file plus the
    time a day needs to be scored (settle), but no further."""
    from streams.capabilities.engagement import ScoringSchedule

    schedule = ScoringSchedule(settings)
    last_day = schedule.clock.day(last_ms)
    return schedule.due(last_day) + settings.allowed_lateness_ms + MS_PER_MINUTE


def _consumed(worker: WorkerProcess) -> int | None:
    try:
        doc = worker.figures()
    except OSError:  # busy with a long step: ask again at the next poll
        return None
    return sum(v for k, v in doc["outcomes"].items() if k != "rekeyed")


def replay_file(settings: Settings, events: Path, progress: bool = True) -> Replay:
    """Run the pipeline over ``events`` and return the signals it emitted."""
    replay = Replay()
    started = time.perf_counter()
    replay.lines = count_lines(events)
    asyncio.run(ensure_topics(settings))
    worker = WorkerProcess(settings, log_path=Path(settings.data_dir) / "worker.log")
    with worker:
        worker.wait_ready(timeout=120, partitions=settings.partitions)
        columns = (TextColumn("{task.description:<11}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                   TextColumn("eta"), TimeRemainingColumn())
        with Progress(*columns, console=console, disable=not progress, transient=False) as bar:
            produced = bar.add_task("producing", total=replay.lines)
            asyncio.run(send_all(settings, records(events, replay.histories, replay.stats),
                                 on_sent=lambda n: bar.advance(produced, n)))
            bar.update(produced, total=replay.stats.events, completed=replay.stats.events)
            if replay.histories.last_ms is None:
                raise ValueError(f"{events}: no events with a user and a timestamp")
            pushers = watermark_pushers(settings, end_of_replay(settings, replay.histories.last_ms))
            asyncio.run(send_all(settings, pushers))
            expected = replay.stats.events + len(pushers)
            consumed = bar.add_task("processing", total=expected)
            while True:
                if not worker.alive():
                    raise RuntimeError(f"the worker stopped (log: {worker.log_path})")
                done = _consumed(worker)
                if done is not None:
                    bar.update(consumed, completed=min(done, expected))
                    if done >= expected:
                        break
                time.sleep(POLL_S)
        time.sleep(2 * settings.commit_interval_s + 1)  # outputs go out with the next commit
        replay.signals = [s for s in asyncio.run(read_json(settings, settings.signals_topic, idle_timeout=5.0))
                          if not str(s.get("user_id", "")).startswith(SYNTHETIC_PREFIX)]
        if settings.risk.trace_topic:
            replay.trace = [t for t in asyncio.run(read_json(settings, settings.risk.trace_topic, idle_timeout=5.0))
                            if not str(t.get("user_id", "")).startswith(SYNTHETIC_PREFIX)]
    replay.histories.users = {u: h for u, h in replay.histories.users.items() if not u.startswith(SYNTHETIC_PREFIX)}
    replay.histories.finish()
    replay.seconds = time.perf_counter() - started
    return replay


@dataclass
class Result:
    """Everything the report shows (and ``--json-out`` writes)."""

    rows: list[Figures]
    info: dict[str, Any]


def judge(replay: Replay, labels_path: Path, checkpoints: str, settings: Settings, lead_days: float,
          window_days: float) -> Result:
    """The pipeline's and the baselines' figures over the same users and checkpoints."""
    clock = DayClock(settings.activity.timezone)
    histories = replay.histories
    with open(labels_path, encoding="utf-8") as fh:
        labels = read_labels(fh)
    marks = checkpoints_option(checkpoints, clock, histories.first_ms or 0, histories.last_ms or 0)
    people = population(labels, histories, marks, clock, window_days)
    pipeline = PipelineRisk(replay.signals, clock, trace=replay.trace)
    wanted = {j.day for j in people.judgements}
    predictors: list[tuple[str, dict[str, list[Flag]] | None, Callable[[str, int], float]]] = [
        (PIPELINE, pipeline.flags(), pipeline.risk)]
    baselines = [everyone(histories, clock), *silent(histories, clock), *bottom_of_account(
        histories, clock, window_days, wanted)]
    predictors += [(b.name, b.flags, b.risk) for b in baselines]
    rows = []
    for name, flags, risk in predictors:
        figures = Figures(name)
        if flags is not None:
            judge_flags(figures, flags, people.subjects, lead_days, window_days)
        judge_ranking(figures, risk, people.judgements, clock)
        rows.append(figures)
    signal_counts = Counter(f"{s.get('type')}:{s.get('to') or s.get('direction') or ''}" for s in replay.signals)
    info = {
        "events": replay.stats.events, "skipped_lines": replay.stats.skipped,
        "given_type": replay.stats.typed, "given_event_id": replay.stats.identified,
        "first_event": iso_ms(histories.first_ms or 0), "last_event": iso_ms(histories.last_ms or 0),
        "seconds": round(replay.seconds, 1), "users": len(histories.users),
        "judged_users": len(people.subjects), "churners": rows[0].churners, "non_churners": rows[0].non_churners,
        "labelled_users_without_events": people.unseen, "users_without_checkpoint": people.unjudged,
        "checkpoints": sorted({clock.label(j.day) for j in people.judgements}),
        "judgements": len(people.judgements), "positive_judgements": sum(j.positive for j in people.judgements),
        "lead_days": lead_days, "window_days": window_days,
        "band_changes_per_user_per_30_days_median": band_changes_per_month(pipeline.change_times(), people.subjects),
        "churn_risk_signals": sum(len(c) for c in pipeline.changes.values()),
        "current_risk": "judgements traced" if pipeline.traced else "last signal",
        "signals": dict(sorted(signal_counts.items())),
    }
    return Result(rows, info)


def _cell(value: float | None, digits: int = 3) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def report(result: Result) -> None:
    """The one table, and the run's facts, on the terminal."""
    info = result.info
    table = Table(title=f"backtest: {info['judged_users']:,} users ({info['churners']:,} churners), "
                        f"{info['judgements']:,} judgements at {len(info['checkpoints'])} checkpoint days",
                  show_header=True)
    heads = ("predictor", "precision", "recall", "F1", "median lead (d)", f"recall, lead >= {info['lead_days']:g} d",
             "non-churners flagged", "AUC", "non-churners flagged at recall 0.6")
    for index, head in enumerate(heads):
        table.add_column(head, justify="left" if index == 0 else "right")
    for row in result.rows:
        table.add_row(row.name, _cell(row.precision), _cell(row.recall), _cell(row.f1),
                      _cell(row.median_lead_days, 1), _cell(row.recall_lead), _cell(row.nonchurners_flagged),
                      _cell(row.auc), _cell(row.nonchurners_flagged_at_recall))
    out = Console(width=None if console.is_terminal else REPORT_WIDTH)
    out.print(table)
    rate = info["events"] / info["seconds"] if info["seconds"] else 0.0
    changes = info["band_changes_per_user_per_30_days_median"]
    out.print(f"events: {info['events']:,} ({info['first_event'][:10]} .. {info['last_event'][:10]}), "
              f"replayed in {info['seconds']:.0f} s ({rate:,.0f} events/s); churn-risk signals: "
              f"{info['churn_risk_signals']:,}, band changes per user per 30 days (median): "
              f"{_cell(changes, 2)}", soft_wrap=True)
    notes = [f"{info[k]:,} {text}" for k, text in (
        ("given_type", "events without type read as track"), ("given_event_id", "events given an event_id"),
        ("skipped_lines", "lines that are not JSON objects skipped"),
        ("labelled_users_without_events", "labelled users without events"),
        ("users_without_checkpoint", "users of accounts without a checkpoint")) if info[k]]
    if notes:
        out.print("; ".join(notes), soft_wrap=True)


def run_backtest(settings: Settings, events: Path, labels: Path, checkpoints: str = "7", lead_days: float = 7.0,
                 window_days: float = 35.0, json_out: Path | None = None, progress: bool = True) -> Result:
    """The ``backtest`` command."""
    with open(labels, encoding="utf-8") as fh:
        read_labels(fh)  # a bad labels or checkpoints file stops the command before the replay
    checkpoints_option(checkpoints, DayClock(settings.activity.timezone), 0, 0)
    with broker_for(settings) as (live, _), tempfile.TemporaryDirectory(prefix="backtest-") as data_dir:
        replay = replay_file(run_tag(live, data_dir), events, progress=progress)
    result = judge(replay, labels, checkpoints, settings, lead_days, window_days)
    report(result)
    if json_out is not None:
        doc = {**result.info, "rows": [row.as_dict() for row in result.rows],
               "config": {"engagement": settings.engagement, "risk": settings.risk}}
        json_out.write_bytes(orjson.dumps(doc, option=orjson.OPT_INDENT_2 | orjson.OPT_PASSTHROUGH_DATACLASS,
                                          default=_plain))
    return result


def _plain(value: Any) -> Any:
    import dataclasses

    if dataclasses.is_dataclass(value):
        return dataclasses.asdict(value)  # type: ignore[arg-type]
    raise TypeError(f"cannot serialize {type(value).__name__}")
