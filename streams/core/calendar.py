"""Calendar days in a configured time zone, as small integers.

Day ``d`` is the local date ``1970-01-01 + d days``: integers make per-user bitmaps and day
arithmetic (``d - 29``) cheap, and the time zone decides only where midnight falls. In UTC a day
is 86 400 000 ms; in a zone with daylight saving a day can last 23 or 25 hours, which is why day
starts are computed by zoneinfo rather than by multiplying.
"""

from __future__ import annotations

from datetime import date, datetime, time
from zoneinfo import ZoneInfo

from streams.config import MS_PER_DAY

EPOCH_ORDINAL = date(1970, 1, 1).toordinal()
#: The shortest a calendar day can be in any zone (a DST spring-forward day).
MIN_DAY_MS = 23 * 3600 * 1000
UTC_NAMES = frozenset({"UTC", "Etc/UTC", "Z", "Etc/Zulu", "Zulu", "GMT", "Etc/GMT"})


class DayClock:
    """Maps event times (epoch ms) to local days and back."""

    def __init__(self, timezone: str = "UTC") -> None:
        self.timezone = timezone
        self.utc = timezone in UTC_NAMES
        self.tz = ZoneInfo(timezone)
        self._starts: dict[int, int] = {}
        # The last day looked up: events cluster in time, so most calls hit it.
        self._lo = self._hi = 0
        self._day = 0

    def day(self, ts_ms: int) -> int:
        """The local day containing ``ts_ms``."""
        if self.utc:
            return ts_ms // MS_PER_DAY
        if self._lo <= ts_ms < self._hi:
            return self._day
        day = datetime.fromtimestamp(ts_ms / 1000, self.tz).date().toordinal() - EPOCH_ORDINAL
        # Float rounding near midnight must not put an instant on the wrong side of a boundary.
        if ts_ms < self.start(day):
            day -= 1
        elif ts_ms >= self.start(day + 1):
            day += 1
        self._lo, self._hi, self._day = self.start(day), self.start(day + 1), day
        return day

    def start(self, day: int) -> int:
        """Epoch ms of the first instant of ``day`` (local midnight)."""
        if self.utc:
            return day * MS_PER_DAY
        start = self._starts.get(day)
        if start is None:
            local = datetime.combine(date.fromordinal(day + EPOCH_ORDINAL), time(), self.tz)
            start = self._starts[day] = int(local.timestamp() * 1000)
        return start

    def end(self, day: int) -> int:
        """Epoch ms just after ``day`` (the next local midnight)."""
        return self.start(day + 1)

    @staticmethod
    def label(day: int) -> str:
        """``YYYY-MM-DD`` of a day."""
        return date.fromordinal(day + EPOCH_ORDINAL).isoformat()

    @staticmethod
    def parse(label: str) -> int:
        return date.fromisoformat(label).toordinal() - EPOCH_ORDINAL

    def days_covering(self, span_ms: int) -> int:
        """How many day boundaries a span of ``span_ms`` can cross, however short the days."""
        return -(-span_ms // MIN_DAY_MS)
