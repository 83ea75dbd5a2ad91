"""The plug-in contract: what a capability is, what it receives, and what it must keep true.

A capability (active users, sessions, engagement, ...) turns accepted events into figures,
signals and per-user facts. The processor owns ingest, de-duplication, the watermark and the
user records; capabilities own what they derive. The whole contract is this module:

* :class:`Capability`: the configured capability, one per worker. It declares its ``name`` (also
  the name of its TOML section), the ``slot`` it keeps in every user record (``state.ext[slot]``,
  checked unique at start-up), the capabilities it ``requires``, and optionally the snapshot
  ``finishers`` and ``combiners`` it brings. It makes one :class:`PartitionCapability` per
  assigned partition and reports Prometheus families at scrape time.
* :class:`PartitionCapability`: the hooks called for one partition (``restore``, ``on_event``,
  ``on_timer``, ``on_notice``, ``on_watermark``, ``figures``, ``describe``).
* :class:`PartitionContext`: everything a partition capability may use: the partition's
  settings, watermark, records, timers, outputs and its peers. Nothing else of the processor.
* :class:`Combiner`: a keyed fold over an internal topic (e.g. the per-account combination of
  partition shares), pure here; the runtime runs it as a Faust agent with a changelog-backed
  table. This is how a capability adds an agent of its own without importing Faust.

Each partition gets its own instance of every capability, so partition figures add up across
workers without coordination. Partition-wide figures must be rebuildable from the user records
alone (``restore``), since that is all that survives a restart.

Adding a capability: one module with a :class:`Capability` subclass (plus a config section if it
has settings) and one line in :mod:`streams.capabilities.registry`; a capability written outside
the package is named in the ``plugins`` setting instead (``docs/capabilities.md``).
"""

from __future__ import annotations

from typing import (
    TYPE_CHECKING,
    Any,
    Callable,
    ClassVar,
    Iterable,
    Mapping,
    MutableMapping,
    Protocol,
    Sequence,
    TypeVar,
)

import orjson

from streams.config import ConfigError, Settings
from streams.config.loader import load_section

if TYPE_CHECKING:
    from prometheus_client.core import Metric

    from streams.core.contract import Event
    from streams.core.eventtime import Watermark
    from streams.core.state import UserState
    from streams.core.timers import Timers
    from streams.core.userstore import UserStore

#: Derives a snapshot kind's ratios (or anything non-additive) from its summed partition figures.
Finisher = Callable[[dict[str, Any]], dict[str, Any]]
#: What a combiner publishes: ``(topic, key, JSON document)``.
Output = tuple[str, bytes | None, Any]
_Part = TypeVar("_Part", bound="PartitionCapability")
_T = TypeVar("_T")


class Sink(Protocol):
    """Where outputs go (the worker's batched producer; a list in unit tests)."""

    def send(self, topic: str, key: bytes | None, value: bytes, partition: int | None = None) -> None: ...


