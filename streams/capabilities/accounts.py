"""Account health (B2B): seats, active seats, license utilization, a 0-100 health score and a
red / yellow / green band with a trend arrow; a signal on each band change.

An account's users live in different partitions (users are partitioned by user id), so account
figures are combined in two steps, like the snapshot rollup:

1. Per partition (:class:`AccountsPartition`): each user in scope (active within the engagement
   ``horizon_days``) with an account contributes to the account's *share*: one user, active
   within ``active_days`` or not, their score if active, their recent and baseline active days (the
   trend), their escalations. The contribution is the one of the user's latest judgement (the
   engagement capability's ``engagement_evaluated`` notice; the user is judged again the day they
   stop counting as active), kept in the user's record (``state.ext["c"]``), and the partition
   keeps the running sums per account, so a day's shares cost one look per account, not one per
   user (restore rebuilds the sums from the records). Group events' seat counts are kept per
   account and day (the day's newest in event time, in a reserved record of the partition's state
   table). Once the partition has judged a day (a timer just after the day's judgements), every
   account's share is sent to the internal topic ``<app_id>-account-shares`` keyed by account, with
   the day's seat count (``"seats": [event time, n]``; no message: no user of the account in scope
   in the partition and no group event that day).
2. Each partition, once it has finished a day, sends a *day mark* ``{"kind": "done", "partition":
   p, "day": d}`` to every partition of that topic, after that day's shares: so in every partition
   of the topic, the mark of ``(p, d)`` comes after all of partition ``p``'s shares of day ``d``.
3. Per account (:mod:`streams.capabilities.account_book`, driven by the ``accounts`` agent): shares
   are kept by partition and day; account day ``D`` is combined once every source partition has
   marked ``D`` (exact, however far apart the partitions' event times are), with the seat count
   valid at the end of ``D`` (the newest group event by event time). A source partition that has
   marked nothing a while (``idle_partition_s``, wall clock) after another's first mark holds no
   users and is not waited for.

An account is judged from its ``onboarding_days``-th day on (the band is followed silently
before): then a signal if it is not green, and one on each band change after that.

Health = 100 x (w_u x min(1, utilization / target) + w_e x mean score / 100 + w_t x min(1, trend)
+ w_x x max(0, 1 - escalations per active seat / limit)). Without a seat count the utilization
term is left out and the others are re-weighted.

Effectively once: shares and marks are idempotent (a share replaces the same partition's share of
the same day, a mark only moves forward, a day already combined ignores late shares), so a replay
after a crash never double counts; outputs carry deterministic ids, so consumers drop repeats.
Known gap: a crash after the watermark passed a day, before that day's shares were acknowledged
and with the records flushed, resumes from the next day (the restored watermark says the day was
finished); that account day then misses the partition's users.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Iterable, Sequence

import orjson
from prometheus_client.core import GaugeMetricFamily, Metric

from streams.capabilities.account_book import SHARE_FIELDS, AccountBook, AccountCombiner
from streams.capabilities.engagement import NOTICE, RESTED, EngagementPartition, ScoringSchedule
from streams.capabilities.signals import SignalCounts
from streams.config import HEALTH_BANDS, METRIC_PREFIX, RESERVED_KEY_PREFIX, Settings
from streams.core.capability import Capability, Combiner, PartitionCapability, Shared
from streams.core.eventtime import NO_TIME
from streams.core.state import UserState

if TYPE_CHECKING:
    from streams.core.capability import PartitionContext
    from streams.core.contract import Event

SLOT = "c"
"""A user's contribution to their account's share: ``[account, active, score, recent active days,
weekly baseline active days (thousandths), escalations]`` (users in scope with an account only)."""
DAY_TIMER = "accounts:day"


def shares_key(partition: int) -> bytes:
    """The partition's pending shares and seats: a reserved key of the state table (never a user id)."""
    return RESERVED_KEY_PREFIX + b"account-shares:%d" % partition


