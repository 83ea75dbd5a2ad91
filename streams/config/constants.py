"""Constants every stage shares: units, outcomes, topics' roles, and the worker's tuning knobs.

Not settings: these are fixed by the pipeline's design (a setting a user may change lives in
:class:`streams.config.Settings` or a capability's section).
"""

from __future__ import annotations

import os
from pathlib import Path

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
    "empty", "too_large", "invalid_json", "schema", "bad_timestamp", "late", "ahead",
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

#: The longest a worker fires due timers for in one synchronous step (a day's close is sliced into
#: such steps, the event loop runs in between; ``streams.runtime.loop``).
LOOP_SLICE_S = 0.02
#: Dirty records written per step of a sliced pre-commit flush (about 10-20 ms of encoding).
FLUSH_SLICE_RECORDS = 2000
#: How often the worker's loop probe asks to wake, and the buckets (seconds) of how late it woke.
LOOP_PROBE_S = 0.005
LOOP_BLOCK_BUCKETS_S = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

#: Capabilities hear of watermark progress in steps of at least this much event time.
WATERMARK_NOTIFY_STEP_MS = 60_000
#: A partition tells the others where its source watermark is (a marker on the re-key topic) when
#: it moved at least this much since its last marker (and when it turns idle or busy, or closes).
MARKER_STEP_MS = 60_000
#: A source watermark follows what the last ``EVIDENCE_EVENTS`` events agree on: the lower of the
#: r-th largest event time and the r-th largest of the users' latest times, r = one in
#: ``EVIDENCE_SHARE`` (16 of 256), at least ``EVIDENCE_FLOOR`` once the window holds 8 users (2 from
#: 4). A few events with a wrong clock, or one device with a fast clock, move nothing.
EVIDENCE_EVENTS = 256
EVIDENCE_SHARE = 16
EVIDENCE_FLOOR = 3
#: Events of one user the window keeps (its newest): fewer than r, so one user cannot outvote the rest.
EVIDENCE_PER_USER = 8
#: Source clocks kept from the last flushes, so a restart judges from the one of the offset Kafka
#: resumes at (normally the newest; an older one when the commit after a flush did not happen).
SOURCE_SNAPSHOTS = 3

#: Key prefix reserved for pipeline records in the state table (never a user id).
RESERVED_KEY_PREFIX = b"\x00"

#: RocksDB (``store = "rocksdb://"``): write buffers per partition database, each
#: ``rocksdb_write_buffer_mb``; one fills while another is flushed to disk.
ROCKSDB_WRITE_BUFFERS = 2
#: RocksDB SST file size (MB); Faust's default is 64. Smaller files compact in smaller steps.
ROCKSDB_TARGET_FILE_MB = 16


#: The signal types on the signals topic and their schema (``schemas/signal.schema.json``).
SIGNAL_TYPES = ("lifecycle", "churn_risk", "engagement_score", "account_health")
SIGNAL_SCHEMA_FILE = "signal.schema.json"

__all__ = ['ENV_PREFIX', 'REPO_ROOT', 'SCHEMAS_DIR', 'EVENT_SCHEMA_FILE', 'ACTIVITY_TYPES', 'EVENT_TYPES', 'METRIC_PREFIX', 'OUTCOMES', 'DEAD_LETTER_REASONS', 'OUTPUT_ROLES', 'COMMIT_BUCKETS_S', 'MS_PER_SECOND', 'MS_PER_MINUTE', 'MS_PER_HOUR', 'MS_PER_DAY', 'PRODUCER_LINGER_MS', 'PRODUCER_MAX_BATCH_BYTES', 'OUTPUT_LINGER_MS', 'INGEST_BATCH_EVENTS', 'INGEST_BATCH_WAIT_S', 'GC_THRESHOLDS', 'COMMIT_EVERY_MESSAGES', 'OUTPUT_KEY_CACHE', 'LOOP_SLICE_S', 'FLUSH_SLICE_RECORDS', 'LOOP_PROBE_S', 'LOOP_BLOCK_BUCKETS_S', 'WATERMARK_NOTIFY_STEP_MS', 'MARKER_STEP_MS', 'EVIDENCE_EVENTS', 'EVIDENCE_SHARE', 'EVIDENCE_FLOOR', 'EVIDENCE_PER_USER', 'SOURCE_SNAPSHOTS', 'RESERVED_KEY_PREFIX', 'ROCKSDB_WRITE_BUFFERS', 'ROCKSDB_TARGET_FILE_MB', 'SIGNAL_TYPES', 'SIGNAL_SCHEMA_FILE']
