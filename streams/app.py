"""The Faust application: one agent on the events topic, one state table, one timer.

Data flow (module by module): ``contract`` (decode, validate) -> ``routing`` (home partition)
-> ``processor`` (de-duplicate, watermark, apply) -> capabilities (``activity``, ``sessions``,
...) -> ``userstore`` (state table + changelog) and output topics (signals, sessions, metrics,
dead letters). ``metrics`` exposes it all on ``/metrics``.
"""

from __future__ import annotations

import logging
import os
from typing import Any, Sequence

import faust
from faust.sensors import Sensor
from prometheus_client import generate_latest

from . import tansu
from .capability import Capability
from .config import PRODUCER_LINGER_MS, PRODUCER_MAX_BATCH_BYTES, Settings
from .faustmetrics import WorkerCollector, WorkerSensor
from .metrics import build_registry
from .rollup import install_rollup
from .runtime import Runtime
from .userstore import UserStore

log = logging.getLogger(__name__)
STATE_TABLE = "users"


class FaustSink:
    """Outputs through Faust's producer: queued now, flushed by Faust before each offset commit."""

    def __init__(self, app: faust.App, settings: Settings) -> None:
        self._topics = {name: app.topic(name, key_type=bytes, value_type=bytes, key_serializer="raw",
                                        value_serializer="raw", partitions=settings.partitions)
                        for name in (settings.events_topic, *settings.output_topics)}

    def send(self, topic: str, key: bytes | None, value: bytes, partition: int | None = None) -> None:
        self._topics[topic].send_soon(key=key, value=value, partition=partition)


class FlushBeforeCommit(Sensor):
    """Writes dirty user records when Faust starts a commit, before it picks the offsets.

    Faust calls ``on_commit_initiated`` first, then collects acknowledged offsets, flushes the
    producer (our changelog writes included) and commits. So the changelog always holds every
    event the committed offsets cover: a crash can repeat events (skipped by offset and event id
    on replay) but never lose them.
    """

    def __init__(self, runtime: Runtime) -> None:
        super().__init__()
        self.runtime = runtime

    def on_commit_initiated(self, consumer: Any) -> Any:
        self.runtime.flush()


class EngagementApp(faust.App):
    """A Faust app whose consumer reads true end offsets from the embedded broker (local profile)."""

    engagement_settings: Settings

    def _new_consumer(self) -> Any:
        consumer = super()._new_consumer()
        if self.engagement_settings.local:
            tansu.install(consumer, self.engagement_settings.kafka_client_options())
        return consumer


def faust_options(settings: Settings) -> dict[str, Any]:
    """Faust configuration for these settings; the local profile shortens group timeouts for Tansu.

    Also creates the app's data directory (Faust creates only its last level).
    """
    datadir = os.path.join(settings.data_dir, settings.app_id)  # tables of one app only (RocksDB)
    os.makedirs(datadir, exist_ok=True)
    opts: dict[str, Any] = dict(
        broker=[f"kafka://{server.strip()}" for server in settings.bootstrap.split(",")],
        store=settings.store,
        datadir=datadir,
        topic_partitions=settings.partitions,
        topic_replication_factor=settings.replication_factor,
        topic_allow_declare=True,
        key_serializer="raw",
        value_serializer="raw",
        consumer_auto_offset_reset="earliest",
        broker_commit_interval=settings.commit_interval_s,
        web_enabled=True,
        web_bind=settings.web_host,
        web_host=settings.web_host,
        web_port=settings.web_port,
        web_in_thread=False,
        table_standby_replicas=0,
        producer_acks=-1,
        # Outputs (changelog flushes, signals, sessions) are queued, never awaited one by one;
        # batching them costs ~10 ms of latency and saves one produce request per message.
        producer_linger_ms=PRODUCER_LINGER_MS,
        producer_max_batch_size=PRODUCER_MAX_BATCH_BYTES,
    )
    if settings.local:
        opts.update(broker_session_timeout=2.0, broker_heartbeat_interval=0.5,
                    broker_rebalance_timeout=10.0)
    if settings.security_protocol != "PLAINTEXT":
        client = settings.kafka_client_options()
        if settings.sasl_mechanism:
            opts["broker_credentials"] = faust.SASLCredentials(
                username=settings.sasl_username, password=settings.sasl_password,
                mechanism=settings.sasl_mechanism, ssl_context=client.get("ssl_context"))
        elif "ssl_context" in client:
            opts["broker_credentials"] = client["ssl_context"]
    return opts