class PartitionContext:
    """What one capability may use in one partition.

    Each capability of a partition has its own context (it knows which capability it serves, so
    timers come back to their owner and notices skip their sender).
    """

    __slots__ = ("partition", "settings", "watermark", "_store", "_sink", "_timers", "_index", "_peers")

    def __init__(self, partition: int, settings: Settings, store: "UserStore", sink: Sink,
                 watermark: "Watermark", timers: "Timers", index: int,
                 peers: Sequence["PartitionCapability"]) -> None:
        self.partition = partition
        self.settings = settings
        self.watermark = watermark
        self._store = store
        self._sink = sink
        self._timers = timers
        self._index = index
        self._peers = peers

    # --- outputs ---------------------------------------------------------------------------
    def emit(self, topic: str, key: bytes | str | None, value: Any) -> None:
        """Publish an output record (a dict is JSON-encoded); sent before the next offset commit."""
        if isinstance(key, str):
            key = key.encode()
        self._sink.send(topic, key, value if isinstance(value, bytes) else orjson.dumps(value))

    def send_to(self, topic: str, partition: int, value: Any) -> None:
        """Publish an unkeyed record to one partition of ``topic`` (e.g. a mark every partition
        of an internal topic must see after this partition's records)."""
        self._sink.send(topic, None, value if isinstance(value, bytes) else orjson.dumps(value), partition)

    def publish_partial(self, kind: str, period: str, figures: dict[str, Any], final: bool) -> None:
        """Send this partition's additive share of a snapshot (e.g. kind "activity_day", period
        "2026-11-01") to the partials topic; the rollup sums the shares of all partitions and
        publishes the combined snapshot on the metrics topic (final once every partition is).
        """
        self._sink.send(self.settings.partials_topic, f"{kind}|{period}".encode(), orjson.dumps(
            {"kind": kind, "period": period, "partition": self.partition, "final": final,
             "watermark": self.watermark.value, "figures": figures}))

    # --- records ---------------------------------------------------------------------------
    def user(self, key: bytes) -> "UserState | None":
        """A record of this partition (a user's, or a reserved partition record), or None."""
        return self._store.get(self.partition, key)

    def mark_dirty(self, key: bytes, state: "UserState") -> None:
        """Record that a timer or notice changed a record, so the next flush writes it."""
        self._store.mark_dirty(self.partition, key, state)

    # --- time ------------------------------------------------------------------------------
    def schedule(self, due_ms: int, key: bytes, tag: str) -> None:
        """Call this capability's ``on_timer`` once the watermark passes ``due_ms``.

        Timers live in memory and are rebuilt by ``restore`` after a restart, so a capability
        checks in ``on_timer`` that the record still warrants it (stale timers are normal).
        """
        self._timers.schedule(due_ms, key, self._index, tag)

    @property
    def pending_timers(self) -> int:
        """Timers of the partition not yet due (every capability's)."""
        return len(self._timers)

    # --- other capabilities ----------------------------------------------------------------
    def notify(self, key: bytes, state: "UserState", kind: str, payload: Mapping[str, Any]) -> None:
        """Tell every other capability of this partition a fact about a user (``on_notice``).

        Delivered synchronously, in capability order, while the caller's event or timer runs;
        notices are not stored, so a receiver keeps in its own slot what it must remember.
        """
        for index, peer in enumerate(self._peers):
            if index != self._index:
                peer.on_notice(key, state, kind, payload)

    def peer(self, kind: type[_Part]) -> _Part | None:
        """This partition's instance of another capability (None when it does not run), to use
        its public helpers (e.g. the activity capability's segment labels). Available once every
        capability of the partition exists, i.e. from ``restore`` / ``on_event`` on."""
        for cap in self._peers:
            if isinstance(cap, kind):
                return cap
        return None


class PartitionCapability:
    """One capability's logic and partition figures for one partition. Override what you use."""

    def __init__(self, ctx: PartitionContext) -> None:
        self.ctx = ctx

    def restore(self, key: bytes, state: "UserState") -> None:
        """Account for a recovered user record (figures, timers) when the partition is assigned."""

    def on_event(self, key: bytes, state: "UserState", event: "Event") -> None:
        """Apply an accepted, de-duplicated, on-time event to the user's record and the figures.

        Called before the core fields (``events``, ``max_ts``) are updated, so ``state.is_new``
        still says whether this is the user's first event.
        """

    def on_timer(self, key: bytes, state: "UserState", tag: str, due_ms: int) -> None:
        """A timer this capability scheduled is due (the watermark passed ``due_ms``)."""

    def on_notice(self, key: bytes, state: "UserState", kind: str, payload: Mapping[str, Any]) -> None:
        """Another capability of this partition announced a fact about a user (``ctx.notify``),
        e.g. sessions announce ``session_closed``; lets capabilities build on each other's results
        without reading each other's record slots.
        """

    def on_watermark(self, watermark_ms: int) -> None:
        """The partition watermark advanced (close days, emit final snapshots, ...)."""

    def figures(self) -> Mapping[str, Any]:
        """Current partition figures for gauges and snapshots (additive across partitions)."""
        return {}

    def describe(self, key: bytes, state: "UserState") -> Mapping[str, Any]:
        """What this capability knows of one user now, for ``/users/<id>`` (plain JSON values)."""
        return {}


