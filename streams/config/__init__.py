"""Every setting and constant of the pipeline, in one place.

Settings come from three sources, later ones winning: the defaults below, a TOML file
(``--config`` or ``ENGAGEMENT_CONFIG``), environment variables ``ENGAGEMENT_<FIELD>``, and
command-line flags. A value that does not fit its field stops the command with a
:class:`ConfigError` naming the setting, never a traceback.
"""

from __future__ import annotations

import dataclasses
import os
import tomllib
import typing
from dataclasses import dataclass, field, fields  # noqa: F401  (field: capability sections)
from pathlib import Path
from typing import Any, Mapping

ENV_PREFIX = "ENGAGEMENT_"
REPO_ROOT = Path(__file__).resolve().parent.parent.parent
SCHEMAS_DIR = Path(os.environ.get(f"{ENV_PREFIX}SCHEMAS_DIR", REPO_ROOT / "schemas"))
EVENT_SCHEMA_FILE = "event.schema.json"

#: Event types that make a user active (identify and group only describe the user).
ACTIVITY_TYPES = frozenset({"track", "page", "screen"})
EVENT_TYPES = ("track", "page", "screen", "identify", "group")

#: Prefix of every Prometheus metric the pipeline exposes.
METRIC_PREFIX = "engagement"

#: Outcome of every consumed message: each ends in exactly one of these.
OUTCOMES = ("applied", "duplicate", "late", "dead_letter", "rekeyed")
#: Machine-readable reasons carried by dead-letter records.
DEAD_LETTER_REASONS = (
    "empty", "too_large", "invalid_json", "schema", "bad_timestamp", "late",
)
#: What a record the worker sends is for (label of ``engagement_output_messages_total``).
OUTPUT_ROLES = ("signals", "sessions", "metrics", "partials", "dead_letters", "rekeyed", "changelog")
#: Upper bounds (seconds) of the commit-duration histogram: a commit flushes state and outputs first.
COMMIT_BUCKETS_S = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

MS_PER_SECOND = 1000
MS_PER_MINUTE = 60 * MS_PER_SECOND
MS_PER_HOUR = 60 * MS_PER_MINUTE
MS_PER_DAY = 24 * MS_PER_HOUR

#: Producer batching for the worker's outputs (Faust's default linger is 0: one request per message).
PRODUCER_LINGER_MS = 10
PRODUCER_MAX_BATCH_BYTES = 256 * 1024
#: Outputs queued by the processors are batched and handed to the producer this often (and at
#: every commit): the latency a signal or session record may wait in the worker.
OUTPUT_LINGER_MS = 50
#: The ingest agent handles events in batches of up to this many, waiting at most this long for a
#: batch to fill (the latency an event may gain when traffic is light).
INGEST_BATCH_EVENTS = 500
INGEST_BATCH_WAIT_S = 0.05
#: The worker's garbage-collector thresholds (Python's default: 700, 10, 10); see ``worker.faust_worker``.
GC_THRESHOLDS = (20_000, 10, 10)
#: Faust's count-based commit (``broker_commit_every``, default 10,000 messages), set out of reach:
#: commits (and the state flushes before them) follow ``commit_interval_s``.
COMMIT_EVERY_MESSAGES = 1 << 40
#: Keys whose output partition is remembered, per output topic (hot users and accounts).
OUTPUT_KEY_CACHE = 100_000

#: Capabilities hear of watermark progress in steps of at least this much event time.
WATERMARK_NOTIFY_STEP_MS = 60_000

#: Key prefix reserved for pipeline records in the state table (never a user id).
RESERVED_KEY_PREFIX = b"\x00"

#: RocksDB (``store = "rocksdb://"``): write buffers per partition database, each
#: ``rocksdb_write_buffer_mb``; one fills while another is flushed to disk.
ROCKSDB_WRITE_BUFFERS = 2
#: RocksDB SST file size (MB); Faust's default is 64. Smaller files compact in smaller steps.
ROCKSDB_TARGET_FILE_MB = 16


class ConfigError(ValueError):
    """A setting that cannot be used; the message names the setting."""


