"""The Faust application: one agent on the events topic, one state table, one timer.

Data flow (module by module): ``contract`` (decode, validate) -> ``routing`` (home partition)
-> ``processor`` (de-duplicate, watermark, apply) -> capabilities (``activity``, ``sessions``,
...) -> ``userstore`` (state table + changelog) and output topics (signals, sessions, metrics,
dead letters). ``metrics`` exposes it all on ``/metrics``.
"""

from __future__ import annotations

import logging
import os
from typing import Any, Callable, Sequence

import faust
from prometheus_client import generate_latest

from streams.capabilities.registry import build_capabilities
from streams.config import (
    COMMIT_EVERY_MESSAGES,
    INGEST_BATCH_EVENTS,
    INGEST_BATCH_WAIT_S,
    LOOP_SLICE_S,
    PRODUCER_LINGER_MS,
    PRODUCER_MAX_BATCH_BYTES,
    Settings,
)
from streams.core.capability import Capability
from streams.core.userstore import UserStore
from streams.runtime import tansu
from streams.runtime.agents import install_agents, when_revoked
from streams.runtime.loop import BatchSlices, LoopWatch, drain, flush_sliced
from streams.runtime.metrics import build_registry
from streams.runtime.monitor import WorkerCollector, WorkerMonitor
from streams.runtime.outputs import OutputBuffer
from streams.runtime.partitions import Runtime
from streams.runtime.web import install_user_page

log = logging.getLogger(__name__)
STATE_TABLE = "users"


class EngagementApp(faust.App):
    """A Faust app whose producer flush includes the pipeline's batched outputs, and whose
    consumer reads true end offsets from the embedded broker (local profile)."""

    engagement_settings: Settings
    engagement_outputs: OutputBuffer
    engagement_runtime: Runtime

    def _new_consumer(self) -> Any:
        consumer = super()._new_consumer()
        if self.engagement_settings.local:
            tansu.install(consumer, self.engagement_settings.kafka_client_options())
        commit = consumer.force_commit  # type: ignore[attr-defined]

        async def force_commit(*args: Any, **kwargs: Any) -> Any:
            # Most dirty records are written in slices first (the event loop runs in between);
            # the synchronous flush in the monitor's commit hook then writes only the rest, just
            # before the offsets are picked, so the changelog still covers every committed event.
            await flush_sliced(self.engagement_runtime)
            return await commit(*args, **kwargs)

        consumer.force_commit = force_commit  # type: ignore[attr-defined]
        return consumer

    def _new_producer(self) -> Any:
        producer = super()._new_producer()
        self.engagement_outputs.wrap_flush(producer)
        return producer


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
        # Faust also commits every 10,000 messages by default; each commit writes every user
        # active since the last one, so commits follow the interval alone.
        broker_commit_every=COMMIT_EVERY_MESSAGES,
        # A poll hands over at most a batch of records: unbounded, aiokafka decoded a whole fetch
        # (thousands of records) in one step of the loop, 70-90 ms of CPU in the bare agent too.
        broker_max_poll_records=INGEST_BATCH_EVENTS,
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


def changelog_sender(table: Any, outputs: OutputBuffer, settings: Settings) -> Callable[[int, bytes, bytes], None]:
    """How flushed records reach the state changelog: batched with the other outputs.

    RocksDB keeps, per partition, the newest changelog offset its data covers (so a restart reads
    only what is newer); Faust's own ``send_changelog`` records it per message, here it is
    recorded per acknowledged batch. The memory store recovers the whole changelog anyway.
    """
    topic = table.changelog_topic.get_topic_name()
    if settings.store.startswith("rocksdb"):
        outputs.on_written(topic, table.data.set_persisted_offset)

    def send(partition: int, key: bytes, value: bytes) -> None:
        outputs.send(topic, key, value, partition)

    return send


