"""The demo's live terminal view: what the pipeline sees, refreshed from the worker's endpoints."""

from __future__ import annotations

import time
from collections import deque
from datetime import datetime, timezone
from typing import Any

from rich.console import Console, Group
from rich.live import Live
from rich.panel import Panel
from rich.table import Table

from streams.config import Settings
from streams.local.worker_process import WorkerProcess

SIGNALS_SHOWN = 10
REFRESH_S = 1.0
#: Without a terminal, one plain line this often.
PLAIN_EVERY_S = 5.0
#: The live phase says "catching up" while the watermark is more than this many real seconds of
#: simulated time behind the simulated now.
CATCHING_UP_S = 30


def _when(ms: int | None) -> str:
    if not ms or ms < 0:
        return "-"
    return datetime.fromtimestamp(ms / 1000, tz=timezone.utc).strftime("%Y-%m-%d %H:%M")


def _numbers(figures: dict[str, Any], prefix: str = "") -> dict[str, float]:
    """Flatten a partition's figures to name -> number (nested dicts become dotted names)."""
    out: dict[str, float] = {}
    for name, value in figures.items():
        if isinstance(value, bool):
            continue
        if isinstance(value, (int, float)):
            out[prefix + name] = value
        elif isinstance(value, dict):
            out.update(_numbers(value, f"{prefix}{name}."))
    return out


def summed_figures(doc: dict[str, Any]) -> dict[str, float]:
    """Figures of every partition added up (they are additive by design); watermarks excluded."""
    total: dict[str, float] = {}
    for figures in doc.get("partitions", {}).values():
        for name, value in _numbers(figures).items():
            if name in ("watermark_ms", "max_event_ms"):
                continue
            total[name] = total.get(name, 0) + value
    return total


def consumed(doc: dict[str, Any]) -> int:
    """Messages the worker consumed: every outcome once (a re-keyed message is counted again, as
    applied or else, in its home partition)."""
    outcomes = doc.get("outcomes", {})
    return sum(outcomes.values()) - outcomes.get("rekeyed", 0)


def duration(ms: float) -> str:
    """A span people read at a glance: 45s, 12m, 3.5h, 2.1d."""
    seconds = max(0.0, ms / 1000)
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds / size:.1f}{unit}"
    return f"{seconds:.0f}s"


def change(signal: dict[str, Any]) -> str:
    """What a signal says changed: a band or state (from -> to), or a score across a threshold."""
    if "to" in signal or "from" in signal:
        return f"{signal.get('from') or 'none'} -> {signal.get('to')}"
    if "score" in signal:
        crossed = f" ({signal['direction']} through {signal['threshold']:g})" if "threshold" in signal else ""
        return f"{signal.get('previous_score', '?')} -> {signal['score']}{crossed}"
    if "band" in signal:
        return str(signal["band"])
    return "-"