# --- sessions and usage (issue 4) ---------------------------------------------------------
SESSION_SCHEMA_FILE = "session.schema.json"
#: Waiting session events are folded in one go when the oldest could close a session (its time
#: plus the timeout) or its day ends; a user with more waiting events than this is folded at once,
#: which bounds the record of a user streaming heartbeats.
SESSION_QUEUE_MAX = 64
#: Distinct (event name, property values) classifications remembered (``streams.classify``); the
#: cache starts over when full, so event properties of unbounded cardinality cannot grow it.
CLASSIFY_CACHE_MAX = 4096
#: Days of per-user daily counts kept for rolling windows (the longest window is 30 days).
USAGE_RETAIN_DAYS = 30
#: Rolling windows, in days, of the usage figures (1 = the day itself).
CORE_ACTION_WINDOWS = (1, 7, 28)
FEATURE_WINDOWS = (1, 28)
ACTIVE_WINDOWS = (1, 7, 28, 30)
VISIT_WINDOWS = (7, 30)
#: Expected cadence of visits -> days between visits a user is expected to keep.
CADENCE_DAYS = {"daily": 1, "weekly": 7}
#: Limits that keep the per-user bit masks and Prometheus label sets small.
MAX_CORE_ACTIONS = 16
MAX_FEATURES = 32


def _positive(where: str, **values: float) -> None:
    for key, value in values.items():
        if not value > 0:
            raise ConfigError(f"{where}.{key}: must be greater than 0, got {value!r}")


def _distinct_names(where: str, names: list[str], limit: int) -> None:
    """At most ``limit`` names, distinct and non-empty (they become labels and figure keys)."""
    if len(names) > limit:
        raise ConfigError(f"{where}: at most {limit}, got {len(names)}")
    if len(set(names)) != len(names) or not all(names):
        raise ConfigError(f"{where}: names must be distinct and non-empty, got {names}")


def _increasing(where: str, key: str, values: tuple[float, ...]) -> None:
    if not values or any(b <= a for a, b in zip(values, values[1:])) or values[0] <= 0:
        raise ConfigError(f"{where}.{key}: must be positive and strictly increasing, got {list(values)!r}")


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


@dataclass(frozen=True)
class CoreAction:
    """A core action: activity events named ``event`` (default: ``name``) whose properties match
    ``where`` (property -> value, or a list of accepted values), worth ``weight`` each."""

    name: str
    event: str = ""
    where: dict[str, Any] = field(default_factory=dict)
    weight: float = 1.0

    @property
    def event_name(self) -> str:
        return self.event or self.name


@dataclass(frozen=True)
class FeatureRule:
    """Activity events named ``event`` use ``feature``, or the feature named by ``properties[property]``."""

    event: str
    property: str = ""
    feature: str = ""


@dataclass(frozen=True)
class UsageConfig:
    """``[usage]``: core actions, the feature mapping and the expected visit cadence."""

    core_actions: tuple[CoreAction, ...] = (
        CoreAction("report_created"), CoreAction("dashboard_shared"), CoreAction("invite_sent"),
        CoreAction("export_completed"))
    features: tuple[str, ...] = ("reports", "dashboards", "alerts", "exports", "api", "integrations")
    """The features reported on (Prometheus labels): mapped values outside this list are ignored."""
    feature_rules: tuple[FeatureRule, ...] = (FeatureRule("feature_used", property="feature"),)
    cadence: str = "weekly"
    """How often an engaged user is expected to visit: ``daily`` or ``weekly``."""

    def __post_init__(self) -> None:
        _distinct_names("usage.core_actions", [a.name for a in self.core_actions], MAX_CORE_ACTIONS)
        for action in self.core_actions:
            if not action.weight >= 0:
                raise ConfigError(f"usage.core_actions.{action.name}.weight: must not be negative")
        _distinct_names("usage.features", list(self.features), MAX_FEATURES)
        for rule in self.feature_rules:
            if not rule.event or bool(rule.property) == bool(rule.feature):
                raise ConfigError(f"usage.feature_rules: {rule!r} needs an event and exactly one of "
                                  "property or feature")
            if rule.feature and rule.feature not in self.features:
                raise ConfigError(f"usage.feature_rules: feature {rule.feature!r} is not in usage.features")
        if self.cadence not in CADENCE_DAYS:
            raise ConfigError(f"usage.cadence: must be one of {sorted(CADENCE_DAYS)}, got {self.cadence!r}")


# --- active users, stickiness and lifecycle (issue 3) -----------------------------------------
#: Rolling windows of the active-user counts, in days (DAU is the day itself).
WAU_DAYS = 7
MAU_DAYS = 30
#: Lifecycle states of a user (see README.md#active-users-stickiness-and-lifecycle), in the order they are reported.
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


