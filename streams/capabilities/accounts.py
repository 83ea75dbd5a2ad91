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
3. Per account (:class:`AccountBook`, driven by the ``accounts`` agent with its own table): shares
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
Known gap: a crash after a flush that recorded a day's shares as sent reached the changelog, but
before the shares themselves were acknowledged, loses those shares (the records say the day was
scored, so it is not scored again); that account day then misses the partition's users.
"""

from __future__ import annotations

from collections import defaultdict
from typing import TYPE_CHECKING, Any, Iterable, Mapping, MutableMapping, Sequence

import orjson
from prometheus_client.core import GaugeMetricFamily, Metric

from streams.capabilities.engagement import NOTICE, ScoringSchedule
from streams.capabilities.signals import SignalCounts, reason, signal, signal_id
from streams.config import HEALTH_BANDS, METRIC_PREFIX, RESERVED_KEY_PREFIX, AccountsConfig, Settings
from streams.core.calendar import DayClock
from streams.core.capability import Capability, Combiner, Output, PartitionCapability, Shared
from streams.core.eventtime import NO_TIME
from streams.core.state import UserState

if TYPE_CHECKING:
    from streams.core.capability import PartitionContext
    from streams.core.contract import Event

ACCOUNTS_TABLE = "accounts"
SHARE_FIELDS = ("users", "active", "score_sum", "trend_recent", "trend_base", "escalations")
ZERO_SHARE = dict.fromkeys(SHARE_FIELDS, 0)
RED, YELLOW, GREEN = 0, 1, 2
MAX_SEAT_CHANGES = 8
ARROWS = {"up": "↑", "down": "↓", "flat": "→"}
MARKS_KEY = b"\x00marks:%d"
"""Table key of the source partitions' day marks, per partition of the shares topic."""


def add_share(total: dict[str, Any], share: dict[str, Any]) -> None:
    for name in SHARE_FIELDS:
        total[name] = total.get(name, 0) + share.get(name, 0)


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


