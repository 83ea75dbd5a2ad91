"""How well a churn-risk signal predicted churn: the backtest's definitions, as pure functions.

Every predictor (the pipeline, each baseline) is judged the same way, from two things it says:

* **flags**: the times a user was flagged (for the pipeline: churn-risk band ``high``), as
  episodes (:class:`Flag`: from when, on which judgement day, until when);
* **risk now**: its current risk for a user at the end of a day (the pipeline's probability, or
  its band where it has none), read at checkpoints.

Who is judged (:class:`Subject`): every labelled user seen in the events. A churner's churn time
``J`` is the label's churn time; without one, the end of the user's checkpoint day when
checkpoints are per account (kdd2015: the label says what happened after the window), else the
user's last event. A user is observed until ``J`` (churners), their checkpoint day, or the end
of the events; flags after that do not count.

Flag figures:

* **flagged**: a user with a flag starting within their observation;
* **precision** = flagged churners / flagged users;
* **recalled**: a churner with a flag that is on at some moment within the ``window_days``
  before ``J`` and started at or before ``J`` (a flag from months before, since lifted, did not
  warn of this churn); **lead** = ``J`` minus the start of the earliest such flag;
* **recall** = recalled churners / churners; **recall with lead** = churners recalled at least
  ``lead_days`` ahead / churners; **F1** from precision and recall;
* **non-churners flagged** = flagged non-churners / non-churners (healthy users ever flagged).

Ranking at checkpoints (:class:`Judgement`): with per-account checkpoints, each user of the
account is judged at its day (positive: churned). Otherwise, at each checkpoint day ``c``, every
user first seen by ``c``, active within the ``window_days`` before it and not yet churned is
judged: positive when they churn within ``window_days`` after ``c``, negative when they never
churn (later churners are left out of that checkpoint). **AUC** is the probability that a positive
has a higher current risk than a negative (ties count half), over all judgements together;
**non-churners flagged at recall 0.6** is the false-positive rate of the loosest cut of the
current risk that finds 60% of the positives.
"""

from __future__ import annotations

import bisect
import statistics
from dataclasses import asdict, dataclass, field
from typing import Any, Callable, Iterable, Iterator, Mapping, NamedTuple, Sequence

from streams.config import MS_PER_DAY, RISK_BANDS
from streams.core.calendar import DayClock
from streams.tools.backtest_input import Checkpoints, Histories, Labels

RECALL_POINT = 0.6


class Flag(NamedTuple):
    """One flagged episode: from ``start_ms`` (judged for day ``start_day``) until ``end_ms`` (None: still on)."""

    start_ms: int
    start_day: int
    end_ms: int | None = None


class Subject(NamedTuple):
    """A labelled user as judged (see the module docstring)."""

    user: str
    churned: bool
    end_ms: int
    """Churn time (churners) or end of observation."""
    end_day: int | None
    """Set when observation ends with a checkpoint day (per-account checkpoints, no churn time):
    flags judged for later days do not count (whatever time their judgement was made)."""
    first_ms: int


class Judgement(NamedTuple):
    user: str
    day: int
    positive: bool


@dataclass
class Population:
    """Who is judged, and how many labelled users could not be."""

    subjects: list[Subject]
    judgements: list[Judgement]
    unseen: int = 0
    """Labelled users without events."""
    unjudged: int = 0
    """Users of accounts without a checkpoint (per-account checkpoints only)."""


def population(labels: Labels, histories: Histories, checkpoints: Checkpoints, clock: DayClock,
               window_days: float) -> Population:
    """Subjects and checkpoint judgements (definitions in the module docstring)."""
    end_of_data = histories.last_ms or 0
    window_ms = int(window_days * MS_PER_DAY)
    subjects: list[Subject] = []
    judgements: list[Judgement] = []
    unjudged = 0
    for user, history in histories.users.items():
        label = labels.users.get(user)
        if label is None:
            if labels.complete:
                continue
            churned, churn_ms = False, None
        else:
            churned, churn_ms = label.churned, label.churn_ms
        last_ms = history.activity[-1] if history.activity else history.first_ms
        end_day: int | None = None
        if checkpoints.by_account:
            day = checkpoints.by_account.get(history.account or "")
            if day is None:
                unjudged += 1
                continue
            end_ms = churn_ms if churn_ms is not None else clock.end(day)
            end_day = day if churn_ms is None else None
            if clock.day(history.first_ms) <= day and (churn_ms is None or churn_ms >= clock.end(day)):
                judgements.append(Judgement(user, day, churned))
        elif churned:
            end_ms = churn_ms if churn_ms is not None else last_ms
        else:
            end_ms = end_of_data
        subjects.append(Subject(user, churned, end_ms, end_day, history.first_ms))
        if not checkpoints.by_account:
            judgements.extend(_judged_on_days(user, history.first_ms, history.activity, churned, end_ms,
                                              checkpoints.days, clock, window_ms))
    unseen = sum(1 for user in labels.users if user not in histories.users)
    return Population(subjects, judgements, unseen, unjudged)


