"""The top-level settings: connection, topics, ingest bounds, memory bounds, and one section per capability."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from streams.config.accounts import AccountsConfig
from streams.config.activity import ActivityConfig
from streams.config.constants import MS_PER_SECOND, ROCKSDB_TARGET_FILE_MB, ROCKSDB_WRITE_BUFFERS
from streams.config.engagement import EngagementConfig
from streams.config.risk import RiskConfig
from streams.config.sessions import SessionsConfig
from streams.config.usage import UsageConfig


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
    connect_timeout_s: float = 5.0
    """Commands give up on an unreachable broker after this long, with one line naming the cause."""

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
    """A partition's watermark = the event time its recent users agree on - this. Older events are
    late (dead-lettered as ``late``); event ids applied within it are remembered (de-duplication)."""
    idle_partition_s: float = 30.0
    """A partition that read nothing for this long (wall clock) is idle: the others stop waiting for
    it, and its watermark advances with the wall clock (unless its input was closed)."""
    max_partition_skew_s: float = 21600.0
    """A partition stops reading new events while its watermark runs more than this ahead of the
    slowest busy partition's (flow control: it bounds what waits in memory, not what is computed).
    With the allowed lateness it is also how far ahead of the watermark capabilities see events."""
    max_ahead_s: float = 2592000.0
    """Events stamped more than this (30 days) ahead of what their partition's recent users agree
    on are dead-lettered as ``ahead`` (closer ones are kept, and applied at their time)."""
    max_future_s: float = 86400.0
    """Events stamped further than this ahead of their arrival (Kafka timestamp) are ``bad_timestamp``."""
    min_timestamp_ms: int = 946684800000
    """Events before this (2000-01-01) are ``bad_timestamp``; set it lower to replay older data."""
    max_clock_skew_s: float = 86400.0
    """When ``sent_at`` is within this of arrival, the gap is client clock skew and is corrected."""
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
    capabilities: tuple[str, ...] = ()
    """Built-in capabilities to run, by name (``activity``, ``sessions``, ``usage``, ``engagement``,
    ``risk``, ``accounts``); empty: all of them. They always run in the registry's order."""
    plugins: tuple[str, ...] = ()
    """Capabilities from outside the package, as ``module:Class``, run after the built-in ones
    (see docs/capabilities.md). Their settings are TOML sections named after them."""
    plugin_sections: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Internal: the TOML sections of plug-in capabilities, read by each capability
    (:meth:`~streams.core.capability.Capability.section`)."""
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
    def max_partition_skew_ms(self) -> int:
        return int(self.max_partition_skew_s * MS_PER_SECOND)

    @property
    def lookahead_ms(self) -> int:
        """How far ahead of a partition's watermark an event may reach its capabilities (events
        further ahead wait in their user's record): the allowed lateness plus the partition skew."""
        return self.allowed_lateness_ms + self.max_partition_skew_ms

    @property
    def max_ahead_ms(self) -> int:
        return int(self.max_ahead_s * MS_PER_SECOND)

    @property
    def max_future_ms(self) -> int:
        return int(self.max_future_s * MS_PER_SECOND)

    @property
    def max_clock_skew_ms(self) -> int:
        return int(self.max_clock_skew_s * MS_PER_SECOND)

    @property
    def output_topics(self) -> tuple[str, ...]:
        return (self.dead_letter_topic, self.signals_topic, self.sessions_topic, self.metrics_topic,
                self.partials_topic, self.account_shares_topic, self.rekey_topic)

    @property
    def rekey_topic(self) -> str:
        """Internal: events forwarded to their user's partition, and the partitions' watermark
        markers (see :mod:`streams.core.rekey`). Named after the app, like Faust's changelogs."""
        return f"{self.app_id}-rekey"

    @property
    def account_shares_topic(self) -> str:
        """Internal: per-partition account shares and seat counts, keyed by account, combined by
        the account agent (see :mod:`streams.capabilities.accounts`). Named after the app, like Faust's changelogs."""
        return f"{self.app_id}-account-shares"

    def with_overrides(self, **changes: Any) -> "Settings":
        """A copy with some fields changed, checked like any other source."""
        from streams.config.loader import check_settings  # the loader imports this module

        return check_settings(dataclasses.replace(self, **changes))

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

