"""Combining account shares: the per-account agent's logic and the health judgement.

The accounts capability (:mod:`streams.capabilities.accounts`) sends, per source partition and
scored day, each account's *share* and a *day mark*; this module combines them, keyed by account,
in the ``accounts`` agent (run by :mod:`streams.runtime.agents`):

* shares are kept by partition and day; account day ``D`` is combined once every source
  partition has marked ``D`` (exact, however far apart the partitions' event times are), with
  the seat count valid at the end of ``D`` (the newest group event by event time; seat changes
  are kept until no day still to combine can need them);
* health = 100 x (w_u x min(1, utilization / target) + w_e x mean score / 100 + w_t x min(1, trend)
  + w_x x max(0, 1 - escalations per active seat / limit)); without a seat count the utilization
  term is left out and the others are re-weighted; bands red / yellow / green with hysteresis,
  a trend arrow, a signal on each band change from the account's ``onboarding_days``-th day on.

Effectively once: shares and marks are idempotent (a share replaces the same partition's share of
the same day, a mark only moves forward, a day already combined ignores late shares).
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any, Iterable, Mapping, MutableMapping

from streams.capabilities.signals import SignalCounts, reason, signal, signal_id
from streams.config import HEALTH_BANDS, AccountsConfig, Settings
from streams.core.calendar import DayClock
from streams.core.capability import Output

ACCOUNTS_TABLE = "accounts"
SHARE_FIELDS = ("users", "active", "score_sum", "trend_recent", "trend_base", "escalations")
ZERO_SHARE = dict.fromkeys(SHARE_FIELDS, 0)
RED, YELLOW, GREEN = 0, 1, 2
ARROWS = {"up": "↑", "down": "↓", "flat": "→"}
MARKS_KEY = b"\x00marks:%d"
"""Table key of the source partitions' day marks, per partition of the shares topic."""


def add_share(total: dict[str, Any], share: dict[str, Any]) -> None:
    for name in SHARE_FIELDS:
        total[name] = total.get(name, 0) + share.get(name, 0)



class AccountBook:
    """Combines partition shares into account days and judges health (no Faust: unit-testable).

    Two kinds of table entries: one per account (``add_share``, ``combine``) and, per partition of
    the shares topic, the day marks of the source partitions (``add_mark``). ``combine`` returns
    the outputs to publish as ``("signal" | "snapshot", document)`` pairs.
    """

    def __init__(self, config: AccountsConfig, partitions: int, clock: DayClock, at_ms: Any,
                 signals: SignalCounts) -> None:
        self.c = config
        self.partitions = partitions
        self.clock = clock
        self.at_ms = at_ms
        """Day -> the event time its figures are final at (the engagement scoring time)."""
        self.signals = signals

    @staticmethod
    def new_entry() -> dict[str, Any]:
        return {"parts": {}, "seats": [], "done": None, "band": None, "health": []}

    def add_seats(self, entry: dict[str, Any], msg: dict[str, Any]) -> dict[str, Any]:
        """Keep a seat change (by event time; at the same time, the larger count)."""
        held = [c for c in entry["seats"] if c[0] == msg["ts"]]
        if held and held[0][1] >= msg["seats"]:
            return entry
        entry["seats"] = sorted([c for c in entry["seats"] if c[0] != msg["ts"]] + [[msg["ts"], msg["seats"]]])
        return entry

    def add_share(self, entry: dict[str, Any], msg: dict[str, Any]) -> dict[str, Any]:
        """Keep a partition's share of a day (a day already combined ignores it: a replay)."""
        day = msg["day"]
        if entry["done"] is None or day > entry["done"]:
            entry["parts"].setdefault(str(msg["partition"]), {})[str(day)] = msg["share"]
        return entry

    def add_mark(self, marks: dict[str, Any] | None, msg: dict[str, Any]) -> tuple[dict[str, Any], int | None]:
        """Record that a source partition finished a day; returns the last day every source
        partition has finished (None: some partition has marked nothing yet).

        Every partition marks days, from the first one it has shares of or its watermark reaches
        (a partition without users follows the others' watermark: see streams.core.eventtime);
        the days before its first mark it had nothing for. So waiting for every partition's marks
        is exact however far apart the partitions' event times are, and nothing here depends on
        the wall clock or on how fast any worker runs."""
        marks = marks or {"done": {}}
        key = str(msg["partition"])
        marks["done"][key] = max(marks["done"].get(key, msg["day"]), msg["day"])
        days = [marks["done"].get(str(p)) for p in range(self.partitions)]
        if any(day is None for day in days):
            return marks, None
        return marks, min(days)

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
        self._forget_seats(entry, last)
        return outputs

    def _forget_seats(self, entry: dict[str, Any], done: int) -> None:
        """Drop seat changes no day after ``done`` can need: all before the end of ``done`` but
        the newest of them (it holds from then on until the next change)."""
        end = self.clock.end(done)
        before = [c for c in entry["seats"] if c[0] < end]
        if len(before) > 1:
            entry["seats"] = before[-1:] + [c for c in entry["seats"] if c[0] >= end]

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
            marks, through = book.add_mark(entries.get(marks_key), msg)
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
