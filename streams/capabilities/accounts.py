"""Account health (B2B): seats, active seats, license utilization, a 0-100 health score and a
red / yellow / green band with a trend arrow; a signal on each band change.

An account's users live in different partitions (users are partitioned by user id), so account
figures are combined in two steps, like the snapshot rollup:

1. Per partition (:class:`AccountsPartition`): each day's scoring of the partition's users (the
   engagement capability's ``engagement_evaluated`` notices) adds up, per account, into a *share*:
   users scored, users active within ``active_days``, their score sum, recent and baseline active
   days (the trend), escalations. Group events' seat counts are kept per account and day too (the
   day's newest in event time). When the day is scored in the partition, every share is sent to
   the internal topic ``<app_id>-account-shares`` keyed by account, with the day's seat count
   (``"seats": [event time, n]``; no message: no user of the account scored in the partition that
   day and no group event). Until then shares and seats wait in a reserved record of the
   partition's state table, written with the user records at every commit, so a restart resumes
   them where the user records are (one message per account and day, instead of one per group
   event).
2. Each partition, once it has finished a day, sends a *day mark* ``{"kind": "done", "partition":
   p, "day": d}`` to every partition of that topic, after that day's shares: so in every partition
   of the topic, the mark of ``(p, d)`` comes after all of partition ``p``'s shares of day ``d``.
3. Per account (:mod:`streams.capabilities.account_book`, driven by the ``accounts`` agent): shares
   are kept by partition and day; account day ``D`` is combined once every source partition has
   marked ``D`` (exact, however far apart the partitions' event times are), with the seat count
   valid at the end of ``D`` (the newest group event by event time). A partition without users
   marks days too: its watermark follows the others' (see :mod:`streams.core.eventtime`).

An account is judged from its ``onboarding_days``-th day on (the band is followed silently
before): then a signal if it is not green, and one on each band change after that.

Health = 100 x (w_u x min(1, utilization / target) + w_e x mean score / 100 + w_t x min(1, trend)
+ w_x x max(0, 1 - escalations per active seat / limit)). Without a seat count the utilization
term is left out and the others are re-weighted.

Effectively once: shares and marks are idempotent (a share replaces the same partition's share of
the same day, a mark only moves forward, a day already combined ignores late shares), so a replay
after a crash never double counts; outputs carry deterministic ids, so consumers drop repeats.
Known gap: a crash after a flush that recorded a day's shares as sent reached the changelog, but
before the shares themselves were acknowledged, loses those shares (the records say the day was
scored, so it is not scored again); that account day then misses the partition's users.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Iterable, Sequence

import orjson
from prometheus_client.core import GaugeMetricFamily, Metric

from streams.capabilities.account_book import ZERO_SHARE, AccountBook, AccountCombiner
from streams.capabilities.engagement import NOTICE, ScoringSchedule
from streams.capabilities.signals import SignalCounts
from streams.config import HEALTH_BANDS, METRIC_PREFIX, RESERVED_KEY_PREFIX, Settings
from streams.core.capability import Capability, Combiner, PartitionCapability, Shared
from streams.core.eventtime import NO_TIME
from streams.core.state import UserState

if TYPE_CHECKING:
    from streams.core.capability import PartitionContext
    from streams.core.contract import Event

def shares_key(partition: int) -> bytes:
    """The partition's pending shares and seats: a reserved key of the state table (never a user id)."""
    return RESERVED_KEY_PREFIX + b"account-shares:%d" % partition


