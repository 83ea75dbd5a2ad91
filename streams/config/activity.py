"""``[activity]``: calendar days, dormancy and segment dimensions of the active-user figures."""

from __future__ import annotations

from dataclasses import dataclass

from streams.config.checks import ConfigError

#: Rolling windows of the active-user counts, in days (DAU is the day itself).
WAU_DAYS = 7
MAU_DAYS = 30
#: Lifecycle states of a user (see docs/active-users.md#active-users-stickiness-and-lifecycle), in the order they are reported.
LIFECYCLE_STATES = ("new", "returning", "resurrected", "dormant")
SEGMENT_SOURCES = ("traits", "context")
#: Segment label of values beyond a dimension's cap, and of users with no value yet.
SEGMENT_OTHER = "other"
SEGMENT_UNKNOWN = "unknown"
MAX_SEGMENT_DIMENSIONS = 8
MAX_SEGMENT_VALUES = 200
SEGMENT_VALUE_MAX_CHARS = 64


@dataclass(frozen=True)
class SegmentDimension:
    """A user dimension every activity figure is also broken down by.

    The value comes from identify ``traits`` or from any event's ``context`` (``key``, dotted for
    nested objects; default: ``name``). A user's value on a day is the one carried by their
    latest event (by event time) up to the end of that day.
    """

    name: str
    source: str = "traits"
    key: str = ""
    values: tuple[str, ...] = ()
    """Values reported as themselves, identically in every partition; any other value is ``other``.
    Empty: each partition admits the first ``max_values`` values it sees (the rest are ``other``)."""
    max_values: int = 20

    @property
    def path(self) -> tuple[str, ...]:
        return tuple((self.key or self.name).split("."))


@dataclass(frozen=True)
class ActivityConfig:
    """``[activity]``: calendar days, dormancy and segments of the active-user figures."""

    timezone: str = "UTC"
    """IANA time zone whose midnight ends a day (``Europe/Berlin``); DST days last 23 or 25 hours."""
    dormant_days: int = 14
    """A user with no activity for this many whole days becomes dormant (at the end of the last one)."""
    segments: tuple[SegmentDimension, ...] = (
        SegmentDimension("plan", "traits"), SegmentDimension("platform", "context"),
        SegmentDimension("country", "context"))
    provisional_interval_s: float = 60.0
    """Wall-clock seconds between provisional snapshots of the open days (0: final snapshots only)."""
    start_date: str = ""
    """Optional ``YYYY-MM-DD``: every partition reports each day from this date, even before its
    first event, so those days can become final with few users. Empty: from its first activity."""

    def __post_init__(self) -> None:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            ZoneInfo(self.timezone)
        except (ZoneInfoNotFoundError, ValueError):
            raise ConfigError(f"activity.timezone: unknown time zone {self.timezone!r}") from None
        if not 1 <= self.dormant_days <= 365:
            raise ConfigError(f"activity.dormant_days: must be between 1 and 365, got {self.dormant_days!r}")
        if self.provisional_interval_s < 0:
            raise ConfigError(f"activity.provisional_interval_s: must not be negative, got "
                              f"{self.provisional_interval_s!r}")
        if self.start_date:
            import datetime as _dt

            try:
                _dt.date.fromisoformat(self.start_date)
            except ValueError:
                raise ConfigError(f"activity.start_date: must be YYYY-MM-DD, got {self.start_date!r}") from None
        names = [d.name for d in self.segments]
        if len(names) > MAX_SEGMENT_DIMENSIONS:
            raise ConfigError(f"activity.segments: at most {MAX_SEGMENT_DIMENSIONS}, got {len(names)}")
        if len(set(names)) != len(names) or not all(names):
            raise ConfigError(f"activity.segments: names must be distinct and non-empty, got {names}")
        for dim in self.segments:
            where = f"activity.segments.{dim.name}"
            if dim.source not in SEGMENT_SOURCES:
                raise ConfigError(f"{where}.source: must be one of {list(SEGMENT_SOURCES)}, got {dim.source!r}")
            if not 1 <= dim.max_values <= MAX_SEGMENT_VALUES:
                raise ConfigError(f"{where}.max_values: must be between 1 and {MAX_SEGMENT_VALUES}, "
                                  f"got {dim.max_values!r}")
            if len(dim.values) > MAX_SEGMENT_VALUES or len(set(dim.values)) != len(dim.values):
                raise ConfigError(f"{where}.values: at most {MAX_SEGMENT_VALUES} distinct values")
            if any(v in (SEGMENT_OTHER, SEGMENT_UNKNOWN) or not v or len(v) > SEGMENT_VALUE_MAX_CHARS
                   for v in dim.values):
                raise ConfigError(f"{where}.values: values must be 1-{SEGMENT_VALUE_MAX_CHARS} characters "
                                  f"and not {SEGMENT_OTHER!r} or {SEGMENT_UNKNOWN!r}")

__all__ = ['WAU_DAYS', 'MAU_DAYS', 'LIFECYCLE_STATES', 'SEGMENT_SOURCES', 'SEGMENT_OTHER', 'SEGMENT_UNKNOWN', 'MAX_SEGMENT_DIMENSIONS', 'MAX_SEGMENT_VALUES', 'SEGMENT_VALUE_MAX_CHARS', 'SegmentDimension', 'ActivityConfig']