class AccountBook:
    """Combines partition shares into account days and judges health (no Faust: unit-testable).

    Two kinds of table entries: one per account (``add_share``, ``combine``) and, per partition of
    the shares topic, the day marks of the source partitions (``add_mark``). ``combine`` returns
    the outputs to publish as ``("signal" | "snapshot", document)`` pairs.
    """

    def __init__(self, config: AccountsConfig, partitions: int, clock: DayClock, at_ms: Any,
                 signals: SignalCounts, absent_after_s: float = 30.0) -> None:
        self.c = config
        self.partitions = partitions
        self.absent_after_ms = absent_after_s * 1000
        self.clock = clock
        self.at_ms = at_ms
        """Day -> the event time its figures are final at (the engagement scoring time)."""
        self.signals = signals

    @staticmethod
    def new_entry() -> dict[str, Any]:
        return {"parts": {}, "seats": [], "done": None, "band": None, "health": []}

    def add_seats(self, entry: dict[str, Any], msg: dict[str, Any]) -> dict[str, Any]:
        changes = [c for c in entry["seats"] if c[0] != msg["ts"]] + [[msg["ts"], msg["seats"]]]
        entry["seats"] = sorted(changes)[-MAX_SEAT_CHANGES:]
        return entry

    def add_share(self, entry: dict[str, Any], msg: dict[str, Any]) -> dict[str, Any]:
        """Keep a partition's share of a day (a day already combined ignores it: a replay)."""
        day = msg["day"]
        if entry["done"] is None or day > entry["done"]:
            entry["parts"].setdefault(str(msg["partition"]), {})[str(day)] = msg["share"]
        return entry

    def add_mark(self, marks: dict[str, Any] | None, msg: dict[str, Any],
                 now_ms: float) -> tuple[dict[str, Any], int | None]:
        """Record that a source partition finished a day; returns the last day every source
        partition has finished (None: not known yet).

        A source partition that has marked nothing ``absent_after_s`` (wall clock) after the first
        mark of another holds no users at all (it has no event time to mark days with): it is not
        waited for, and if it gains users, they count from the first day it marks. Waiting for
        the first marks is what keeps the figures exact when partitions are far apart in event
        time (a replay can process one partition's whole history before another's).
        """
        marks = marks or {"done": {}, "since": now_ms}
        key = str(msg["partition"])
        marks["done"][key] = max(marks["done"].get(key, msg["day"]), msg["day"])
        absent_ok = now_ms - marks["since"] >= self.absent_after_ms
        days = [marks["done"].get(str(p)) for p in range(self.partitions)]
        if any(day is None for day in days) and not absent_ok:
            return marks, None
        return marks, min(day for day in days if day is not None)

    def combine(self, entry: dict[str, Any], account: str, through: int) -> list[tuple[str, dict[str, Any]]]:
        """Combine every day of the account up to ``through`` that partitions sent shares for."""
        held = [int(d) for part in entry["parts"].values() for d in part]
        if not held:
            return []
        last = min(through, max(held))
        first = min(held) if entry["done"] is None else entry["done"] + 1
        outputs: list[tuple[str, dict[str, Any]]] = []
        for day in range(first, last + 1):
            total = dict(ZERO_SHARE)
            for part in entry["parts"].values():
                share = part.pop(str(day), None)
                if share is not None:
                    add_share(total, share)
            outputs += self._judge(entry, account, day, total)
        entry["parts"] = {p: days for p, days in entry["parts"].items() if days}
        return outputs

    def _judge(self, entry: dict[str, Any], account: str, day: int,
               total: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
        entry["done"] = day
        seats = self._seats(entry, day)
        health, figures, reasons = self.health(total, seats)
        history = [h for h in entry["health"] if h[0] >= day - self.c.trend_days] + [[day, health]]
        entry["health"] = history
        before = [h for d, h in history if d == day - self.c.trend_days]
        delta = health - before[0] if before else 0.0
        trend = "up" if delta >= self.c.trend_step else "down" if delta <= -self.c.trend_step else "flat"
        figures.update(health=health, trend=trend, arrow=ARROWS[trend])
        previous = entry["band"]
        band = self.band(None if previous is None else HEALTH_BANDS.index(previous), health)
        entry["band"] = figures["band"] = HEALTH_BANDS[band]
        label = self.clock.label(day)
        outputs: list[tuple[str, dict[str, Any]]] = [("snapshot", {
            "id": signal_id("account_health_day", account, label), "kind": "account_health", "period": label,
            "account_id": account, "final": True, "figures": figures})]
        first = entry.setdefault("first", day)
        if day - first < self.c.onboarding_days:
            return outputs  # a new account: its band is followed, not signalled yet
        announce = not entry.get("announced")
        entry["announced"] = True
        if announce:
            previous = None  # the first judgement: a signal unless green
        if entry["band"] != previous and (previous is not None or band != GREEN):
            outputs.append(("signal", signal(
                "account_health", signal_id("account_health", account, previous, entry["band"], label),
                self.at_ms(day), label, None, account,
                **{"from": previous, "to": entry["band"], "health": health, "trend": trend, "arrow": ARROWS[trend],
                   "seats": seats, "active_seats": total["active"],
                   "license_utilization": figures["license_utilization"], "reasons": reasons})))
            self.signals.add("account_health", entry["band"])
        return outputs

    def _seats(self, entry: dict[str, Any], day: int) -> int | None:
        """The seat count of the newest group event up to the end of ``day``."""
        end = self.clock.end(day)
        valid = [n for ts, n in entry["seats"] if ts < end]
        return valid[-1] if valid else None

    def health(self, total: dict[str, Any], seats: int | None) -> tuple[float, dict[str, Any], list[dict[str, Any]]]:
        """(health 0-100, figures, reasons) of an account day."""
        c = self.c
        active = total["active"]
        utilization = active / seats if seats else None
        engagement = total["score_sum"] / active / 100 if active else 0.0
        base = total["trend_base"]
        trend = total["trend_recent"] / base if base > 0 else None
        escalation_rate = total["escalations"] / max(1, active)
        marks = [(c.weight_engagement, engagement),
                 (c.weight_trend, 0.5 if trend is None else min(1.0, trend)),
                 (c.weight_escalations, max(0.0, 1 - escalation_rate / c.escalations_per_seat))]
        if utilization is not None:
            marks.append((c.weight_utilization, min(1.0, utilization / c.utilization_target)))
        weight = sum(w for w, _ in marks) or 1.0
        health = round(100 * sum(w * m for w, m in marks) / weight, 1)
        reasons = []
        if utilization is not None and utilization < c.utilization_healthy:
            reasons.append(reason("low_license_utilization", f"{active} of {seats} seats active in the last "
                                  f"{c.active_days} days ({utilization:.0%})"))
        if active and engagement < 0.4:
            reasons.append(reason("low_engagement", f"active users' average engagement score is {engagement * 100:.0f}"))
        if not active:
            reasons.append(reason("inactive_days", f"no user active in the last {c.active_days} days"))
        if trend is not None and trend < 0.7:
            reasons.append(reason("activity_drop", f"users were active on {trend:.0%} of their usual days "
                                  "in the last 7 days"))
        if total["escalations"] and escalation_rate >= c.escalations_per_seat / 2:
            reasons.append(reason("escalations", f"{total['escalations']} support escalations in 28 days "
                                  f"from {active} active users"))
        figures = {"users": total["users"], "seats": seats, "active_seats": active,
                   "license_utilization": None if utilization is None else round(utilization, 4),
                   "engagement": round(engagement * 100, 1), "activity_trend": None if trend is None else round(trend, 3),
                   "escalations": total["escalations"]}
        return health, figures, reasons

    def band(self, previous: int | None, health: float) -> int:
        """Band with hysteresis: a band is left only ``hysteresis`` points past its boundary."""
        c = self.c
        plain = GREEN if health >= c.green else RED if health < c.red else YELLOW
        if previous is None or plain == previous:
            return plain
        h = c.hysteresis
        if previous == GREEN and health >= c.green - h:
            return GREEN
        if previous == RED and health < c.red + h:
            return RED
        if previous == YELLOW and c.red - h <= health < c.green + h:
            return YELLOW
        return plain


class AccountCombiner:
    """The per-account agent's logic (a :class:`~streams.core.capability.Combiner`): shares and
    seat counts are kept per account in the table, source partitions' day marks per partition of
    the shares topic; once every source partition has marked a day, the accounts with shares up
    to it are combined and judged (signals and snapshots)."""

    name = "accounts"
    table = ACCOUNTS_TABLE

    def __init__(self, settings: Settings, book: "AccountBook") -> None:
        self.source = settings.account_shares_topic
        self.topics = {"signal": settings.signals_topic, "snapshot": settings.metrics_topic}
        self.book = book
        self.bands: dict[int, dict[bytes, str]] = defaultdict(dict)
        """Band per account, per partition of the shares topic this worker combines (for gauges)."""
        self.pending: dict[int, set[bytes]] = defaultdict(set)
        """Accounts with shares not combined yet, per partition of the shares topic. In memory: after
        a restart an account waits for its next share (its days are combined together then)."""

    def apply(self, entries: MutableMapping[bytes, Any], key: bytes | None, message: Mapping[str, Any],
              partition: int, wall_ms: float) -> Iterable[Output]:
        book = self.book
        msg = dict(message)
        if msg["kind"] == "done":
            marks_key = MARKS_KEY % partition
            marks, through = book.add_mark(entries.get(marks_key), msg, wall_ms)
            entries[marks_key] = marks
            return self._combine(entries, partition, through) if through is not None else ()
        if key is None:
            return ()
        entry = entries.get(key) or book.new_entry()
        if msg.get("seats"):
            entry = book.add_seats(entry, {"ts": msg["seats"][0], "seats": msg["seats"][1]})
        if msg.get("share") is not None:
            entry = book.add_share(entry, msg)
            self.pending[partition].add(key)
        entries[key] = entry
        return ()

    def _combine(self, entries: MutableMapping[bytes, Any], partition: int, through: int) -> list[Output]:
        """Combine every account of a shares-topic partition with shares up to ``through``."""
        outputs: list[Output] = []
        pending = self.pending[partition]
        for key in sorted(pending):
            entry = entries.get(key)
            if not entry:
                pending.discard(key)
                continue
            out = self.book.combine(entry, key.decode(), through)
            if not entry["parts"]:
                pending.discard(key)
            if not out:
                continue
            entries[key] = entry
            if entry["band"] is not None:
                self.bands[partition][key] = entry["band"]
            outputs.extend((self.topics[role], key, doc) for role, doc in out)
        return outputs

    def revoke(self, partition: int) -> None:
        self.bands.pop(partition, None)
        self.pending.pop(partition, None)


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