# --- engagement score, churn risk and account health (issue 5) ------------------------------
#: A user's usage is judged on the recent week against the 28 days (four weeks) before it.
RECENT_DAYS = 7
BASELINE_WEEKS = 4
BASELINE_DAYS = RECENT_DAYS * BASELINE_WEEKS
#: Score measures, risk bands, account health bands and signal types, in report order.
SCORE_MEASURES = ("recency", "frequency", "depth", "core_actions", "trend")
RISK_BANDS = ("low", "medium", "high")
HEALTH_BANDS = ("red", "yellow", "green")
SIGNAL_TYPES = ("lifecycle", "churn_risk", "engagement_score", "account_health")
SIGNAL_SCHEMA_FILE = "signal.schema.json"
#: Reason codes of churn-risk and account-health signals (README.md#engagement-score-churn-risk-and-account-health).
RISK_REASONS = ("inactive_days", "activity_drop", "core_action_drop", "active_time_drop", "escalations",
                "negative_event", "low_license_utilization", "low_engagement")
#: Peer groups smaller than this (in one partition, on one day) are judged against all the
#: partition's users instead: a percentile among three peers says little.
MIN_PEERS = 5


def _share(where: str, **values: float) -> None:
    for key, value in values.items():
        if not 0.0 <= value <= 1.0:
            raise ConfigError(f"{where}.{key}: must be between 0 and 1, got {value!r}")


@dataclass(frozen=True)
class CadencePreset:
    """What a fully engaged user does in a week, for one kind of product (daily or weekly use)."""

    gap_days: float
    """Days between active days that are normal (a user silent for longer starts losing recency)."""
    active_days: float
    """Active days per week that earn full frequency marks."""
    visits: float
    """Sessions per week that earn full frequency marks."""
    active_minutes: float
    """Active minutes per week (idle excluded, see README.md#sessions-active-time-core-actions-and-feature-usage) that earn full depth marks."""
    core_actions: float
    """Core actions per week (weighted) that earn full core-action marks."""
    inactive_span_days: float
    """Days beyond the normal gap over which recency falls from full marks to none."""
    window_days: int = RECENT_DAYS
    """Frequency, depth and core actions are weekly means over this many days (7 or 14): a weekly
    user's score should not swing with every visit that falls on one side of a 7-day window."""

    def __post_init__(self) -> None:
        _positive("engagement cadence", gap_days=self.gap_days, active_days=self.active_days,
                  visits=self.visits, active_minutes=self.active_minutes, core_actions=self.core_actions,
                  inactive_span_days=self.inactive_span_days)
        if self.window_days not in (RECENT_DAYS, 2 * RECENT_DAYS):
            raise ConfigError(f"engagement cadence window_days: must be 7 or 14, got {self.window_days!r}")


@dataclass(frozen=True)
class EngagementConfig:
    """``[engagement]``: the 0-100 engagement score (weights, cadence, peers, thresholds)."""

    cadence: str = ""
    """``daily`` or ``weekly`` preset below; empty: the product's ``[usage].cadence``."""
    daily: CadencePreset = CadencePreset(gap_days=1.0, active_days=5.0, visits=7.0, active_minutes=120.0,
                                         core_actions=10.0, inactive_span_days=14.0)
    weekly: CadencePreset = CadencePreset(gap_days=7.0, active_days=1.0, visits=1.5, active_minutes=20.0,
                                          core_actions=2.0, inactive_span_days=28.0, window_days=14)
    weight_recency: float = 0.25
    weight_frequency: float = 0.20
    weight_depth: float = 0.15
    weight_core_actions: float = 0.25
    weight_trend: float = 0.15
    peer_weight: float = 0.3
    """Share of each measure judged against peers (percentile), the rest against cadence and history."""
    peer_segment: str = "plan"
    """Name of an ``[activity]`` segment dimension whose value groups peers; empty: all users."""
    breadth_share: float = 0.3
    """Share of the core-action marks given for breadth (distinct core actions in 28 days)."""
    thresholds: tuple[float, ...] = (25.0, 75.0)
    """Score levels: crossing one by more than half the hysteresis is an ``engagement_score`` signal
    (up at threshold + hysteresis / 2, down below threshold - hysteresis / 2)."""
    hysteresis: float = 10.0
    horizon_days: int = 60
    """Users are scored daily until this many days after their last activity (then they rest)."""
    settle_s: float = 0.0
    """A day is scored once the watermark passes its end plus this; 0: the session timeout plus a
    minute, so sessions of the day have closed and their active time is in."""

    def __post_init__(self) -> None:
        if self.cadence not in ("",) + tuple(CADENCE_DAYS):
            raise ConfigError(f"engagement.cadence: must be empty or one of {sorted(CADENCE_DAYS)}, "
                              f"got {self.cadence!r}")
        weights = self.weights
        if any(w < 0 for w in weights.values()) or abs(sum(weights.values()) - 1.0) > 1e-6:
            raise ConfigError(f"engagement.weight_*: must be non-negative and add up to 1, got {weights}")
        _share("engagement", peer_weight=self.peer_weight, breadth_share=self.breadth_share)
        _increasing("engagement", "thresholds", self.thresholds)
        if self.thresholds and self.thresholds[-1] >= 100:
            raise ConfigError("engagement.thresholds: must be below 100")
        if not 0 <= self.hysteresis < 50:
            raise ConfigError(f"engagement.hysteresis: must be between 0 and 50, got {self.hysteresis!r}")
        if not 7 <= self.horizon_days <= 365:
            raise ConfigError(f"engagement.horizon_days: must be between 7 and 365, got {self.horizon_days!r}")
        if self.settle_s < 0:
            raise ConfigError(f"engagement.settle_s: must not be negative, got {self.settle_s!r}")

    @property
    def weights(self) -> dict[str, float]:
        return {"recency": self.weight_recency, "frequency": self.weight_frequency,
                "depth": self.weight_depth, "core_actions": self.weight_core_actions,
                "trend": self.weight_trend}

    def preset(self, usage_cadence: str) -> CadencePreset:
        return self.daily if (self.cadence or usage_cadence) == "daily" else self.weekly


