"""The ``bench`` command: the full pipeline against a bare Faust agent, in the same run.

Events are produced once; each run is a fresh process in a fresh consumer group reading the
same topic, alternating modes so drift on a shared machine hits both. Medians are reported,
and the figure that matters is the ratio pipeline / bare, not the absolute rate.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any, Iterable, Iterator

import orjson
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from streams.config import Settings, settings_to_toml
from streams.local.broker import broker_for
from streams.runtime.topics import ensure_topics
from streams.tools.bench_run import MODES
from streams.tools.kafkaio import event_records, send_all

console = Console(stderr=True)
RUN_TIMEOUT_S = 600.0


BENCH_DAYS = 365


def bench_events(n_events: int, users: int, seed: int = 7) -> Iterator[dict[str, Any]]:
    """A realistic event mix from the simulator (engaged, casual, churning users), cut at ``n_events``."""
    from streams.sim.simulator import SimulationConfig, simulate

    return simulate(SimulationConfig(users=users, days=BENCH_DAYS, seed=seed), max_events=n_events)


def _measure(settings: Settings, mode: str, expected: int, workdir: Path) -> dict[str, Any]:
    """One run of one mode in a child process (its own RSS, its own group)."""
    run_settings = settings.with_overrides(app_id=f"bench-{mode}-{uuid.uuid4().hex[:6]}",
                                           data_dir=str(workdir / uuid.uuid4().hex[:6]))
    config = workdir / f"{run_settings.app_id}.toml"
    config.write_text(settings_to_toml(run_settings))
    result = workdir / f"{run_settings.app_id}.json"
    env = {k: v for k, v in os.environ.items() if not k.startswith("ENGAGEMENT_")}
    proc = subprocess.Popen([sys.executable, "-m", "streams", "bench-run", "--config", str(config),
                             "--mode", mode, "--expected", str(expected), "--result", str(result)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
    try:
        _, err = proc.communicate(timeout=RUN_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        proc.kill()
        raise RuntimeError(f"bench run '{mode}' did not finish {expected} events in {RUN_TIMEOUT_S}s")
    if not result.exists():
        raise RuntimeError(f"bench run '{mode}' failed (exit {proc.returncode}): {err.decode()[-2000:]}")
    return orjson.loads(result.read_bytes())


def _produce(settings: Settings, events: Iterable[dict[str, Any]], total: int) -> int:
    with Progress(TextColumn("producing"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=console, transient=True) as bar:
        task = bar.add_task("produce", total=total)
        return asyncio.run(send_all(settings, event_records(events), on_sent=lambda n: bar.advance(task, n)))


def summarize(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Medians per mode and the pipeline / bare ratio."""
    out: dict[str, Any] = {"runs": runs}
    for mode in MODES:
        mine = [r for r in runs if r["mode"] == mode]
        out[mode] = {"events_per_s": statistics.median(r["events_per_s"] for r in mine),
                     "peak_rss_mb": statistics.median(r["peak_rss_mb"] for r in mine),
                     "seconds": statistics.median(r["seconds"] for r in mine),
                     "outputs_per_event": statistics.median(sum(r.get("sent", {}).values()) / r["events"]
                                                            for r in mine),
                     "handle_us": statistics.median(r.get("handle_us", 0.0) for r in mine)}
    ratios = [p["events_per_s"] / b["events_per_s"]
              for b, p in zip([r for r in runs if r["mode"] == "bare"], [r for r in runs if r["mode"] == "pipeline"])]
    out["ratio"] = out["pipeline"]["events_per_s"] / out["bare"]["events_per_s"]
    out["ratio_per_pair"] = ratios
    return out


def run_bench(settings: Settings, config_file: str | None, n_events: int, users: int, repeat: int,
              json_out: str | None) -> dict[str, Any]:
    """Produce the events once, then alternate bare and pipeline runs; print and return the medians."""
    with broker_for(settings) as (live, _), tempfile.TemporaryDirectory(prefix="bench-") as tmp:
        live = live.with_overrides(events_topic=f"bench-events-{uuid.uuid4().hex[:6]}")
        asyncio.run(ensure_topics(live))
        started = time.perf_counter()
        produced = _produce(live, bench_events(n_events, users), n_events)
        console.print(f"produced {produced:,} events for {users:,} users in {time.perf_counter() - started:.1f}s "
                      f"({live.partitions} partitions, broker {live.bootstrap})")
        runs = []
        with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                      console=console, transient=True) as bar:
            task = bar.add_task("measuring", total=repeat * len(MODES))
            for i in range(repeat):
                for mode in MODES:
                    bar.update(task, description=f"run {i + 1}/{repeat}: {mode}")
                    runs.append(_measure(live, mode, produced, Path(tmp)))
                    bar.advance(task)
    result = summarize(runs)
    result.update(events=produced, users=users, partitions=settings.partitions, repeat=repeat,
                  store=settings.store)
    _print(result)
    if json_out:
        Path(json_out).write_bytes(orjson.dumps(result, option=orjson.OPT_INDENT_2))
    return result


def _print(result: dict[str, Any]) -> None:
    table = Table(title=f"bench: {result['events']:,} events, {result['users']:,} users, "
                        f"{result['partitions']} partitions, {result['store']}, median of {result['repeat']}")
    table.add_column("mode")
    table.add_column("events/s", justify="right")
    table.add_column("seconds", justify="right")
    table.add_column("peak RSS (MB)", justify="right")
    table.add_column("records produced / event", justify="right")
    for mode, label in (("bare", "bare Faust agent (decode + count)"), ("pipeline", "full pipeline")):
        r = result[mode]
        table.add_row(label, f"{r['events_per_s']:,.0f}", f"{r['seconds']:.2f}", f"{r['peak_rss_mb']:.0f}",
                      f"{r['outputs_per_event']:.3f}")
    Console().print(table)
    pairs = ", ".join(f"{x:.2f}" for x in result["ratio_per_pair"])
    Console().print(f"ratio pipeline / bare: [bold]{result['ratio']:.2f}[/] (per pair: {pairs}; floor 0.70)")
    Console().print(f"the pipeline's own code (decode to state, every capability): "
                    f"{result['pipeline']['handle_us']:.1f} µs per event")