class AccountsPartition(PartitionCapability):
    """One partition's per-account shares, kept as running sums of its users' contributions, and
    seat counts from group events."""

    def __init__(self, ctx: "PartitionContext", shared: "AccountsCapability") -> None:
        super().__init__(ctx)
        self.shared = shared
        self.key = shares_key(ctx.partition)
        self.record = ctx.user(self.key) or UserState()
        pending = self.record.ext.setdefault("pending", {"seats": {}})
        pending.pop("shares", None)  # kept by records of an older version: shares are sums now
        self.seats: dict[int, dict[str, list[int]]] = pending["seats"]
        """The newest group event's ``[event time, seats]`` per day and account, sent with the shares."""
        self.sums: dict[str, list[int]] = {}
        """Per account, the sums of its users' contributions (``SHARE_FIELDS``, ``trend_base`` in
        thousandths): rebuilt from the user records by ``restore``."""
        self.next_mark: int | None = None
        """The next day to finish (send shares and mark). From the first watermark on: days the
        watermark had passed before (a restart) were finished before."""
        self._engagement: EngagementPartition | None = None

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

    # --- contributions ---------------------------------------------------------------------
    def restore(self, key: bytes, state: "UserState") -> None:
        held = state.ext.get(SLOT)
        if held:
            self._add(held, 1)

    def _add(self, contribution: list[Any], sign: int) -> None:
        sums = self.sums.get(contribution[0])
        if sums is None:
            sums = self.sums[contribution[0]] = [0] * len(SHARE_FIELDS)
        sums[0] += sign
        for i in range(1, len(SHARE_FIELDS)):
            sums[i] += sign * contribution[i]
        if not sums[0]:
            del self.sums[contribution[0]]

    def on_notice(self, key: bytes, state: "UserState", kind: str, payload: Any) -> None:
        if kind == RESTED:
            self._replace(key, state, None)
            return
        if kind != NOTICE or payload["trigger"] != "day":
            return
        account = payload.get("account")
        if not account:
            self._replace(key, state, None)
            return
        day, last = payload["day"], payload.get("last_active_day")
        active = last is not None and day - last < self.shared.config.active_days
        base = payload.get("weekly_baseline")
        self._replace(key, state, [account, 1 if active else 0, (payload.get("score") or 0) if active else 0,
                                   payload["recent"][0] if base is not None else 0,
                                   round(base[0] * 1000) if base is not None else 0,
                                   payload.get("escalations") or 0])
        if active:  # judged again the day the user stops counting as an active seat
            engagement = self._peer()
            if engagement is not None:
                engagement.request(key, state, last + self.shared.config.active_days)

    def _peer(self) -> EngagementPartition | None:
        if self._engagement is None:
            self._engagement = self.ctx.peer(EngagementPartition)
        return self._engagement

    def _replace(self, key: bytes, state: "UserState", contribution: list[Any] | None) -> None:
        """The user's share of their account is now ``contribution`` (None: none)."""
        held = state.ext.get(SLOT)
        if held == contribution:
            return
        if held:
            self._add(held, -1)
        if contribution is None:
            state.ext.pop(SLOT, None)
        else:
            self._add(contribution, 1)
            state.ext[SLOT] = contribution
        self.ctx.mark_dirty(key, state)

    # --- day marks -------------------------------------------------------------------------
    def on_watermark(self, watermark_ms: int) -> None:
        """Start the chain of day timers (once): days the watermark had passed were finished before."""
        if self.next_mark is not None or watermark_ms == NO_TIME:
            return
        due = self.shared.schedule.due
        last = self.shared.schedule.clock.day(watermark_ms)
        while due(last) > watermark_ms:
            last -= 1
        self.next_mark = min([last + 1, *self.seats])
        self._arm()

    def _arm(self) -> None:
        """A timer just after the engagement capability's judgements of the next day to finish."""
        assert self.next_mark is not None
        self.ctx.mark_dirty(self.key, self.record)  # so the timer finds the record
        self.ctx.schedule(self.shared.schedule.due(self.next_mark) + 1, self.key, DAY_TIMER)

    def on_timer(self, key: bytes, state: "UserState", tag: str, due_ms: int) -> None:
        """Send the day's shares (the sums as the day's judgements left them) and its mark."""
        day = self.next_mark
        if day is None or key != self.key or due_ms != self.shared.schedule.due(day) + 1:
            return
        seats = self.seats.pop(day, {})
        for account in sorted(self.sums.keys() | seats.keys()):
            sums = self.sums.get(account)
            share: dict[str, float] | None = None if sums is None else dict(zip(SHARE_FIELDS, sums))
            if share is not None:
                share["trend_base"] = share["trend_base"] / 1000
            self.ctx.emit(self.shared.topic, account, {"kind": "share", "account": account,
                                                        "partition": self.ctx.partition, "day": day,
                                                        "share": share, "seats": seats.get(account)})
        mark = orjson.dumps({"kind": "done", "partition": self.ctx.partition, "day": day})
        for target in range(self.ctx.settings.partitions):
            self.ctx.send_to(self.shared.topic, target, mark)
        self.next_mark = day + 1
        self._arm()


class AccountsCapability(Capability):
    """Per-partition account shares (a capability) plus the per-account combiner (its agent)."""

    name = "accounts"
    slot = SLOT
    requires = ("engagement",)

    def __init__(self, settings: Settings, shared: Shared | None = None) -> None:
        super().__init__(settings, shared or Shared())
        self.config = settings.accounts
        self.topic = settings.account_shares_topic
        self.schedule = self.shared.get(ScoringSchedule, lambda: ScoringSchedule(settings))
        self.signals = self.shared.get(SignalCounts, SignalCounts)
        self.book = AccountBook(self.config, settings.partitions, self.schedule.clock, self.schedule.due,
                                self.signals, settings.idle_partition_s)
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