@dataclass(frozen=True)
class RiskConfig:
    """``[risk]``: churn-risk points per reason, band thresholds with hysteresis, onboarding."""

    medium: float = 30.0
    high: float = 55.0
    """A user enters a band when the risk points reach its threshold ..."""
    medium_exit: float = 20.0
    high_exit: float = 45.0
    """... and leaves it only when they fall below its exit threshold (hysteresis: no flapping)."""
    drop_points: float = 60.0
    """Points of a full usage drop (activity_drop, active_time_drop, core_action_drop together)."""
    drop_z_start: float = 0.25
    drop_z_full: float = 1.5
    """The drop is measured in baseline spreads: the recent week is ``z`` week-to-week spreads of the
    user's own baseline below its weekly mean. Points start at ``drop_z_start`` and are full at
    ``drop_z_full``."""
    drop_spread_floor: float = 0.45
    """The spread used is at least this share of the weekly mean (four weeks estimate it roughly)."""
    drop_weight_activity: float = 0.4
    drop_weight_active_time: float = 0.2
    drop_weight_core_actions: float = 0.4
    habit_active_days: float = 2.5
    """Usage drops are judged only for users with a habit: at least this many active days per
    baseline week. Weekly users are judged by inactivity, which is robust for them."""
    min_active_minutes: float = 20.0
    min_core_actions: float = 2.0
    """A measure joins the drop only with at least this much per baseline week."""
    drop_anchor_days: int = 2
    """The recent week ends at most this many days after the last active day: a user who stops
    entirely is judged by ``inactive_days`` (vacations are sudden, churn is gradual)."""
    inactive_medium_days: float = 5.0
    inactive_medium_gaps: float = 2.5
    inactive_high_days: float = 28.0
    inactive_high_gaps: float = 4.0
    """Silence reaches medium after max(days, gaps x the user's normal gap between active days),
    and grows linearly to high at max(high days, high gaps x gap)."""
    negative_events: tuple[str, ...] = ("cancel_intent", "downgrade_clicked")
    negative_points: float = 60.0
    negative_days: int = 14
    escalation_events: tuple[str, ...] = ("support_ticket_opened",)
    escalation_points: float = 30.0
    escalation_max_points: float = 40.0
    escalation_days: int = 28
    onboarding_days: int = 14
    """Users seen for at most this many days are onboarding: no drop rules, and medium at most
    (a cancel or downgrade intent aside)."""
    onboarding_inactive_days: float = 7.0
    """Users without a baseline yet (about three weeks) have no normal gap: their silence counts
    from this many days (and grows to high at ``inactive_high_days``)."""
    calm_days: int = 7
    """A band is left downwards only after this many daily assessments in a row below its exit
    threshold: a user who dips to medium every few days stays medium instead of flapping."""

    def __post_init__(self) -> None:
        _positive("risk", medium=self.medium, high=self.high, drop_points=self.drop_points,
                  drop_z_full=self.drop_z_full, habit_active_days=self.habit_active_days,
                  inactive_medium_days=self.inactive_medium_days, inactive_high_days=self.inactive_high_days,
                  negative_days=self.negative_days, escalation_days=self.escalation_days,
                  onboarding_inactive_days=self.onboarding_inactive_days)
        if not 0 <= self.medium_exit <= self.medium < self.high or not self.medium_exit <= self.high_exit <= self.high:
            raise ConfigError("risk: thresholds must satisfy 0 <= medium_exit <= medium < high and "
                              f"medium_exit <= high_exit <= high, got {self.medium_exit}, {self.medium}, "
                              f"{self.high_exit}, {self.high}")
        if not 0 <= self.drop_z_start < self.drop_z_full:
            raise ConfigError(f"risk.drop_z_start: must be >= 0 and below drop_z_full, got {self.drop_z_start!r}")
        if self.inactive_high_days <= self.inactive_medium_days:
            raise ConfigError("risk.inactive_high_days: must be greater than inactive_medium_days")
        if not 0 <= self.drop_anchor_days <= RECENT_DAYS:
            raise ConfigError(f"risk.drop_anchor_days: must be between 0 and {RECENT_DAYS}")
        if self.onboarding_days < 0 or self.calm_days < 1:
            raise ConfigError(f"risk: onboarding_days must be >= 0 and calm_days >= 1, got "
                              f"{self.onboarding_days!r} and {self.calm_days!r}")

    @property
    def drop_weights(self) -> tuple[float, float, float]:
        """(activity, active time, core actions)."""
        return (self.drop_weight_activity, self.drop_weight_active_time, self.drop_weight_core_actions)


