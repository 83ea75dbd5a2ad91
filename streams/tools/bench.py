"""The ``bench`` command: the full pipeline against a bare Faust agent, in the same run, per workload.

A workload is data (:class:`BenchWorkload`: a name, what it is, where its events come from); one
runner measures every workload asked for the same way. Each workload's events are produced once to
a topic of their own; each run is a fresh process in a fresh consumer group reading that topic,
alternating modes so drift on a shared machine hits both. Medians are reported, and the figures
that matter are ratios within the run: pipeline / bare per workload, the sparse workload's rate
against the dense one's, the pipeline's own cost per event across the scaling grid.

The workloads (``docs/benchmarks.md``):

* ``dense``: today's busy product, 200,000 events of 5,000 users over a few days;
* ``sparse``: a long sparse history, 50,000 users over 365 days of the simulator's sparse product
  (a few short visits a week, long silences, short lives, churners and resurrections);
* ``grid``: the sparse product at users x1 / x4 and days x1 / x4 (2,500 users, 91 days at x1);
* ``kdd2015``: a real log (``../shared/datasets/kdd2015``, when the folder exists).
"""

from __future__ import annotations

import asyncio
import gzip
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

import orjson
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from streams.config import MS_PER_DAY, REPO_ROOT, Settings, settings_to_toml
from streams.local.broker import broker_for, free_port
from streams.runtime.topics import ensure_topics
from streams.tools.bench_run import MODES
from streams.tools.kafkaio import event_records, send_all

console = Console(stderr=True)
RUN_TIMEOUT_S = 3600.0
BENCH_DAYS = 365
SPARSE_USERS, SPARSE_DAYS = 50_000, 365
GRID_USERS, GRID_DAYS = 2_500, 91
GRID = ((1, 1), (4, 1), (1, 4), (4, 4))
#: Users per account in the sparse workloads. An account's health is judged per day, and every
#: partition holding a user of it in scope sends its share of the day: that costs per account
#: and day, not per user; 250 users an account is a B2B product of mid-size customers.
USERS_PER_ACCOUNT = 250
DATASETS = REPO_ROOT / ".." / "shared" / "datasets"
#: The floors the issue set (medians, same run).
FLOOR_RATIO = 0.7
FLOOR_SPARSE_VS_DENSE = 0.8
FLOOR_GRID_SPREAD = 0.25
FLOOR_LOOP_BLOCK_MS = 50.0


@dataclass(frozen=True)
class BenchWorkload:
    """One benchmark workload: its name, what it is, and its events (produced once per run)."""

    name: str
    title: str
    events: Callable[[], Iterable[dict[str, Any]]]
    users: int
    group: str = ""
    """Workloads compared with each other (the scaling grid)."""


def bench_events(n_events: int, users: int, seed: int = 7) -> Iterator[dict[str, Any]]:
    """A realistic event mix from the simulator (engaged, casual, churning users), cut at ``n_events``."""
    from streams.sim.simulator import SimulationConfig, simulate

    return simulate(SimulationConfig(users=users, days=BENCH_DAYS, seed=seed), max_events=n_events)


