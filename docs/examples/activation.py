"""A capability written outside the package: activation ("time to value").

A user is *activated* the first time they do the product's activation event (by default
``report_created``). This capability remembers, per user, when that happened and how long after
the user's first event; it publishes one message per activation on a topic of its own, exposes
how many users each partition has activated to Prometheus, and answers for one user on
``/users/<id>``.

Run it with the pipeline (``docs/capabilities.md``)::

    # engagement.toml
    [pipeline]
    plugins = ["activation:Activation"]

    [activation]
    event = "report_created"

    PYTHONPATH=docs/examples streams worker --config engagement.toml
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable, Mapping, Sequence

from prometheus_client.core import GaugeMetricFamily, Metric

from streams.core.capability import Capability, PartitionCapability, PartitionContext
from streams.core.contract import Event
from streams.core.eventtime import iso_ms
from streams.core.state import UserState


@dataclass(frozen=True)
class ActivationConfig:
    """``[activation]``: what activates a user, and where activations are published."""

    event: str = "report_created"
    topic: str = "engagement-activations"

    def __post_init__(self) -> None:
        if not self.event:
            raise ValueError("event must not be empty")


class Activation(Capability):
    """One instance per worker: reads its settings, makes one partition instance per partition."""

    name = "activation"  # its TOML section and its name in /users/<id>
    slot = "act"  # its key in every user record: [activated at (ms), ms since the first event]

    def __init__(self, settings: Any, shared: Any) -> None:
        super().__init__(settings, shared)
        self.config = self.section(ActivationConfig)

    def for_partition(self, ctx: PartitionContext) -> "ActivationPartition":
        return ActivationPartition(ctx, self)

    def topics(self) -> Sequence[str]:
        return [self.config.topic]

    def collect(self, parts: Sequence[PartitionCapability]) -> Iterable[Metric]:
        activated = sum(p.activated for p in parts if isinstance(p, ActivationPartition))
        yield GaugeMetricFamily("engagement_activated_users", "Users who did the activation event "
                                "(owned partitions; sum over workers).", value=activated)


class ActivationPartition(PartitionCapability):
    """Activations of one partition's users."""

    def __init__(self, ctx: PartitionContext, shared: Activation) -> None:
        super().__init__(ctx)
        self.config = shared.config
        self.activated = 0  # rebuilt from the records on restore: it is all that survives a restart

    def restore(self, key: bytes, state: UserState) -> None:
        if Activation.slot in state.ext:
            self.activated += 1

    def on_event(self, key: bytes, state: UserState, event: Event) -> None:
        if event.name != self.config.event or Activation.slot in state.ext:
            return
        first = event.ts if state.is_new else min(state.first_ts, event.ts)
        state.ext[Activation.slot] = [event.ts, event.ts - first]  # written with the record at the next flush
        self.activated += 1
        self.ctx.emit(self.config.topic, key, {
            "id": f"activation|{event.user}",  # deterministic: a replay re-emits the same id
            "user_id": event.user, "account_id": event.account, "event_time": iso_ms(event.ts),
            "hours_to_activate": round((event.ts - first) / 3_600_000, 2)})

    def describe(self, key: bytes, state: UserState) -> Mapping[str, Any]:
        found = state.ext.get(Activation.slot)
        if found is None:
            return {"activated": False}
        return {"activated": True, "activated_at": iso_ms(found[0]), "hours_to_activate": round(found[1] / 3_600_000, 2)}