@dataclass(frozen=True)
class AccountsConfig:
    """``[accounts]``: seats, license utilization and the account health score and bands."""

    seats_trait: str = "seats"
    """Group trait holding the seats an account pays for (the newest group event wins)."""
    active_days: int = 30
    """An active seat is an account user active within this many days."""
    utilization_healthy: float = 0.5
    """License utilization below this is reason ``low_license_utilization`` (Totango's healthy line)."""
    utilization_target: float = 0.8
    """Utilization that earns full utilization marks."""
    weight_utilization: float = 0.3
    weight_engagement: float = 0.35
    weight_trend: float = 0.2
    weight_escalations: float = 0.15
    escalations_per_seat: float = 0.5
    """Escalations per active seat in 28 days that leave no escalation marks."""
    green: float = 70.0
    red: float = 40.0
    """Health at or above ``green`` is green, below ``red`` red, yellow between ..."""
    hysteresis: float = 5.0
    """... and a band is left only when health moves this far past its boundary."""
    onboarding_days: int = 14
    """A new account's band is signalled from its first day plus this many days (a replay or a
    launch makes every account new at once; their first days say little)."""
    trend_days: int = 7
    trend_step: float = 5.0
    """The trend arrow compares health with ``trend_days`` earlier: up / down beyond this step."""

    def __post_init__(self) -> None:
        if not self.seats_trait:
            raise ConfigError("accounts.seats_trait: must not be empty")
        if not 1 <= self.active_days <= BASELINE_DAYS + RECENT_DAYS:
            raise ConfigError(f"accounts.active_days: must be between 1 and {BASELINE_DAYS + RECENT_DAYS}")
        _share("accounts", utilization_healthy=self.utilization_healthy)
        _positive("accounts", utilization_target=self.utilization_target,
                  escalations_per_seat=self.escalations_per_seat)
        weights = (self.weight_utilization, self.weight_engagement, self.weight_trend, self.weight_escalations)
        if any(w < 0 for w in weights) or abs(sum(weights) - 1.0) > 1e-6:
            raise ConfigError(f"accounts.weight_*: must be non-negative and add up to 1, got {list(weights)}")
        if not 0 < self.red < self.green < 100:
            raise ConfigError(f"accounts: need 0 < red < green < 100, got red={self.red}, green={self.green}")
        if not 0 <= self.hysteresis < (self.green - self.red) / 2:
            raise ConfigError("accounts.hysteresis: must be non-negative and below half the yellow band")
        if self.trend_days < 1 or self.onboarding_days < 0:
            raise ConfigError(f"accounts: trend_days must be >= 1 and onboarding_days >= 0, got "
                              f"{self.trend_days!r} and {self.onboarding_days!r}")


