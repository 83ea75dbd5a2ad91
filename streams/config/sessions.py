"""``[sessions]``: how activity events are cut into sessions and timed."""

from __future__ import annotations

from dataclasses import dataclass

from streams.config.checks import ConfigError, _increasing, _positive
from streams.config.constants import MS_PER_SECOND

SESSION_SCHEMA_FILE = "session.schema.json"
#: Waiting session events are folded in one go when the oldest could close a session (its time
#: plus the timeout) or its day ends; a user with more waiting events than this is folded at once,
#: which bounds the record of a user streaming heartbeats.
SESSION_QUEUE_MAX = 64


@dataclass(frozen=True)
class SessionsConfig:
    """``[sessions]``: how a user's activity events are cut into sessions and timed."""

    inactivity_timeout_s: float = 1800.0
    """A gap between consecutive activity events longer than this starts a new session."""
    max_length_s: float = 86400.0
    """A session never spans more than this (first to last event); the next event starts a new one."""
    idle_threshold_s: float = 300.0
    """Active time counts each gap between consecutive events up to this much (idle is not use)."""
    heartbeat_event: str = "page_ping"
    """Heartbeat event name: counts as activity, never as the entry or exit event."""
    duration_buckets_s: tuple[float, ...] = (60.0, 300.0, 900.0, 1800.0, 3600.0, 7200.0, 14400.0,
                                             28800.0, 86400.0)
    active_time_buckets_s: tuple[float, ...] = (10.0, 60.0, 300.0, 900.0, 1800.0, 3600.0, 7200.0,
                                                14400.0)

    def __post_init__(self) -> None:
        _positive("sessions", inactivity_timeout_s=self.inactivity_timeout_s,
                  max_length_s=self.max_length_s, idle_threshold_s=self.idle_threshold_s)
        if not self.heartbeat_event:
            raise ConfigError("sessions.heartbeat_event: must not be empty")
        _increasing("sessions", "duration_buckets_s", self.duration_buckets_s)
        _increasing("sessions", "active_time_buckets_s", self.active_time_buckets_s)

    @property
    def timeout_ms(self) -> int:
        return int(self.inactivity_timeout_s * MS_PER_SECOND)

    @property
    def max_length_ms(self) -> int:
        return int(self.max_length_s * MS_PER_SECOND)

    @property
    def idle_ms(self) -> int:
        return int(self.idle_threshold_s * MS_PER_SECOND)

__all__ = ['SESSION_SCHEMA_FILE', 'SESSION_QUEUE_MAX', 'SessionsConfig']
