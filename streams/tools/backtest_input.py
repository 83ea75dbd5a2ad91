"""What the backtest reads: an events file (JSON lines, plain or gzip), churn labels, checkpoints.

The events file is read twice: once to count its lines (fast, no parsing: the progress bars get a
total and an ETA), once to produce it, and while producing each user's activity is noted
(:class:`Histories`), which is all the baselines and the judgements need. Two defaults make a log
exported from elsewhere replayable as it is, and are applied here only (the event contract keeps
requiring both fields from producers):

* an event without ``type`` is a ``track`` event (a log of named actions);
* an event without ``event_id`` gets one derived from its content (a hash of the line), so
  identical lines count once, as retries would.

Labels are CSV, ``user_id,churned,churn_time`` (``churned`` 1/0 or true/false, ``churn_time``
RFC 3339 or epoch ms, empty when unknown), or the older ``user_id,churned_at`` that lists churners
only (every other user in the events is then a non-churner). Checkpoints are either a number
(that many days evenly spread over the events' span) or a CSV naming, per account, the day its
users are judged (``account_id`` and ``last_day``, as ``label_windows.csv`` of the kdd2015 set).
"""

from __future__ import annotations

import csv
import gzip
import hashlib
from array import array
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, BinaryIO, Iterator

import orjson

from streams.config import ACTIVITY_TYPES
from streams.core.calendar import DayClock
from streams.core.contract import parse_time_ms

GZIP_MAGIC = b"\x1f\x8b"
DEFAULT_TYPE = "track"
COUNT_CHUNK = 1 << 20


def open_events(path: Path) -> BinaryIO:
    """The file's bytes, decompressed when it is gzip (by its first bytes, whatever its name)."""
    with open(path, "rb") as fh:
        magic = fh.read(2)
    if magic == GZIP_MAGIC:
        return gzip.GzipFile(path, "rb")  # type: ignore[return-value]  # a BinaryIO in all but name
    return open(path, "rb")


def count_lines(path: Path) -> int:
    """Non-empty lines of the file (the progress bars' total), without parsing them."""
    lines = 0
    with open_events(path) as fh:
        tail = b"\n"
        while chunk := fh.read(COUNT_CHUNK):
            lines += chunk.count(b"\n")
            tail = chunk[-1:]
    return lines + (tail != b"\n")


@dataclass
class UserHistory:
    """One user's activity in the file: what the baselines and the judgements read."""

    account: str | None = None
    first_ms: int = 0
    activity: array = field(default_factory=lambda: array("q"))
    """Event times (ms) of the user's activity events (track, page, screen), sorted by :meth:`Histories.finish`."""


class Histories:
    """Every user's history, noted while the file is produced."""

    def __init__(self) -> None:
        self.users: dict[str, UserHistory] = {}
        self.first_ms: int | None = None
        self.last_ms: int | None = None

    def note(self, user: str, ts: int, activity: bool, account: str | None) -> None:
        history = self.users.get(user)
        if history is None:
            history = self.users[user] = UserHistory(first_ms=ts)
        elif ts < history.first_ms:
            history.first_ms = ts
        if account:
            history.account = account
        if activity:
            history.activity.append(ts)
        if self.first_ms is None or ts < self.first_ms:
            self.first_ms = ts
        if self.last_ms is None or ts > self.last_ms:
            self.last_ms = ts

    def finish(self) -> "Histories":
        """Sort every user's activity (a file need not be in event-time order)."""
        for history in self.users.values():
            if any(a > b for a, b in zip(history.activity, history.activity[1:])):
                history.activity = array("q", sorted(history.activity))
        return self


@dataclass
class ReadStats:
    events: int = 0
    skipped: int = 0
    """Lines that are not a JSON object (the worker would dead-letter them; not produced)."""
    typed: int = 0
    """Events given the default ``type``."""
    identified: int = 0
    """Events given an ``event_id`` from their content."""


def records(path: Path, histories: Histories, stats: ReadStats) -> Iterator[tuple[bytes | None, bytes]]:
    """(key, value) for every event line, keyed by user, with the defaults above applied; notes
    every user's activity in ``histories``."""
    with open_events(path) as fh:
        for raw in fh:
            line = raw.strip()
            if not line:
                continue
            try:
                doc = orjson.loads(line)
            except orjson.JSONDecodeError:
                stats.skipped += 1
                continue
            if not isinstance(doc, dict):
                stats.skipped += 1
                continue
            changed = False
            if "type" not in doc:
                doc["type"] = DEFAULT_TYPE
                stats.typed += 1
                changed = True
            if "event_id" not in doc:
                doc["event_id"] = hashlib.blake2b(line, digest_size=12).hexdigest()
                stats.identified += 1
                changed = True
            user = doc.get("user_id") or doc.get("anonymous_id")
            ts = parse_time_ms(doc.get("timestamp"))
            if isinstance(user, str) and user and ts is not None:
                account = doc.get("account_id")
                histories.note(user, ts, doc.get("type") in ACTIVITY_TYPES,
                               account if isinstance(account, str) else None)
            stats.events += 1
            yield (user.encode() if isinstance(user, str) and user else None), (orjson.dumps(doc) if changed else line)