@dataclass(frozen=True)
class Settings:
    """How one worker (or tool) connects, names its topics and judges events."""

    # --- connection -------------------------------------------------------------------
    bootstrap: str = ""
    """Kafka bootstrap servers (host:port[,host:port]); empty means the embedded broker."""
    local: bool = False
    """Local profile: short group timeouts and the Tansu end-offset fix (set for the embedded broker)."""
    security_protocol: str = "PLAINTEXT"
    sasl_mechanism: str = ""
    sasl_username: str = ""
    sasl_password: str = ""
    ssl_cafile: str = ""

    # --- application ------------------------------------------------------------------
    app_id: str = "engagement"
    partitions: int = 4
    replication_factor: int = 1
    store: str = "memory://"
    """Faust table store: ``memory://`` or ``rocksdb://`` (needs the ``rocksdb`` extra)."""
    data_dir: str = "./data"
    web_host: str = "127.0.0.1"
    web_port: int = 6066
    commit_interval_s: float = 10.0
    """Offsets are committed (and state flushed before them) this often. Each flush writes every
    user touched since the last one, so a longer interval means fewer changelog writes for busy
    users and a longer replay after a crash (Kafka Streams defaults to 30 s, Faust to 2.8 s)."""
    tick_interval_s: float = 1.0
    """How often idle partitions are swept and gauges refreshed."""

    # --- topics -----------------------------------------------------------------------
    events_topic: str = "events"
    dead_letter_topic: str = "events-dead-letter"
    signals_topic: str = "engagement-signals"
    sessions_topic: str = "engagement-sessions"
    metrics_topic: str = "engagement-metrics"
    partials_topic: str = "engagement-metric-partials"
    """Internal: per-partition snapshot partials, keyed by kind and period, combined by the rollup."""

    # --- ingest -----------------------------------------------------------------------
    max_event_bytes: int = 32 * 1024
    dead_letter_payload_bytes: int = 4 * 1024
    allowed_lateness_s: float = 600.0
    """Watermark = newest event time seen - this. Older events are late (dead-lettered as ``late``)."""
    idle_partition_s: float = 30.0
    """A partition with no events for this long advances its watermark by wall-clock time."""
    max_future_s: float = 86400.0
    """Events stamped further than this ahead of their arrival are ``bad_timestamp``."""
    min_timestamp_ms: int = 946684800000
    """Events before this (2000-01-01) are ``bad_timestamp``."""
    max_clock_skew_s: float = 86400.0
    """When ``sent_at`` is within this of arrival, the gap is client clock skew and is corrected."""
    dedupe_window: int = 16
    """Event-id fingerprints kept per user; a retry within the user's last N events is a duplicate."""
    state_cache_users: int = 20_000
    """Decoded user records kept in memory beyond the dirty ones (least recently used dropped first).
    A decoded record costs ~0.9 KB with the activity capability alone, ~2.1 KB with all six, against
    ~110-180 bytes encoded, so this bounds memory by users, not the user base. Users active within
    the last ``state_cache_users`` distinct users (and every user touched since the last flush) are
    never decoded again; a cold user costs one decode (a few µs)."""
    rekey_cache_users: int = 50_000
    """Home-partition look-ups remembered (key -> partition), in two generations of this many keys
    each: recently seen users are never hashed again; cold users are (murmur2, ~1 µs)."""
    rocksdb_block_cache_mb: int = 32
    """With ``store = "rocksdb://"``: RocksDB block cache per partition database (MB). Faust's default
    is 2 GB per partition; the records of the users the decoded cache misses are what it holds."""
    rocksdb_write_buffer_mb: int = 16
    """With ``store = "rocksdb://"``: size of one write buffer (memtable) per partition database (MB);
    at most ``ROCKSDB_WRITE_BUFFERS`` of them (Faust's default: three of 64 MB)."""

    # --- capabilities (one TOML section each) --------------------------------------------
    sessions: SessionsConfig = field(default_factory=SessionsConfig)
    usage: UsageConfig = field(default_factory=UsageConfig)
    activity: ActivityConfig = field(default_factory=ActivityConfig)
    engagement: EngagementConfig = field(default_factory=EngagementConfig)
    risk: RiskConfig = field(default_factory=RiskConfig)
    accounts: AccountsConfig = field(default_factory=AccountsConfig)

    @property
    def allowed_lateness_ms(self) -> int:
        return int(self.allowed_lateness_s * MS_PER_SECOND)

    @property
    def idle_partition_ms(self) -> int:
        return int(self.idle_partition_s * MS_PER_SECOND)

    @property
    def max_future_ms(self) -> int:
        return int(self.max_future_s * MS_PER_SECOND)

    @property
    def max_clock_skew_ms(self) -> int:
        return int(self.max_clock_skew_s * MS_PER_SECOND)

    @property
    def output_topics(self) -> tuple[str, ...]:
        return (self.dead_letter_topic, self.signals_topic, self.sessions_topic, self.metrics_topic,
                self.partials_topic, self.account_shares_topic)

    @property
    def account_shares_topic(self) -> str:
        """Internal: per-partition account shares and seat counts, keyed by account, combined by
        the account agent (see :mod:`streams.accounts`). Named after the app, like Faust's changelogs."""
        return f"{self.app_id}-account-shares"

    def with_overrides(self, **changes: Any) -> "Settings":
        """A copy with some fields changed, checked like any other source."""
        return _check(dataclasses.replace(self, **changes))

    def rocksdb_options(self) -> dict[str, Any]:
        """Faust ``RocksDBOptions`` keyword arguments (``app.Table(..., options=...)``) for each
        partition's database: bounded caches instead of Faust's defaults (2 GB block cache and
        three 64 MB write buffers per partition), so a worker's RSS stays below the memory store's.
        A fresh dict each call: Faust's RocksDB store pops keys from the one it is given."""
        mb = 1 << 20
        return {"block_cache_size": self.rocksdb_block_cache_mb * mb,
                "block_cache_compressed_size": self.rocksdb_block_cache_mb * mb,
                "write_buffer_size": self.rocksdb_write_buffer_mb * mb,
                "max_write_buffer_number": ROCKSDB_WRITE_BUFFERS,
                "target_file_size_base": ROCKSDB_TARGET_FILE_MB * mb}

    def kafka_client_options(self) -> dict[str, Any]:
        """aiokafka keyword arguments for connecting to the configured broker (TLS / SASL)."""
        opts: dict[str, Any] = {"bootstrap_servers": self.bootstrap}
        if self.security_protocol != "PLAINTEXT":
            opts["security_protocol"] = self.security_protocol
            if self.security_protocol in ("SSL", "SASL_SSL"):
                from aiokafka.helpers import create_ssl_context

                opts["ssl_context"] = create_ssl_context(cafile=self.ssl_cafile or None)
            if self.sasl_mechanism:
                opts["sasl_mechanism"] = self.sasl_mechanism
                opts["sasl_plain_username"] = self.sasl_username
                opts["sasl_plain_password"] = self.sasl_password
        return opts


