"""The ``bench-state`` command: per-user state size and resident memory for many distinct users.

What it drives, honestly: the real ingest path in-process — a :class:`~streams.runtime.Runtime`
with the default capabilities and :class:`~streams.core.userstore.UserStore` over a real Faust table
store object (``memory://`` or ``rocksdb://``) — but no broker: changelog messages and outputs
are counted and dropped, and one partition holds every user. So the figures are what the state
costs (records, decoded cache, timers, partition figures), without Faust's producer buffers,
Kafka clients or the consumer's fetch buffers. Each store runs in a fresh child process so one
run's memory cannot flatter or spoil the next.

The workload: ``--users`` distinct users over ``--days`` days of event time, each first seen on a
random day (with an identify carrying ``plan``) and then active with a habit drawn per user
(daily, weekly, casual, once), one to three events per active day carrying ``platform`` and
``country`` context. Events are fed in event-time order, flushed every ``FLUSH_EVERY`` events as
commits would.
"""

from __future__ import annotations

import gc
import multiprocessing
import os
import random
import resource
import tempfile
import time
from array import array
from pathlib import Path
from queue import Empty
from typing import Any, Callable, Iterator

import msgpack
import orjson
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

from streams.config import FLUSH_SLICE_RECORDS, GC_THRESHOLDS, LOOP_SLICE_S, MS_PER_DAY, ConfigError, Settings
from streams.core.contract import parse_time_ms

console = Console(stderr=True)
FLUSH_EVERY = 50_000
START_MS = parse_time_ms("2026-01-01T00:00:00Z") or 0
PLANS = ("free", "team", "business", "enterprise")
PLATFORMS = ("web", "ios", "android")
COUNTRIES = ("US", "DE", "FR", "GB", "BR", "IN", "JP", "CA")
#: (share of users, chance of activity on each later day)
HABITS = ((0.10, 0.5), (0.25, 0.15), (0.35, 0.04), (0.30, 0.0))
KINDS = ("page", "track", "screen")
IDENTIFY = 3
MAX_USERS = 1 << 24
MAX_DAYS = (1 << 16) - 1


def rss_bytes() -> int:
    """Current resident set size (Linux /proc; peak RSS elsewhere)."""
    try:
        with open("/proc/self/statm") as fh:
            return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except OSError:
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


class Workload:
    """Deterministic users and their events, generated day by day (never all in memory)."""

    def __init__(self, users: int, days: int, seed: int) -> None:
        rng = random.Random(seed)
        self.users, self.days, self.seed = users, days, seed
        cumulative, habits = 0.0, []
        for share, chance in HABITS:
            cumulative += share
            habits.append((cumulative, chance))
        self.first = array("H", (rng.randrange(days) for _ in range(users)))
        self.habit = bytearray(next(i for i, (c, _) in enumerate(habits) if rng.random() <= c or i == len(habits) - 1)
                               for _ in range(users))
        self.chances = [chance for _, chance in habits]

    def day(self, day: int) -> Iterator[tuple[int, bytes, bytes]]:
        """(event time, key, JSON) of every event of one day, in event-time order.

        The day's events are planned as packed integers (time in day, user, event number) and
        built one at a time, so the benchmark itself holds ~8 bytes per event of the day, not the
        events: its own allocations would otherwise show up as the pipeline's memory.
        """
        rng = random.Random(self.seed * 100_003 + day)
        plan = array("Q")
        chances, first, habit = self.chances, self.first, self.habit
        for user in range(self.users):
            start = first[user]
            if day < start or (day > start and rng.random() >= chances[habit[user]]):
                continue
            if day == start:
                plan.append(rng.randrange(MS_PER_DAY - 60_000) << 26 | user << 2 | IDENTIFY)
            for n in range(rng.randint(1, 3)):
                plan.append(rng.randrange(MS_PER_DAY) << 26 | user << 2 | n)
        base = START_MS + day * MS_PER_DAY
        for packed in sorted(plan):
            ts, user, n = base + (packed >> 26), (packed >> 2) & 0xFFFFFF, packed & 3
            uid = f"u{user:07d}"
            doc: dict[str, Any] = {"event_id": f"{uid}-{day}-{n}", "user_id": uid, "account_id": f"acct-{user // 20}",
                                   "timestamp": ts}
            if n == IDENTIFY:
                doc.update(type="identify", traits={"plan": PLANS[user % len(PLANS)]})
            else:
                doc.update(type=KINDS[n], context={"platform": PLATFORMS[user % len(PLATFORMS)],
                                                  "country": COUNTRIES[user % len(COUNTRIES)]})
                if n == 1:
                    doc["event"] = "report_created"
            yield ts, uid.encode(), orjson.dumps(doc)