def sparse_events(users: int, days: int, seed: int = 7) -> Iterator[dict[str, Any]]:
    """Every event of the simulator's sparse product over ``days`` days, ending before today (the
    contract rejects events from the future), in accounts of ``USERS_PER_ACCOUNT`` users."""
    from streams.sim.simulator import SimulationConfig, simulate

    start = (int(time.time() * 1000) // MS_PER_DAY - days - 7) * MS_PER_DAY
    start -= ((start // MS_PER_DAY + 3) % 7) * MS_PER_DAY  # a Monday, like the simulator's default
    return simulate(SimulationConfig(users=users, days=days, seed=seed, sparse=True, start_ms=start,
                                     accounts=max(1, users // USERS_PER_ACCOUNT)))


def dataset_events(name: str) -> Iterator[dict[str, Any]]:
    with gzip.open(DATASETS / name / "events.jsonl.gz", "rb") as fh:
        for line in fh:
            yield orjson.loads(line)


def workloads(n_events: int, users: int, scale: float = 1.0) -> dict[str, list[BenchWorkload]]:
    """The workloads by the name ``--workload`` takes (``grid`` is four); ``scale`` shrinks the
    sparse and grid user counts (a quick look; the floors are stated for scale 1)."""
    sparse_users = max(10, round(SPARSE_USERS * scale))
    grid_users = max(10, round(GRID_USERS * scale))
    out: dict[str, list[BenchWorkload]] = {
        "dense": [BenchWorkload("dense", f"dense: {n_events:,} events of {users:,} users",
                                lambda: bench_events(n_events, users), users)],
        "sparse": [BenchWorkload("sparse", f"long sparse history: {sparse_users:,} users over {SPARSE_DAYS} days",
                                 partial(sparse_events, sparse_users, SPARSE_DAYS), sparse_users)],
        "grid": [BenchWorkload(f"grid-u{u}-d{d}", f"sparse grid: users x{u} ({grid_users * u:,}), days x{d} "
                               f"({GRID_DAYS * d})", partial(sparse_events, grid_users * u, GRID_DAYS * d),
                               grid_users * u, group="grid") for u, d in GRID],
    }
    if (DATASETS / "kdd2015" / "events.jsonl.gz").exists():
        out["kdd2015"] = [BenchWorkload("kdd2015", "real log: kdd2015 (57k enrolments, 9 months)",
                                        lambda: dataset_events("kdd2015"), 57_366)]
    return out


def _measure(settings: Settings, mode: str, expected: int, workdir: Path) -> dict[str, Any]:
    """One run of one mode in a child process (its own RSS, its own group)."""
    run_settings = settings.with_overrides(app_id=f"bench-{mode}-{uuid.uuid4().hex[:6]}",
                                           data_dir=str(workdir / uuid.uuid4().hex[:6]),
                                           web_port=free_port())  # never a worker's or another bench's port
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


def _produce(settings: Settings, events: Iterable[dict[str, Any]], label: str) -> int:
    with Progress(TextColumn(f"producing {label}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=console, transient=True) as bar:
        task = bar.add_task("produce", total=None)
        return asyncio.run(send_all(settings, event_records(events), on_sent=lambda n: bar.advance(task, n)))


def summarize(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Medians per mode, the pipeline / bare ratio (median of the pairs' ratios)."""
    out: dict[str, Any] = {"runs": runs}
    for mode in MODES:
        mine = [r for r in runs if r["mode"] == mode]
        out[mode] = {"events_per_s": statistics.median(r["events_per_s"] for r in mine),
                     "peak_rss_mb": statistics.median(r["peak_rss_mb"] for r in mine),
                     "seconds": statistics.median(r["seconds"] for r in mine),
                     "outputs_per_event": statistics.median(sum(r.get("sent", {}).values()) / r["events"]
                                                            for r in mine),
                     "handle_us": statistics.median(r.get("handle_us", 0.0) for r in mine),
                     "loop_block_ms": statistics.median(r.get("loop_block_ms", 0.0) for r in mine),
                     "loop_block_max_ms": max(r.get("loop_block_ms", 0.0) for r in mine),
                     "loop_block_cpu_max_ms": max(r.get("loop_block_cpu_ms", 0.0) for r in mine)}
    ratios = [p["events_per_s"] / b["events_per_s"]
              for b, p in zip([r for r in runs if r["mode"] == "bare"], [r for r in runs if r["mode"] == "pipeline"])]
    out["ratio"] = statistics.median(ratios)
    out["ratio_per_pair"] = ratios
    return out


def machine_load() -> str:
    """The load averages (``uptime``): how busy the shared machine was."""
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "unknown"


def run_bench(settings: Settings, config_file: str | None, n_events: int, users: int, repeat: int,
              json_out: str | None, names: Iterable[str] = ("dense",), scale: float = 1.0) -> dict[str, Any]:
    """Produce each workload's events once, then alternate bare and pipeline runs; print and return."""
    available = workloads(n_events, users, scale)
    names = list(dict.fromkeys(n for name in names for n in (available if name == "all" else [name])))
    chosen: list[BenchWorkload] = []
    for name in names:
        if name == "kdd2015" and name not in available:
            console.print(f"kdd2015: skipped, no data set at {DATASETS / 'kdd2015'}")
            continue
        chosen += available[name]
    result: dict[str, Any] = {"partitions": settings.partitions, "repeat": repeat, "store": settings.store,
                              "load_before": machine_load(), "cpus": os.cpu_count(), "workloads": {}}
    with broker_for(settings) as (live, _), tempfile.TemporaryDirectory(prefix="bench-") as tmp:
        for workload in chosen:
            result["workloads"][workload.name] = _bench_workload(live, workload, repeat, Path(tmp))
    result["load_after"] = machine_load()
    result["floors"] = floors(result["workloads"])
    _print(result)
    if json_out:
        Path(json_out).write_bytes(orjson.dumps(result, option=orjson.OPT_INDENT_2))
    return result


def _bench_workload(settings: Settings, workload: BenchWorkload, repeat: int, tmp: Path) -> dict[str, Any]:
    live = settings.with_overrides(events_topic=f"bench-{workload.name}-{uuid.uuid4().hex[:6]}")
    asyncio.run(ensure_topics(live))
    started = time.perf_counter()
    produced = _produce(live, workload.events(), workload.name)
    console.print(f"{workload.name}: produced {produced:,} events in {time.perf_counter() - started:.1f}s "
                  f"({live.partitions} partitions, broker {live.bootstrap})")
    runs = []
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=console, transient=True) as bar:
        task = bar.add_task("measuring", total=repeat * len(MODES))
        for i in range(repeat):
            for mode in MODES:
                bar.update(task, description=f"{workload.name} run {i + 1}/{repeat}: {mode}")
                runs.append(_measure(live, mode, produced, tmp))
                bar.advance(task)
    summary = summarize(runs)
    summary.update(title=workload.title, events=produced, users=workload.users, group=workload.group,
                   load=machine_load())
    return summary


def floors(found: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """The issue's floors, checked on what this run measured: (what, value, floor, met)."""
    out: list[dict[str, Any]] = []

    def check(what: str, value: float, floor: float, at_least: bool = True) -> None:
        out.append({"what": what, "value": round(value, 3), "floor": floor, "at_least": at_least,
                    "met": value >= floor if at_least else value <= floor})

    for name, w in found.items():
        check(f"{name}: pipeline / bare", w["ratio"], FLOOR_RATIO)
    if "dense" in found:
        for name in ("sparse", "kdd2015"):
            if name in found:
                check(f"{name} events/s / dense events/s", found[name]["pipeline"]["events_per_s"]
                      / found["dense"]["pipeline"]["events_per_s"], FLOOR_SPARSE_VS_DENSE)
    grid = [w["pipeline"]["handle_us"] for w in found.values() if w.get("group") == "grid"]
    if len(grid) > 1:
        middle = statistics.median(grid)
        check("grid: own µs per event, largest deviation from the median", max(abs(g / middle - 1) for g in grid),
              FLOOR_GRID_SPREAD, at_least=False)
    if "sparse" in found:
        check("sparse: longest loop block (ms)", found["sparse"]["pipeline"]["loop_block_max_ms"],
              FLOOR_LOOP_BLOCK_MS, at_least=False)
        check("sparse: longest loop block, CPU time of the loop's thread (ms; without waits for a CPU)",
              found["sparse"]["pipeline"]["loop_block_cpu_max_ms"], FLOOR_LOOP_BLOCK_MS, at_least=False)
    return out


def _print(result: dict[str, Any]) -> None:
    out = Console(width=max(Console().width, 140))
    table = Table(title=f"bench: {result['partitions']} partitions, {result['store']}, medians of {result['repeat']} "
                        f"(load {result['load_before']} before, {result['load_after']} after, {result['cpus']} CPUs)")
    for column in ("workload", "events", "bare ev/s", "pipeline ev/s", "pipeline / bare", "own µs/event",
                   "longest loop block (ms)", "peak RSS (MB)", "records out / event"):
        table.add_column(column, justify="left" if column == "workload" else "right")
    for name, w in result["workloads"].items():
        table.add_row(w["title"], f"{w['events']:,}", f"{w['bare']['events_per_s']:,.0f}",
                      f"{w['pipeline']['events_per_s']:,.0f}",
                      f"{w['ratio']:.2f} ({', '.join(f'{x:.2f}' for x in w['ratio_per_pair'])})",
                      f"{w['pipeline']['handle_us']:.1f}",
                      f"{w['pipeline']['loop_block_ms']:.0f} (max {w['pipeline']['loop_block_max_ms']:.0f}; "
                      f"bare {w['bare']['loop_block_ms']:.0f}; CPU max {w['pipeline']['loop_block_cpu_max_ms']:.0f})",
                      f"{w['pipeline']['peak_rss_mb']:.0f}", f"{w['pipeline']['outputs_per_event']:.3f}")
    out.print(table)
    for floor in result["floors"]:
        relation = ">=" if floor["at_least"] else "<="
        out.print(f"{'met ' if floor['met'] else 'NOT met'}  {floor['what']}: {floor['value']:g} "
                  f"(floor {relation} {floor['floor']:g})")