def _coerce(name: str, value: Any, kind: Any) -> Any:
    """Turn a TOML / env / flag value into the field's type, or say which setting is wrong."""
    origin = typing.get_origin(kind)
    try:
        if dataclasses.is_dataclass(kind):
            if isinstance(value, kind):
                return value
            if not isinstance(value, dict):
                raise ValueError
            return _load_section(kind, value, name)
        if origin in (tuple, list):
            items = value.split(",") if isinstance(value, str) else value
            if not isinstance(items, (list, tuple)):
                raise ValueError
            inner = (typing.get_args(kind) or (str,))[0]
            return tuple(_coerce(f"{name}[{i}]", item.strip() if isinstance(item, str) else item, inner)
                         for i, item in enumerate(items) if item != "")
        if origin is dict or kind is dict:
            if not isinstance(value, dict):
                raise ValueError
            return dict(value)
        if kind is bool:
            if isinstance(value, bool):
                return value
            text = str(value).strip().lower()
            if text in ("1", "true", "yes", "on"):
                return True
            if text in ("0", "false", "no", "off", ""):
                return False
            raise ValueError
        if kind is int:
            if isinstance(value, bool) or isinstance(value, float):
                raise ValueError
            return int(str(value).replace("_", ""))
        if kind is float:
            if isinstance(value, bool):
                raise ValueError
            return float(value)
        if kind is Any:
            return value
        if isinstance(value, (dict, list)):
            raise ValueError
        return str(value)
    except ConfigError:
        raise  # a nested section's own message names the exact key
    except (TypeError, ValueError):
        label = getattr(kind, "__name__", str(kind))
        raise ConfigError(f"{name}: expected {label}, got {value!r}") from None


def _load_section(cls: Any, section: Mapping[str, Any], where: str) -> Any:
    """Build a (nested) settings dataclass from a TOML table, rejecting unknown keys by name."""
    kinds = typing.get_type_hints(cls)
    values = {}
    for key, value in section.items():
        if key not in kinds:
            raise ConfigError(f"{where}.{key}: unknown setting")
        values[key] = _coerce(f"{where}.{key}", value, kinds[key])
    try:
        return cls(**values)
    except ConfigError:
        raise
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{where}: {exc}") from None