@dataclass(frozen=True)
class Label:
    churned: bool
    churn_ms: int | None = None
    """When the user churned (None: unknown; see :mod:`streams.tools.backtest_scoring`)."""


@dataclass
class Labels:
    users: dict[str, Label]
    complete: bool
    """True when every labelled user is listed; False for the churners-only format (users seen in
    the events and not listed are non-churners)."""


_TRUE, _FALSE = {"1", "true", "yes", "y", "t"}, {"0", "false", "no", "n", "f", ""}


def _time(text: str, number: int) -> int | None:
    text = text.strip()
    if not text:
        return None
    ms = parse_time_ms(int(text)) if text.isdigit() else parse_time_ms(text)
    if ms is None:
        raise ValueError(f"labels line {number}: churn time {text!r} is not RFC 3339 with an offset or epoch ms")
    return ms


def read_labels(source: IO[str]) -> Labels:
    """Labels from CSV (see the module docstring); a header row is optional."""
    users: dict[str, Label] = {}
    complete: bool | None = None
    for number, row in enumerate(csv.reader(source), start=1):
        if not row or not row[0].strip() or row[0].startswith("#"):
            continue
        cells = [c.strip() for c in row]
        if number == 1 and cells[0].lower() in ("user_id", "user", "userid", "id"):
            complete = len(cells) >= 3 or (len(cells) == 2 and cells[1].lower() == "churned")
            continue
        if complete is None:
            complete = len(cells) >= 3
        if complete:
            if len(cells) < 2:
                raise ValueError(f"labels line {number}: expected user_id,churned,churn_time, got {row!r}")
            flag = cells[1].lower()
            if flag not in _TRUE and flag not in _FALSE:
                raise ValueError(f"labels line {number}: churned must be 1/0 or true/false, got {cells[1]!r}")
            churned = flag in _TRUE
            users[cells[0]] = Label(churned, _time(cells[2], number) if churned and len(cells) > 2 else None)
        else:
            if len(cells) < 2:
                raise ValueError(f"labels line {number}: expected user_id,churned_at, got {row!r}")
            users[cells[0]] = Label(True, _time(cells[1], number))
    return Labels(users, bool(complete))


@dataclass(frozen=True)
class Checkpoints:
    """When users are judged: per account (``by_account``) or, for everyone, on ``days``."""

    days: tuple[int, ...] = ()
    by_account: dict[str, int] = field(default_factory=dict)


def spread_days(first_day: int, last_day: int, count: int) -> tuple[int, ...]:
    """``count`` days evenly spread inside ``first_day..last_day`` (both ends excluded when the span
    allows: the first day knows nobody, the last has no future to judge)."""
    span = last_day - first_day
    return tuple(sorted({first_day + round(span * k / (count + 1)) for k in range(1, count + 1)}))


def read_checkpoints(source: IO[str], clock: DayClock) -> Checkpoints:
    """Per-account judgement days from CSV with ``account_id`` and ``last_day`` (or ``checkpoint``)."""
    reader = csv.DictReader(source)
    fields = [f.strip() for f in reader.fieldnames or ()]
    column = next((c for c in ("checkpoint", "last_day", "day") if c in fields), None)
    if "account_id" not in fields or column is None:
        raise ValueError(f"checkpoints: expected columns account_id and last_day (or checkpoint), got {fields}")
    out: dict[str, int] = {}
    for number, row in enumerate(reader, start=2):
        try:
            out[row["account_id"].strip()] = clock.parse(row[column].strip()[:10])
        except ValueError:
            raise ValueError(f"checkpoints line {number}: {column} {row[column]!r} is not a date") from None
    return Checkpoints(by_account=out)


def checkpoints_option(value: str, clock: DayClock, first_ms: int, last_ms: int) -> Checkpoints:
    """``--checkpoints``: a number of evenly spread days, or a CSV file of per-account days."""
    if value.isdigit():
        count = int(value)
        if count < 1:
            raise ValueError("--checkpoints: must be at least 1 (or a CSV file)")
        return Checkpoints(days=spread_days(clock.day(first_ms), clock.day(last_ms), count))
    path = Path(value)
    if not path.is_file():
        raise ValueError(f"--checkpoints: {value!r} is neither a number nor a file")
    with open(path, encoding="utf-8") as fh:
        return read_checkpoints(fh, clock)