class Combiner(Protocol):
    """A keyed fold over an internal topic, run by the runtime as an agent with its own table.

    ``apply`` gets the table as a mapping of key -> JSON value (reads and writes go to the
    changelog-backed table) and returns what to publish. It must be idempotent: after a crash
    the agent sees messages again.
    """

    name: str
    """Agent name (unique in the worker)."""
    source: str
    """The topic it consumes (partitioned like the pipeline's topics)."""
    table: str
    """Name of its table."""

    def apply(self, entries: MutableMapping[bytes, Any], key: bytes | None, message: Mapping[str, Any],
              partition: int, wall_ms: float) -> Iterable[Output]: ...

    def revoke(self, partition: int) -> None:
        """The partition of ``source`` was handed to another worker: forget what is kept of it."""
        ...


class Shared:
    """Objects several capabilities of a worker share (one event classifier, one signal counter),
    made by the first capability that asks."""

    def __init__(self) -> None:
        self._objects: dict[type, Any] = {}

    def get(self, kind: type[_T], make: Callable[[], _T]) -> _T:
        if kind not in self._objects:
            self._objects[kind] = make()
        return self._objects[kind]


class Capability:
    """A configured capability: one instance per worker, one :class:`PartitionCapability` per
    assigned partition. Subclasses are constructed as ``Cls(settings, shared)``."""

    name: ClassVar[str] = ""
    """Unique name; also the TOML section of its settings."""
    slot: ClassVar[str | None] = None
    """Key of its per-user data in ``state.ext`` (short: it is stored in every record), or None."""
    requires: ClassVar[tuple[str, ...]] = ()
    """Capabilities that must run before this one (e.g. risk builds on engagement's notices)."""

    def __init__(self, settings: Settings, shared: Shared) -> None:
        self.settings = settings
        self.shared = shared

    def section(self, kind: type[_T]) -> _T:
        """A plug-in's own settings: its TOML section ``[<name>]`` read into ``kind`` (a frozen
        dataclass whose fields have defaults); a bad or unknown key is named like any setting.
        Built-in capabilities have typed sections on :class:`~streams.config.Settings` instead."""
        return load_section(kind, self.settings.plugin_sections.get(self.name, {}), f"[{self.name}]")

    def for_partition(self, ctx: PartitionContext) -> PartitionCapability:
        raise NotImplementedError

    def collect(self, parts: Sequence[PartitionCapability]) -> Iterable["Metric"]:
        """Prometheus families for this worker, from its owned partitions' instances (summed).

        Called at scrape time; labels must be bounded (configured names, segments, bands).
        """
        return ()

    def finishers(self) -> Mapping[str, Finisher]:
        """Snapshot kinds this capability publishes partials of, with what derives their ratios
        once the partitions' shares are summed (kinds without one are published as summed)."""
        return {}

    def combiners(self) -> Sequence[Combiner]:
        """Agents of its own (keyed folds over internal topics), run by the runtime."""
        return ()

    def topics(self) -> Sequence[str]:
        """Topics of its own it writes to, created with the pipeline's topics."""
        return ()

    def settle_ms(self) -> int:
        """How long (event time) after a day's end this capability's outputs for that day can still
        change (e.g. a session ending on it closes a timeout later). Closing a finished stream
        (``streams close``) moves the watermark past the last day's end by the largest of these."""
        return 0


def check_capabilities(capabilities: Sequence[Capability]) -> None:
    """Reject a set of capabilities that cannot run together, naming the problem: duplicate names
    or record slots, or a capability whose requirements do not run before it."""
    names: dict[str, int] = {}
    slots: dict[str, str] = {}
    for index, cap in enumerate(capabilities):
        if not cap.name:
            raise ConfigError(f"capabilities: {type(cap).__name__} has no name")
        if cap.name in names:
            raise ConfigError(f"capabilities: {cap.name!r} is configured twice")
        names[cap.name] = index
        if cap.slot is not None:
            owner = slots.get(cap.slot)
            if owner is not None:
                raise ConfigError(f"capabilities: {cap.name!r} and {owner!r} both use record slot {cap.slot!r}")
            slots[cap.slot] = cap.name
        for needed in cap.requires:
            if names.get(needed, index) >= index:
                raise ConfigError(f"capabilities: {cap.name!r} requires {needed!r} to run before it")