def _check(settings: Settings) -> Settings:
    """Reject values the pipeline cannot run with, naming the setting."""
    positive = ("partitions", "replication_factor", "max_event_bytes", "dead_letter_payload_bytes",
                "dedupe_window", "commit_interval_s", "tick_interval_s", "state_cache_users",
                "rekey_cache_users", "rocksdb_block_cache_mb", "rocksdb_write_buffer_mb")
    for name in positive:
        if getattr(settings, name) <= 0:
            raise ConfigError(f"{name}: must be greater than 0, got {getattr(settings, name)!r}")
    for name in ("allowed_lateness_s", "idle_partition_s", "max_future_s", "max_clock_skew_s"):
        if getattr(settings, name) < 0:
            raise ConfigError(f"{name}: must not be negative, got {getattr(settings, name)!r}")
    if not (0 < settings.web_port < 65536):
        raise ConfigError(f"web_port: must be a TCP port (1-65535), got {settings.web_port}")
    if not settings.store.startswith(("memory://", "rocksdb://")):
        raise ConfigError(f"store: must be memory:// or rocksdb://, got {settings.store!r}")
    if settings.security_protocol not in ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"):
        raise ConfigError(f"security_protocol: unknown protocol {settings.security_protocol!r}")
    names = [settings.events_topic, *settings.output_topics]
    if len(set(names)) != len(names) or not all(names):
        raise ConfigError(f"topics: topic names must be distinct and non-empty, got {names}")
    return settings


def load_settings(
    config_file: str | os.PathLike[str] | None = None,
    env: Mapping[str, str] | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> Settings:
    """Merge defaults, a TOML file, ``ENGAGEMENT_*`` variables and flag overrides, then check them.

    The TOML file has a ``[pipeline]`` table for the top-level settings and one table per
    capability (``[activity]``, ``[sessions]``, ...). Environment variables set top-level
    settings only (``ENGAGEMENT_PARTITIONS=8``).
    """
    env = os.environ if env is None else env
    kinds = typing.get_type_hints(Settings)
    sections = {f.name for f in fields(Settings) if dataclasses.is_dataclass(kinds[f.name])}
    values: dict[str, Any] = {}

    path = config_file or env.get(f"{ENV_PREFIX}CONFIG")
    if path:
        try:
            with open(path, "rb") as fh:
                doc = tomllib.load(fh)
        except FileNotFoundError:
            raise ConfigError(f"config: file not found: {path}") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"config: {path} is not valid TOML: {exc}") from None
        for table, content in doc.items():
            if not isinstance(content, dict):
                raise ConfigError(f"config: [{table}] in {path} must be a table")
            if table == "pipeline":
                for key, value in content.items():
                    if key not in kinds or key in sections:
                        raise ConfigError(f"[pipeline].{key}: unknown setting (in {path})")
                    values[key] = _coerce(f"[pipeline].{key}", value, kinds[key])
            elif table in sections:
                values[table] = _load_section(kinds[table], content, f"[{table}]")
            else:
                raise ConfigError(f"[{table}]: unknown section (in {path})")

    for f in fields(Settings):
        var = f"{ENV_PREFIX}{f.name.upper()}"
        if var in env and f.name not in sections:
            values[f.name] = _coerce(var, env[var], kinds[f.name])

    for key, value in (overrides or {}).items():
        if value is None:
            continue
        if key not in kinds:
            raise ConfigError(f"unknown setting {key!r}")
        values[key] = _coerce(f"--{key.replace('_', '-')}", value, kinds[key])

    return _check(Settings(**values))


__all__ = ["Settings", "ConfigError", "load_settings"]


def settings_to_toml(settings: Settings) -> str:
    """The settings as a TOML document that :func:`load_settings` reads back to equal settings.

    Used to hand a complete configuration (capability sections included) to worker processes.
    """
    import tomli_w

    kinds = typing.get_type_hints(Settings)
    doc: dict[str, Any] = {"pipeline": {}}
    for f in fields(Settings):
        value = getattr(settings, f.name)
        if dataclasses.is_dataclass(kinds[f.name]):
            doc[f.name] = dataclasses.asdict(value)
        else:
            doc["pipeline"][f.name] = list(value) if isinstance(value, tuple) else value
    return tomli_w.dumps(doc)