class AccountsPartition(PartitionCapability):
    """One partition's per-account shares of each scored day, and seat counts from group events."""

    def __init__(self, ctx: "PartitionContext", shared: "AccountsCapability") -> None:
        super().__init__(ctx)
        self.shared = shared
        self.key = shares_key(ctx.partition)
        self.record = ctx.user(self.key) or UserState()
        pending = self.record.ext.setdefault("pending", {"shares": {}, "seats": {}})
        self.days: dict[int, dict[str, dict[str, Any]]] = pending["shares"]
        """Shares of days being scored, by day and account (sent once the day is scored)."""
        self.seats: dict[int, dict[str, list[int]]] = pending["seats"]
        """The newest group event's ``[event time, seats]`` per day and account, sent with the shares."""
        self.next_mark: int | None = None
        """The next day to finish (send shares and mark). From the first watermark on: days the
        watermark had passed before (a restart) were finished before."""

    def on_event(self, key: bytes, state: "UserState", event: "Event") -> None:
        if event.type != "group" or not event.account:
            return
        seats = event.traits.get(self.shared.config.seats_trait)
        if isinstance(seats, bool) or not isinstance(seats, (int, float)) or seats < 0:
            return
        day = self.seats.setdefault(self.shared.schedule.clock.day(event.ts), {})
        held = day.get(event.account)
        if held is None or (event.ts, int(seats)) > (held[0], held[1]):  # same time: the larger count
            day[event.account] = [event.ts, int(seats)]
            self.ctx.mark_dirty(self.key, self.record)

    def describe(self, key: bytes, state: "UserState") -> dict[str, Any]:
        """The account the user belongs to (their newest group or event account)."""
        return {"account": state.account}

    def on_notice(self, key: bytes, state: "UserState", kind: str, payload: Any) -> None:
        account = payload.get("account") if kind == NOTICE else None
        if not account or payload["trigger"] != "day":
            return
        day = payload["day"]
        share = self.days.setdefault(day, {}).setdefault(account, dict(ZERO_SHARE))
        self.ctx.mark_dirty(self.key, self.record)
        share["users"] += 1
        last = payload.get("last_active_day")
        if last is not None and day - last < self.shared.config.active_days:
            share["active"] += 1
            share["score_sum"] += payload.get("score") or 0
        base = payload.get("weekly_baseline")
        if base is not None:
            share["trend_recent"] += payload["recent"][0]
            share["trend_base"] = round(share["trend_base"] + base[0], 4)
        share["escalations"] += payload.get("escalations") or 0

    def on_watermark(self, watermark_ms: int) -> None:
        """Send the shares and the mark of every day the partition has finished scoring (the
        engagement capability scores a day's batch in its own ``on_watermark``, which runs first)."""
        due = self.shared.schedule.due
        if self.next_mark is None:
            if watermark_ms == NO_TIME:
                return
            last = self.shared.schedule.clock.day(watermark_ms)
            while due(last) > watermark_ms:
                last -= 1
            self.next_mark = min([last + 1, *self.days, *self.seats])
        while due(self.next_mark) <= watermark_ms:
            day = self.next_mark
            shares, seats = self.days.pop(day, {}), self.seats.pop(day, {})
            for account in sorted(shares.keys() | seats.keys()):
                self.ctx.emit(self.shared.topic, account, {"kind": "share", "account": account,
                                                            "partition": self.ctx.partition, "day": day,
                                                            "share": shares.get(account),
                                                            "seats": seats.get(account)})
            if shares or seats:
                self.ctx.mark_dirty(self.key, self.record)
            mark = orjson.dumps({"kind": "done", "partition": self.ctx.partition, "day": day})
            for target in range(self.ctx.settings.partitions):
                self.ctx.send_to(self.shared.topic, target, mark)
            self.next_mark = day + 1


class AccountsCapability(Capability):
    """Per-partition account shares (a capability) plus the per-account combiner (its agent)."""

    name = "accounts"
    requires = ("engagement",)

    def __init__(self, settings: Settings, shared: Shared | None = None) -> None:
        super().__init__(settings, shared or Shared())
        self.config = settings.accounts
        self.topic = settings.account_shares_topic
        self.schedule = self.shared.get(ScoringSchedule, lambda: ScoringSchedule(settings))
        self.signals = self.shared.get(SignalCounts, SignalCounts)
        self.book = AccountBook(self.config, settings.partitions, self.schedule.clock, self.schedule.due,
                                self.signals)
        self.combiner = AccountCombiner(settings, self.book)

    def for_partition(self, ctx: "PartitionContext") -> AccountsPartition:
        return AccountsPartition(ctx, self)

    def combiners(self) -> Sequence[Combiner]:
        return [self.combiner]

    def collect(self, parts: Sequence[PartitionCapability]) -> Iterable[Metric]:
        gauge = GaugeMetricFamily(f"{METRIC_PREFIX}_account_health_accounts", "Accounts per health band, "
                                  "combined by this worker (each account on one worker; sum over workers).",
                                  labels=["band"])
        counts = {band: 0 for band in HEALTH_BANDS}
        for accounts in list(self.combiner.bands.values()):
            for band in accounts.values():
                counts[band] += 1
        for band in HEALTH_BANDS:
            gauge.add_metric([band], counts[band])
        yield gauge