class DemoView:
    """A rich Live display in a terminal; a plain line every ``PLAIN_EVERY_S`` otherwise (a pipe,
    a log file, ``--no-live``), so ``streams demo | tee log`` shows progress as it happens."""

    def __init__(self, settings: Settings, users: int, live: bool = True) -> None:
        self.settings = settings
        self.users = users
        self.phase = "starting"
        self.speed: float | None = None
        self.signals: deque[dict[str, Any]] = deque(maxlen=SIGNALS_SHOWN)
        self.signal_count = 0
        self.console = Console()
        self.live = Live(console=self.console, refresh_per_second=4, transient=False) \
            if live and self.console.is_terminal else None
        self.sent = 0
        self.sim_now_ms = 0
        self._last = 0.0
        self._every = REFRESH_S if self.live else PLAIN_EVERY_S
        self._started = time.monotonic()

    def __enter__(self) -> "DemoView":
        if self.live:
            self.live.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        if self.live:
            self.live.__exit__(*exc)

    def add_signal(self, signal: dict[str, Any]) -> None:
        self.signals.appendleft(signal)
        self.signal_count += 1

    def update(self, worker: WorkerProcess, sim_now_ms: int, sent: int) -> None:
        self.sent, self.sim_now_ms = sent, sim_now_ms
        now = time.monotonic()
        if now - self._last < self._every:
            return
        self._last = now
        try:
            doc = worker.figures()
        except OSError:
            return
        if self.live:
            self.live.update(self.render(doc))
        else:
            self.console.print(self.line(doc), highlight=False, soft_wrap=True)

    def lags(self, doc: dict[str, Any]) -> tuple[int, int | None, int | None]:
        """(messages sent but not consumed yet, the slowest partition's watermark, how far it is
        behind the simulated now in ms)."""
        watermarks = [p.get("watermark_ms", -1) for p in doc.get("partitions", {}).values()]
        low = min((w for w in watermarks if w and w > 0), default=None)
        behind = None if low is None or not self.sim_now_ms else max(0, self.sim_now_ms - low)
        return max(0, self.sent - consumed(doc)), low, behind

    def status(self, doc: dict[str, Any]) -> str:
        """The phase, and whether the pipeline keeps up with it."""
        _, _, behind = self.lags(doc)
        if self.speed and behind is not None and behind > self.speed * 1000 * CATCHING_UP_S:
            return f"{self.phase} (the pipeline is catching up: {duration(behind)} of event time behind)"
        return self.phase

    def line(self, doc: dict[str, Any]) -> str:
        """One plain line: progress without a terminal."""
        lag, low, behind = self.lags(doc)
        outcomes = doc.get("outcomes", {})
        return (f"[{time.monotonic() - self._started:,.0f}s] {self.status(doc)}: sent {self.sent:,}, "
                f"consumed {consumed(doc):,} (lag {lag:,}), simulated now {_when(self.sim_now_ms)}, "
                f"watermark {_when(low)}"
                + (f" ({duration(behind)} behind)" if behind is not None else "")
                + f", dead letters {outcomes.get('dead_letter', 0):,}, signals {self.signal_count:,}")

    def render(self, doc: dict[str, Any]) -> Group:
        outcomes = doc.get("outcomes", {})
        lag, low, behind = self.lags(doc)
        head = Table.grid(padding=(0, 2))
        head.add_row("phase", f"[bold]{self.status(doc)}[/]", "simulated now", _when(self.sim_now_ms),
                     "watermark (slowest partition)", _when(low))
        head.add_row("sent", f"{self.sent:,}", "consumed", f"{consumed(doc):,}",
                     "elapsed", f"{time.monotonic() - self._started:,.0f}s")
        head.add_row("consumer lag", f"{lag:,} messages", "event-time lag",
                     "-" if behind is None else f"{duration(behind)} behind the simulation", "", "")
        pipeline = Table("outcome", "messages", title="outcomes", show_header=False, expand=True)
        for name in ("applied", "duplicate", "late", "dead_letter", "rekeyed"):
            pipeline.add_row(name, f"{outcomes.get(name, 0):,}")
        for reason, count in sorted(doc.get("dead_letter_reasons", {}).items()):
            pipeline.add_row(f"  dead letter: {reason}", f"{count:,}")
        figures = Table("figure", "value", title="what the pipeline sees (all partitions)", show_header=False,
                        expand=True)
        for name, value in sorted(summed_figures(doc).items())[:40]:
            figures.add_row(name, f"{value:,.3f}" if isinstance(value, float) and not value.is_integer() else f"{value:,.0f}")
        signals = Table(title=f"latest signals ({self.signal_count:,} so far)", expand=True)
        for column in ("type", "user / account", "change", "reason"):
            signals.add_column(column, overflow="fold")
        for signal in self.signals:
            who = signal.get("user_id") or signal.get("account_id") or "-"
            reason = signal.get("reason") or ", ".join(r.get("code", str(r)) if isinstance(r, dict) else str(r)
                                                       for r in signal.get("reasons", []))
            signals.add_row(str(signal.get("type", "")), str(who), change(signal), str(reason)[:60] or "-")
        grid = Table.grid(expand=True)
        grid.add_column(ratio=1)
        grid.add_column(ratio=2)
        grid.add_row(pipeline, figures)
        return Group(Panel(head, title="engagement pipeline demo", subtitle="Ctrl-C to stop"), grid, signals)

    def print_summary(self, worker: WorkerProcess) -> None:
        """The closing summary: the same counts as the view (what was sent, what was consumed)."""
        try:
            doc = worker.figures()
        except OSError:
            self.console.print(f"sent {self.sent:,} messages; the worker no longer answers")
            return
        if self.live:
            self.console.print(self.render(doc))
        self.console.print(f"summary: {self.line(doc)}", highlight=False, soft_wrap=True)