def _judged_on_days(user: str, first_ms: int, activity: Sequence[int], churned: bool, churn_ms: int,
                    days: Iterable[int], clock: DayClock, window_ms: int) -> Iterator[Judgement]:
    for day in days:
        at = clock.end(day)
        if first_ms >= at or (churned and churn_ms < at):
            continue
        last = bisect.bisect_left(activity, at) - 1
        if last < 0 or activity[last] < at - window_ms:
            continue  # not around any more (or not yet active)
        if not churned:
            yield Judgement(user, day, False)
        elif churn_ms <= at + window_ms:
            yield Judgement(user, day, True)


@dataclass
class Figures:
    """One predictor's row of the report (None: not applicable, e.g. a ranking without flags)."""

    name: str
    precision: float | None = None
    recall: float | None = None
    f1: float | None = None
    median_lead_days: float | None = None
    recall_lead: float | None = None
    nonchurners_flagged: float | None = None
    auc: float | None = None
    nonchurners_flagged_at_recall: float | None = None
    flagged: int = 0
    flagged_churners: int = 0
    recalled: int = 0
    caught: int = 0
    churners: int = 0
    non_churners: int = 0
    checkpoint_aucs: dict[str, float] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def judge_flags(figures: Figures, flags: Mapping[str, Sequence[Flag]], subjects: Sequence[Subject],
                lead_days: float, window_days: float) -> Figures:
    """Fill the flag figures of ``figures`` (definitions in the module docstring)."""
    window_ms, lead_ms = window_days * MS_PER_DAY, lead_days * MS_PER_DAY
    leads: list[float] = []
    for subject in subjects:
        own = [f for f in flags.get(subject.user, ()) if _observed(f, subject)]
        if subject.churned:
            figures.churners += 1
        else:
            figures.non_churners += 1
        if not own:
            continue
        figures.flagged += 1
        if not subject.churned:
            continue
        figures.flagged_churners += 1
        warned = [f for f in own if f.end_ms is None or f.end_ms >= subject.end_ms - window_ms]
        if warned:
            lead = max(0, subject.end_ms - min(f.start_ms for f in warned))
            figures.recalled += 1
            leads.append(lead / MS_PER_DAY)
            if lead >= lead_ms:
                figures.caught += 1
    figures.precision = figures.flagged_churners / figures.flagged if figures.flagged else 0.0
    figures.recall = figures.recalled / figures.churners if figures.churners else 0.0
    figures.recall_lead = figures.caught / figures.churners if figures.churners else 0.0
    total = figures.precision + figures.recall
    figures.f1 = 2 * figures.precision * figures.recall / total if total else 0.0
    figures.median_lead_days = statistics.median(leads) if leads else None
    figures.nonchurners_flagged = (figures.flagged - figures.flagged_churners) / figures.non_churners \
        if figures.non_churners else 0.0
    return figures


def _observed(flag: Flag, subject: Subject) -> bool:
    if subject.end_day is not None:
        return flag.start_day <= subject.end_day
    return flag.start_ms <= subject.end_ms


def judge_ranking(figures: Figures, risk: Callable[[str, int], float], judgements: Sequence[Judgement],
                  clock: DayClock) -> Figures:
    """Fill the AUC figures of ``figures`` from the current risk at each judgement."""
    scored = [(risk(j.user, j.day), j.positive, j.day) for j in judgements]
    figures.auc = auc([s for s, p, _ in scored if p], [s for s, p, _ in scored if not p])
    figures.nonchurners_flagged_at_recall = fpr_at_recall(scored, RECALL_POINT)
    by_day: dict[int, tuple[list[float], list[float]]] = {}
    for score, positive, day in scored:
        by_day.setdefault(day, ([], []))[0 if positive else 1].append(score)
    figures.checkpoint_aucs = {clock.label(day): round(value, 4) for day, (pos, neg) in sorted(by_day.items())
                               if (value := auc(pos, neg)) is not None}
    return figures


def auc(positives: Sequence[float], negatives: Sequence[float]) -> float | None:
    """P(a positive scores above a negative), ties half (None: a class is empty)."""
    if not positives or not negatives:
        return None
    ordered = sorted(negatives)
    wins = 0.0
    for value in positives:
        below = bisect.bisect_left(ordered, value)
        wins += below + (bisect.bisect_right(ordered, value) - below) / 2
    return wins / (len(positives) * len(negatives))