def changelog_sender(table: Any, settings: Settings) -> Any:
    """How flushed records reach the changelog.

    RocksDB needs Faust's own path (its callback records changelog offsets, so a restart reads
    only what is newer). The memory store recovers the whole changelog anyway, so it skips the
    per-message callback: a flush writes every dirty user at once, and that is the pipeline's
    largest producer load after the events themselves.
    """
    if settings.store.startswith("rocksdb"):
        return table.send_changelog
    topic = table.changelog_topic

    def send(partition: int, key: bytes, value: bytes) -> None:
        topic.send_soon(key=key, value=value, partition=partition, key_serializer="raw", value_serializer="raw")

    return send


def build_app(settings: Settings, capabilities: Sequence[Capability] | None = None) -> tuple[faust.App, Runtime]:
    """Create the worker's Faust app and the runtime it drives."""
    if not settings.bootstrap:
        raise ValueError("build_app needs settings.bootstrap")
    if capabilities is None:
        from .capabilities import default_capabilities

        capabilities = default_capabilities(settings)
    app = EngagementApp(settings.app_id, **faust_options(settings))
    app.engagement_settings = settings
    events = app.topic(settings.events_topic, key_type=bytes, value_type=bytes, key_serializer="raw",
                       value_serializer="raw", partitions=settings.partitions)
    table = app.Table(STATE_TABLE, partitions=settings.partitions, key_type=bytes, value_type=bytes)
    sink = FaustSink(app, settings)
    runtime = Runtime(settings, UserStore(table, settings.state_cache_users, changelog_sender(table, settings)),
                      sink, capabilities)
    app.sensors.add(FlushBeforeCommit(runtime))
    registry = build_registry(runtime)
    sensor = WorkerSensor()
    app.sensors.add(sensor)
    registry.register(WorkerCollector(app, settings, sensor))

    @app.agent(events, name="ingest")
    async def ingest(stream: faust.StreamT) -> None:
        handle = runtime.handle
        async for event in stream.events():
            message = event.message
            handle(message.partition, message.key, message.value, message.offset,
                   int(message.timestamp * 1000))

    @app.timer(settings.tick_interval_s)
    async def tick() -> None:
        if not app.tables.recovery.completed.is_set() or app.rebalancing:
            return
        assigned = [tp.partition for tp in app.consumer.assignment() if tp.topic == settings.events_topic]
        runtime.tick(assigned)

    @app.on_partitions_revoked.connect
    async def on_revoked(sender: Any, revoked: Any, **kwargs: Any) -> None:
        runtime.revoke(tp.partition for tp in revoked if tp.topic == settings.events_topic)

    @app.page("/metrics")
    async def metrics(web: Any, request: Any) -> Any:
        return web.bytes(generate_latest(registry), content_type="text/plain")

    @app.page("/figures")
    async def figures(web: Any, request: Any) -> Any:
        return web.json({"partitions": {p: proc.figures() for p, proc in runtime.processors.items()},
                         "outcomes": dict(runtime.outcomes),
                         "dead_letter_reasons": dict(runtime.dead_letter_reasons)})

    install_rollup(app, settings)
    for cap in capabilities:  # capabilities with agents of their own (e.g. the account combiner)
        install = getattr(cap, "install", None)
        if install is not None:
            install(app)
    app.engagement_runtime = runtime  # type: ignore[attr-defined]
    return app, runtime