class Steps:
    """The longest synchronous step of the runtime: one event, one slice of due timers, one slice
    of a flush or the flush's synchronous rest (what a worker's event loop would be blocked by);
    and, apart, the longest pause of the garbage collector (it runs inside whichever step
    allocates when a collection is due)."""

    def __init__(self) -> None:
        self.longest = 0.0
        self.longest_kind = ""
        self.longest_cpu = 0.0
        """The most CPU time one step used (without the time it waited for a CPU on a shared machine)."""
        self.gc_longest = 0.0
        self._gc_started = 0.0
        gc.callbacks.append(self._gc)

    def _gc(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            self._gc_started = time.perf_counter()
        else:
            self.gc_longest = max(self.gc_longest, time.perf_counter() - self._gc_started)

    def close(self) -> None:
        gc.callbacks.remove(self._gc)

    def time(self, kind: str, step: Callable[..., Any], *args: Any) -> Any:
        started, cpu = time.perf_counter(), time.thread_time()
        out = step(*args)
        took = time.perf_counter() - started
        if took > self.longest:
            self.longest, self.longest_kind = took, kind
        used = time.thread_time() - cpu
        if used > self.longest_cpu:
            self.longest_cpu = used
        return out

    def commit(self, runtime: Any) -> None:
        """A commit as the worker makes it: the records in slices, then the rest at once."""
        while runtime.store.dirty_count() > FLUSH_SLICE_RECORDS:
            self.time("flush slice", runtime.flush_some, FLUSH_SLICE_RECORDS)
        self.time("flush", runtime.flush)


class _Discard:
    """Stands in for the Faust producer: counts what would be sent."""

    def __init__(self) -> None:
        self.sent = 0

    def send(self, topic: str, key: bytes | None, value: bytes, partition: int | None = None) -> None:
        self.sent += 1

    def changelog(self, partition: int, key: bytes, value: bytes) -> None:
        self.sent += 1


def _faust_table(settings: Settings, data_dir: str) -> Any:
    """The real Faust store object behind a table (with the worker's RocksDB options), created without a broker."""
    import faust

    app = faust.App("bench-state", broker="kafka://127.0.0.1:1", store=settings.store, datadir=data_dir,
                    key_serializer="raw", value_serializer="raw")
    return app.Table("users", partitions=1, key_type=bytes, value_type=bytes, options=settings.rocksdb_options())


def measure(settings: Settings, users: int, days: int, seed: int, capabilities: str = "all",
            progress: bool = True) -> dict[str, Any]:
    """One run in this process: feed the workload, then measure state bytes and RSS growth."""
    from streams.capabilities.activity import ActivityCapability
    from streams.capabilities.registry import build_capabilities
    from streams.core.state import UserState
    from streams.core.userstore import UserStore
    from streams.runtime.partitions import Runtime

    settings = settings.with_overrides(partitions=1)
    with tempfile.TemporaryDirectory(prefix="bench-state-") as data_dir:
        table = _faust_table(settings, data_dir)
        sink = _Discard()
        store = UserStore(table, settings.state_cache_users, sink.changelog)
        caps = build_capabilities(settings) if capabilities == "all" else [ActivityCapability(settings)]
        runtime = Runtime(settings, store, sink, caps, slice_s=LOOP_SLICE_S)
        runtime.processor(0)
        steps = Steps()
        workload = Workload(users, days, seed)
        gc.collect()
        gc.freeze()  # the garbage collector tuned as in the worker (streams.runtime.worker.faust_worker)
        gc.set_threshold(*GC_THRESHOLDS)
        rss_before = rss_bytes()
        started = time.perf_counter()
        events = 0
        with Progress(TextColumn(f"{settings.store:<11} day {{task.fields[day]:>3}}/{days}"), BarColumn(),
                      MofNCompleteColumn(), TimeElapsedColumn(), TimeRemainingColumn(), console=console,
                      transient=True, disable=not progress) as bar:
            task = bar.add_task("feed", total=days, day=0)
            for day in range(days):
                for ts, key, raw in workload.day(day):
                    while runtime.busy:  # as the worker does: due timers in slices before the next event
                        steps.time("timers", runtime.work)
                    steps.time("event", runtime.handle, 0, key, raw, events, ts + 1000)
                    events += 1
                    if events % FLUSH_EVERY == 0:
                        steps.commit(runtime)
                bar.update(task, advance=1, day=day + 1)
        while runtime.busy:
            steps.time("timers", runtime.work)
        steps.commit(runtime)
        steps.close()
        seconds = time.perf_counter() - started
        gc.collect()
        rss_after = rss_bytes()
        proc = runtime.processors[0]
        record_bytes = slot_bytes = records = 0
        for key, blob in store.keys.items(0):
            if key[:1] == b"\x00":
                continue
            records += 1
            record_bytes += len(blob)
            slot = UserState.decode(blob).ext.get("a")
            slot_bytes += len(msgpack.packb(slot, use_bin_type=True)) if slot is not None else 0
        disk = sum(f.stat().st_size for f in Path(data_dir).rglob("*") if f.is_file())
        figures = proc.figures()
        return {"store": settings.store, "capabilities": [cap.name for cap in caps], "users": users, "records": records, "days": days, "events": events,
                "events_per_user": events / max(records, 1), "seconds": seconds, "events_per_s": events / seconds,
                "state_bytes_per_user": record_bytes / max(records, 1),
                "activity_slot_bytes_per_user": slot_bytes / max(records, 1),
                "rss_growth_bytes": rss_after - rss_before, "rss_growth_mb": (rss_after - rss_before) / 2**20,
                "rss_growth_bytes_per_user": (rss_after - rss_before) / max(records, 1),
                "disk_bytes": disk, "timers_pending": len(proc.timers),
                "timer_bytes": proc.timers.nbytes(),
                "decoded_cache_users": settings.state_cache_users, "home_cache_keys": len(runtime.home),
                "rocksdb_options": settings.rocksdb_options() if settings.store.startswith("rocksdb") else None,
                "changelog_and_outputs": sink.sent,
                "longest_step_ms": steps.longest * 1000, "longest_step": steps.longest_kind,
                "longest_step_cpu_ms": steps.longest_cpu * 1000,
                "longest_gc_pause_ms": steps.gc_longest * 1000,
                "activated_users": figures.get("activated_users"), "active_users_30d": figures.get("active_users_30d")}


def _child(settings: Settings, users: int, days: int, seed: int, capabilities: str, out: Any) -> None:
    out.put(measure(settings, users, days, seed, capabilities))


def run_state_bench(settings: Settings, users: int, days: int, seed: int, stores: tuple[str, ...],
                    capabilities: str = "all", json_out: str | None = None) -> list[dict[str, Any]]:
    """Each store in a fresh (spawned) process; print a table; optionally write JSON."""
    if not 0 < users <= MAX_USERS:
        raise ConfigError(f"--users: must be between 1 and {MAX_USERS:,}, got {users:,}")
    if not 0 < days <= MAX_DAYS:
        raise ConfigError(f"--days: must be between 1 and {MAX_DAYS:,}, got {days:,}")
    context = multiprocessing.get_context("spawn")
    results = []
    for store in stores:
        queue = context.Queue()
        child = context.Process(target=_child, args=(settings.with_overrides(store=store), users, days, seed,
                                                     capabilities, queue))
        child.start()
        while True:
            try:
                result = queue.get(timeout=1.0)
                break
            except Empty:
                if not child.is_alive():
                    raise RuntimeError(f"bench-state run for {store} failed (exit code {child.exitcode})") from None
        child.join()
        results.append(result)
        console.print(f"{store}: {result['events']:,} events in {result['seconds']:.0f}s")
    _print(results)
    if json_out:
        Path(json_out).write_bytes(orjson.dumps(results, option=orjson.OPT_INDENT_2))
    return results


def _print(results: list[dict[str, Any]]) -> None:
    first = results[0]
    out = Console(width=max(Console().width, 110))
    table = Table(title=f"bench-state: {first['users']:,} distinct users over {first['days']} days, "
                        f"{first['events']:,} events ({first['events_per_user']:.1f} per user), one partition, "
                        f"decoded cache {first['decoded_cache_users']:,} users; capabilities: "
                        f"{', '.join(first['capabilities'])}")
    for column in ("store", "record B/user", "activity B/user", "RSS growth MB", "RSS B/user", "disk MB",
                   "timers", "events/s", "longest step ms", "longest GC ms"):
        table.add_column(column, justify="left" if column == "store" else "right")
    for r in results:
        table.add_row(r["store"], f"{r['state_bytes_per_user']:.1f}", f"{r['activity_slot_bytes_per_user']:.1f}",
                      f"{r['rss_growth_mb']:.0f}", f"{r['rss_growth_bytes_per_user']:.0f}",
                      f"{r['disk_bytes'] / 2**20:.0f}", f"{r['timers_pending']:,}", f"{r['events_per_s']:,.0f}",
                      f"{r['longest_step_ms']:.0f} ({r['longest_step']}; CPU {r['longest_step_cpu_ms']:.0f})",
                      f"{r['longest_gc_pause_ms']:.0f}")
    out.print(table)
    out.print("record B/user: the whole encoded UserState (every capability's slot, the de-duplication ring); "
              "activity B/user: its ext['a'] slot alone.\nFloors (issue 3): <= 200 bytes per user; "
              "RSS growth <= 600 MB for 1M users with the memory store.\nlongest step: the longest synchronous "
              "step, as the worker slices its work (an event, a slice of due timers, a slice of a flush), "
              "wall time and the most CPU time a step used (the same on a quiet machine); "
              "floor (issue 12): <= 50 ms at 1M users.")
