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


class DemoView:
    """A rich Live display (or periodic plain summaries with ``live=False``)."""

    def __init__(self, settings: Settings, users: int, live: bool = True) -> None:
        self.settings = settings
        self.users = users
        self.phase = "starting"
        self.signals: deque[dict[str, Any]] = deque(maxlen=SIGNALS_SHOWN)
        self.signal_count = 0
        self.console = Console()
        self.live = Live(console=self.console, refresh_per_second=4, transient=False) if live else None
        self._last = 0.0
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
        now = time.monotonic()
        if now - self._last < REFRESH_S:
            return
        self._last = now
        try:
            doc = worker.figures()
        except OSError:
            return
        renderable = self.render(doc, sim_now_ms, sent)
        if self.live:
            self.live.update(renderable)
        else:
            self.console.print(renderable)

    def render(self, doc: dict[str, Any], sim_now_ms: int, sent: int) -> Group:
        outcomes = doc.get("outcomes", {})
        consumed = sum(outcomes.values())
        watermarks = [p.get("watermark_ms", -1) for p in doc.get("partitions", {}).values()]
        head = Table.grid(padding=(0, 2))
        head.add_row("phase", f"[bold]{self.phase}[/]", "simulated now", _when(sim_now_ms),
                     "watermark (min)", _when(min(watermarks) if watermarks else None))
        head.add_row("sent", f"{sent:,}", "consumed", f"{consumed:,}",
                     "elapsed", f"{time.monotonic() - self._started:,.0f}s")
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
            change = f"{signal.get('from', '')} -> {signal.get('to', signal.get('band', ''))}"
            reason = signal.get("reason") or ", ".join(r.get("code", str(r)) if isinstance(r, dict) else str(r)
                                                       for r in signal.get("reasons", []))
            signals.add_row(str(signal.get("type", "")), str(who), change, str(reason)[:60])
        grid = Table.grid(expand=True)
        grid.add_column(ratio=1)
        grid.add_column(ratio=2)
        grid.add_row(pipeline, figures)
        return Group(Panel(head, title="engagement pipeline demo", subtitle="Ctrl-C to stop"), grid, signals)

    def print_summary(self, worker: WorkerProcess) -> None:
        try:
            doc = worker.figures()
        except OSError:
            return
        self.console.print(self.render(doc, 0, sum(doc.get("outcomes", {}).values())))
