"""A partition's learning state: its model, its accounts' open days and the labels waiting to be
learned, in one reserved record of the partition's state table (written with the user records
at each commit, so a restart resumes exactly where the last commit left it).

Labels are learned two days late and in a fixed order. A label resolved while judging day ``d``
waits in the queue; the first judgement of day ``d + 2`` or later learns every waiting label of
days up to ``d`` sorted by (day, user). So every judgement of a day sees the same model whatever
order users are judged in (timers of one due time fire in no promised order, and a restart
rebuilds them in another), and no event of a later day can be judged before all labels of a
day are in (an event of day ``d + 1`` may be applied before day ``d`` is judged; one of day
``d + 2`` cannot: day ``d`` is judged before the watermark passes ``d + 1``'s end).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from streams.capabilities.account_days import AccountDays
from streams.capabilities.risk_learning import SIZE, dequantize
from streams.capabilities.risk_model import PartitionModel
from streams.config import RESERVED_KEY_PREFIX, RiskConfig
from streams.core.state import LiveSlot, UserState

if TYPE_CHECKING:
    from streams.core.capability import PartitionContext

SLOT = "m"
LAG_DAYS = 2


def learner_key(partition: int) -> bytes:
    """The partition's learning state: a reserved key of the state table (never a user id)."""
    return RESERVED_KEY_PREFIX + b"risk-model:%d" % partition


class Learner(LiveSlot):
    """The model, the open days and the label queue of one partition (kept decoded in the reserved
    record between flushes)."""

    __slots__ = ("ctx", "config", "key", "record", "model", "days", "queue", "learned")

    def __init__(self, ctx: "PartitionContext", config: RiskConfig) -> None:
        self.ctx = ctx
        self.config = config
        self.key = learner_key(ctx.partition)
        self.record = ctx.user(self.key) or UserState()
        rec = self.record.ext.get(SLOT)
        model, days, queue, learned = rec if rec else (None, None, [], None)
        self.model = PartitionModel(SIZE, memory=config.model_memory).load(model)
        self.days = AccountDays(days)
        self.queue: list[list[Any]] = queue
        """Labels waiting: ``[day, user, features (bytes), label]``."""
        self.learned: int | None = learned
        """The last day whose labels are learned."""

    def freeze(self, state: UserState) -> list[Any]:
        return [self.model.dump(), self.days.dump(), self.queue, self.learned]

    def touch(self) -> None:
        """The state changed: write it with the next flush."""
        self.record.ext[SLOT] = self
        self.ctx.mark_dirty(self.key, self.record)

    def label(self, day: int, user: bytes, data: bytes, y: int) -> None:
        self.queue.append([day, user, data, y])
        self.touch()

    def catch_up(self, day: int) -> None:
        """Learn the waiting labels of days up to ``day - LAG_DAYS``, in (day, user) order."""
        upto = day - LAG_DAYS
        if self.learned is not None and upto <= self.learned:
            return
        due = sorted((entry for entry in self.queue if entry[0] <= upto), key=lambda e: (e[0], e[1]))
        if due:
            self.queue = [entry for entry in self.queue if entry[0] > upto]
            for _, _, data, y in due:
                self.model.learn(dequantize(data), y)
        self.learned = upto
        self.touch()

    def ready(self) -> bool:
        """Whether the model decides (``mode`` auto and enough labels of each kind)."""
        return self.config.mode == "auto" and self.model.ready(self.config.min_labels)
