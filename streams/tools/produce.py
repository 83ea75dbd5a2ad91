"""The ``produce`` command: JSON lines to the events topic, checked, keyed by user, with progress."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import IO, Iterable, Iterator

import orjson
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from streams.config import Settings
from streams.core.contract import Decoder, Event
from streams.runtime.connect import ensure_broker
from streams.tools.kafkaio import send_all

MAX_REPORTED = 20
console = Console(stderr=True)


@dataclass
class ProduceSummary:
    sent: int = 0
    invalid: int = 0
    bytes: int = 0
    seconds: float = 0.0
    problems: list[str] = field(default_factory=list)


def user_key(doc: object) -> bytes | None:
    """The partitioning key of an event document: user_id, else anonymous_id."""
    if isinstance(doc, dict):
        user = doc.get("user_id") or doc.get("anonymous_id")
        if isinstance(user, str) and user:
            return user.encode()
    return None


def _checked(lines: Iterable[bytes], decoder: Decoder, summary: ProduceSummary,
             send_invalid: bool) -> Iterator[tuple[bytes | None, bytes]]:
    now_ms = int(time.time() * 1000)
    for number, line in enumerate(lines, 1):
        line = line.strip()
        if not line:
            continue
        judged = decoder.decode(line, now_ms)
        if not isinstance(judged, Event):
            summary.invalid += 1
            if len(summary.problems) < MAX_REPORTED:
                summary.problems.append(f"line {number}: {judged.reason}: {judged.message}")
            if not send_invalid:
                continue
            key = None
            try:
                key = user_key(orjson.loads(line))
            except orjson.JSONDecodeError:
                pass
        else:
            key = judged.user.encode()
        summary.bytes += len(line)
        yield key, line


def produce_lines(settings: Settings, source: IO[bytes], send_invalid: bool = False,
                  progress: bool = True) -> ProduceSummary:
    """Check and publish every line of ``source``; prints problems and a summary."""
    ensure_broker(settings)  # before reading a line: a wrong address is reported at once
    summary = ProduceSummary()
    decoder = Decoder(settings)
    started = time.perf_counter()
    with Progress(TextColumn("producing"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=console, disable=not progress, transient=True) as bar:
        task = bar.add_task("produce", total=None)
        summary.sent = asyncio.run(send_all(settings, _checked(source, decoder, summary, send_invalid),
                                            on_sent=lambda n: bar.advance(task, n)))
    summary.seconds = time.perf_counter() - started
    for problem in summary.problems:
        console.print(f"[yellow]invalid[/] {problem}")
    if summary.invalid > len(summary.problems):
        console.print(f"[yellow]... and {summary.invalid - len(summary.problems)} more invalid lines")
    rate = summary.sent / summary.seconds if summary.seconds else 0.0
    action = "sent anyway" if send_invalid else "skipped"
    console.print(f"sent {summary.sent} events ({summary.bytes} bytes) to '{settings.events_topic}' "
                  f"in {summary.seconds:.1f}s ({rate:,.0f}/s); {summary.invalid} invalid {action}")
    return summary