def build_app(settings: Settings, capabilities: Sequence[Capability] | None = None) -> tuple[EngagementApp, Runtime]:
    """Create the worker's Faust app and the runtime it drives."""
    if not settings.bootstrap:
        raise ValueError("build_app needs settings.bootstrap")
    if capabilities is None:
        capabilities = build_capabilities(settings)
    app = EngagementApp(settings.app_id, **faust_options(settings))
    app.engagement_settings = settings
    # Faust's private accessor: the running aiokafka producer (the outputs bypass Faust's per-record path).
    outputs = app.engagement_outputs = OutputBuffer(lambda: app.producer._ensure_producer())  # type: ignore[attr-defined]
    events = app.topic(settings.events_topic, key_type=bytes, value_type=bytes, key_serializer="raw",
                       value_serializer="raw", partitions=settings.partitions)
    table = app.Table(STATE_TABLE, partitions=settings.partitions, key_type=bytes, value_type=bytes,
                      options=settings.rocksdb_options() if settings.store.startswith("rocksdb") else None)
    runtime = Runtime(settings, UserStore(table, settings.state_cache_users, changelog_sender(table, outputs, settings)),
                      outputs, capabilities, slice_s=LOOP_SLICE_S)
    app.engagement_runtime = runtime
    # The runtime flushes dirty records when Faust starts a commit (see WorkerMonitor).
    monitor = WorkerMonitor(before_commit=lambda: runtime.flush())
    app.monitor = monitor
    registry = build_registry(runtime)
    registry.register(WorkerCollector(app, settings, monitor, outputs.sent))
    watch = app.engagement_loop = LoopWatch()  # type: ignore[attr-defined]
    registry.register(watch)

    @app.agent(events, name="ingest")
    async def ingest(stream: faust.StreamT) -> None:
        # Events are handled in batches: the pipeline's per-event code runs on data still in the
        # CPU caches, which interleaving it with Faust's machinery event by event is not (it
        # ran half as fast). Faust acks a batch's events after the loop body: the commit, and the
        # state flush before it, never claim an event that was not handled.
        # Timers an event makes due (a day's close) are fired in slices before the next event is
        # handled (``streams.runtime.loop.drain``): same order as all at once, but the loop runs.
        handle = runtime.handle
        # (Stream has take_events, StreamT does not declare it)
        batches = stream.take_events(INGEST_BATCH_EVENTS, within=INGEST_BATCH_WAIT_S)  # type: ignore[attr-defined]
        slices = BatchSlices()  # a long batch lets the loop run too (a sparse product's events are costly)
        async for batch in batches:
            for event in batch:
                if runtime.busy or slices.due():
                    await slices.pause(runtime)
                message = event.message
                handle(message.partition, message.key, message.value, message.offset,
                       int(message.timestamp * 1000))
            if runtime.busy:
                await drain(runtime)

    @app.timer(settings.tick_interval_s)
    async def tick() -> None:
        if not app.tables.recovery.completed.is_set() or app.rebalancing:  # type: ignore[attr-defined]
            return
        assigned = [tp.partition for tp in app.consumer.assignment() if tp.topic == settings.events_topic]
        runtime.tick(assigned)
        if runtime.busy:
            await drain(runtime)

    @app.task
    async def probe_loop() -> None:
        await watch.run()

    when_revoked(app, settings.events_topic, runtime.revoke)

    @app.page("/metrics")
    async def metrics(web: Any, request: Any) -> Any:
        return web.bytes(generate_latest(registry), content_type="text/plain")

    @app.page("/figures")
    async def figures(web: Any, request: Any) -> Any:
        return web.json({"partitions": {p: proc.figures() for p, proc in runtime.processors.items()},
                         "outcomes": dict(runtime.outcomes),
                         "dead_letter_reasons": dict(runtime.dead_letter_reasons)})

    install_user_page(app, table, runtime)
    install_agents(app, settings, capabilities)
    return app, runtime
