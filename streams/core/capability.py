"""The extension point: a capability (active users, sessions, engagement, ...) per partition.

The processor owns ingest, de-duplication, the watermark and the user records; capabilities
own what they derive. Each partition gets its own instance of every capability (created by
``Capability.for_partition``), so partition figures add up across workers without any
coordination. A capability keeps its per-user data in ``state.ext[<its slot>]`` and anything
partition-wide in itself, and must be able to rebuild the latter from user records alone
(:meth:`PartitionCapability.restore`), since that is all that survives a restart.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Iterable, Mapping, Protocol, Sequence

if TYPE_CHECKING:
    from prometheus_client.core import Metric

    from streams.core.contract import Event
    from streams.core.processor import PartitionContext
    from streams.core.state import UserState


class PartitionCapability:
    """One capability's logic and partition figures for one partition. Override what you use."""

    def __init__(self, ctx: "PartitionContext") -> None:
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


class Capability(Protocol):
    """A configured capability; makes one :class:`PartitionCapability` per assigned partition."""

    name: str

    def for_partition(self, ctx: "PartitionContext") -> PartitionCapability: ...

    def collect(self, parts: Sequence[PartitionCapability]) -> Iterable["Metric"]:
        """Prometheus families for this worker, from its owned partitions' instances (summed).

        Called at scrape time; labels must be bounded (configured names, segments, bands).
        """
        ...

    # Optional: ``install(app)`` adds agents and tables of the capability's own to the worker's
    # Faust app (called by ``app.build_app``), e.g. the per-account combiner of ``accounts``.
