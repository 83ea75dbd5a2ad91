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
REPO_ROOT = Path(__file__).resolve().parent.parent
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

MS_PER_SECOND = 1000
MS_PER_MINUTE = 60 * MS_PER_SECOND
MS_PER_HOUR = 60 * MS_PER_MINUTE
MS_PER_DAY = 24 * MS_PER_HOUR

#: Key prefix reserved for pipeline records in the state table (never a user id).
RESERVED_KEY_PREFIX = b"\x00"


class ConfigError(ValueError):
    """A setting that cannot be used; the message names the setting."""


# --- sessions and usage (issue 4) ---------------------------------------------------------
#: Buffered session events are folded when the watermark passes them, rounded up to this step,
#: so a user streaming heartbeats costs one timer per step instead of one per event.
SESSION_FOLD_STEP_MS = 10 * MS_PER_SECOND
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
        names = [a.name for a in self.core_actions]
        if len(names) > MAX_CORE_ACTIONS:
            raise ConfigError(f"usage.core_actions: at most {MAX_CORE_ACTIONS}, got {len(names)}")
        if len(set(names)) != len(names) or not all(names):
            raise ConfigError(f"usage.core_actions: names must be distinct and non-empty, got {names}")
        for action in self.core_actions:
            if not action.weight >= 0:
                raise ConfigError(f"usage.core_actions.{action.name}.weight: must not be negative")
        if len(self.features) > MAX_FEATURES:
            raise ConfigError(f"usage.features: at most {MAX_FEATURES}, got {len(self.features)}")
        if len(set(self.features)) != len(self.features) or not all(self.features):
            raise ConfigError(f"usage.features: names must be distinct and non-empty, got {list(self.features)}")
        for rule in self.feature_rules:
            if not rule.event or bool(rule.property) == bool(rule.feature):
                raise ConfigError(f"usage.feature_rules: {rule!r} needs an event and exactly one of "
                                  "property or feature")
            if rule.feature and rule.feature not in self.features:
                raise ConfigError(f"usage.feature_rules: feature {rule.feature!r} is not in usage.features")
        if self.cadence not in CADENCE_DAYS:
            raise ConfigError(f"usage.cadence: must be one of {sorted(CADENCE_DAYS)}, got {self.cadence!r}")


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
    state_cache_users: int = 200_000
    """Decoded user records kept in memory beyond the dirty ones."""
    rekey_cache_users: int = 1_000_000
    """Home-partition look-ups remembered (key -> partition)."""

    # --- capabilities (one TOML section each) --------------------------------------------
    sessions: SessionsConfig = field(default_factory=SessionsConfig)
    usage: UsageConfig = field(default_factory=UsageConfig)

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
                self.partials_topic)

    def with_overrides(self, **changes: Any) -> "Settings":
        """A copy with some fields changed, checked like any other source."""
        return _check(dataclasses.replace(self, **changes))

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
                "rekey_cache_users")
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