def fpr_at_recall(scored: Sequence[tuple[float, bool, Any]], recall: float) -> float | None:
    """Share of negatives at or above the highest cut of the scores that holds ``recall`` of the
    positives (None: a class is empty)."""
    positives = sum(1 for _, p, _ in scored if p)
    negatives = len(scored) - positives
    if not positives or not negatives:
        return None
    counts: dict[float, list[int]] = {}
    for score, positive, _ in scored:
        counts.setdefault(score, [0, 0])[0 if positive else 1] += 1
    tp = fp = 0
    for score in sorted(counts, reverse=True):
        tp += counts[score][0]
        fp += counts[score][1]
        if tp >= recall * positives:
            break
    return fp / negatives


def band_changes_per_month(changes: Mapping[str, Sequence[int]], subjects: Sequence[Subject]) -> float | None:
    """Median over users of their band changes per 30 days observed (at least 30 days counted)."""
    rates = []
    for subject in subjects:
        times = changes.get(subject.user, ())
        n = sum(1 for t in times if t <= subject.end_ms)
        days = max(30.0, (subject.end_ms - subject.first_ms) / MS_PER_DAY)
        rates.append(n * 30 / days)
    return statistics.median(rates) if rates else None



class BandChange(NamedTuple):
    """One ``churn_risk`` signal, as the backtest reads it."""

    ms: int
    day: int
    band: int
    probability: float | None


class PipelineRisk:
    """The pipeline's churn-risk signals per user: its high flags and its current risk at any day's
    end. With a trace of every judgement (``[risk].trace_topic``: ``user_id``, ``day``, ``risk``),
    the current risk is the last judgement's; without one, the last signal's probability, or its
    band where it has none."""

    def __init__(self, signals: Iterable[Mapping[str, Any]], clock: DayClock, flag_band: str = "high",
                 trace: Iterable[Mapping[str, Any]] = ()) -> None:
        self.changes: dict[str, list[BandChange]] = {}
        for sig in signals:
            if sig.get("type") != "churn_risk" or not sig.get("user_id") or sig.get("to") not in RISK_BANDS:
                continue
            probability = sig.get("probability")
            self.changes.setdefault(sig["user_id"], []).append(BandChange(
                int(sig["event_time_ms"]), clock.parse(sig["day"]), RISK_BANDS.index(sig["to"]),
                None if probability is None else float(probability)))
        for changes in self.changes.values():
            changes.sort(key=lambda c: (c.day, c.ms))  # by judgement day: what was known at a day's end
        self.flag_band = RISK_BANDS.index(flag_band)
        self._days = {user: [c.day for c in changes] for user, changes in self.changes.items()}
        judged: dict[str, list[tuple[int, int, float]]] = {}
        for n, record in enumerate(trace):
            judged.setdefault(record["user_id"], []).append((clock.parse(record["day"]), n, float(record["risk"])))
        self._trace = {user: sorted(values) for user, values in judged.items()}
        """Per user, (day, arrival, risk) of every judgement, in judgement order."""
        self._trace_days = {user: [d for d, _, _ in values] for user, values in self._trace.items()}

    def flags(self) -> dict[str, list[Flag]]:
        """Episodes at the flag band or above."""
        out: dict[str, list[Flag]] = {}
        for user, changes in self.changes.items():
            episodes: list[Flag] = []
            start: BandChange | None = None
            for change in sorted(changes):
                if change.band >= self.flag_band and start is None:
                    start = change
                elif change.band < self.flag_band and start is not None:
                    episodes.append(Flag(start.ms, start.day, change.ms))
                    start = None
            if start is not None:
                episodes.append(Flag(start.ms, start.day))
            if episodes:
                out[user] = episodes
        return out

    @property
    def traced(self) -> bool:
        return bool(self._trace)

    def risk(self, user: str, day: int) -> float:
        """The risk of the last judgement of ``day`` or earlier (0 before any); without a trace, the
        probability of the last signal judged for ``day`` or earlier (its band where it has no
        probability; low, 0, before any signal)."""
        if self._trace:
            trace_days = self._trace_days.get(user)
            if not trace_days:
                return 0.0
            index = bisect.bisect_right(trace_days, day) - 1
            return self._trace[user][index][2] if index >= 0 else 0.0
        days = self._days.get(user)
        if not days:
            return 0.0
        index = bisect.bisect_right(days, day) - 1
        if index < 0:
            return 0.0
        change = self.changes[user][index]
        return change.probability if change.probability is not None else float(change.band)

    def change_times(self) -> dict[str, list[int]]:
        return {user: [c.ms for c in changes] for user, changes in self.changes.items()}
