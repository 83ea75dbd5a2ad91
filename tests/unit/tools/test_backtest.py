"""The backtest's reading, definitions and baselines against hand-computed cases (no broker)."""

from __future__ import annotations

import gzip
import io
from pathlib import Path

import orjson
import pytest

from streams.config import MS_PER_DAY, load_settings
from streams.core.calendar import DayClock
from streams.core.routing import HomePartitions
from streams.tools.backtest import SYNTHETIC_PREFIX, watermark_pushers
from streams.tools.backtest_baselines import bottom_of_account, everyone, silent
from streams.tools.backtest_input import (
    Checkpoints,
    Histories,
    Label,
    Labels,
    ReadStats,
    checkpoints_option,
    count_lines,
    read_checkpoints,
    read_labels,
    records,
    spread_days,
)
from streams.tools.backtest_scoring import (
    Figures,
    Flag,
    Judgement,
    PipelineRisk,
    Subject,
    auc,
    band_changes_per_month,
    fpr_at_recall,
    judge_flags,
    judge_ranking,
    population,
)

D = MS_PER_DAY
UTC = DayClock("UTC")


# --- reading ---------------------------------------------------------------------------------

def test_labels_three_columns_with_empty_churn_times() -> None:
    text = "user_id,churned,churn_time\nu1,1,2026-01-05T10:00:00.000Z\nu2,0,\nu3,1,\nu4,true,1767607200000\n"
    labels = read_labels(io.StringIO(text))
    assert labels.complete
    assert labels.users == {"u1": Label(True, 1767607200000), "u2": Label(False), "u3": Label(True),
                            "u4": Label(True, 1767607200000)}


def test_labels_of_churners_only_and_their_errors() -> None:
    labels = read_labels(io.StringIO("user_id,churned_at\nu1,2026-01-05T10:00:00.000Z\n\n"))
    assert not labels.complete and labels.users == {"u1": Label(True, 1767607200000)}
    with pytest.raises(ValueError, match="line 2"):
        read_labels(io.StringIO("u1,2026-01-05T10:00:00Z\nu2,yesterday\n"))
    with pytest.raises(ValueError, match="line 2: churned must be"):
        read_labels(io.StringIO("user_id,churned,churn_time\nu1,maybe,\n"))


def _lines(*docs: dict) -> bytes:
    return b"".join(orjson.dumps(d) + b"\n" for d in docs)


def test_gzip_is_read_directly_and_missing_type_and_id_get_defaults(tmp_path: Path) -> None:
    body = _lines({"event_id": "e1", "type": "page", "user_id": "a", "timestamp": "2026-01-05T10:00:00Z"},
                  {"event": "video", "user_id": "b", "account_id": "c1", "timestamp": 1767607200000}) + b"not json\n"
    plain, packed = tmp_path / "events.jsonl", tmp_path / "events.data"  # a gzip file need not say so
    plain.write_bytes(body)
    packed.write_bytes(gzip.compress(body))
    outs = []
    for path in (plain, packed):
        assert count_lines(path) == 3
        histories, stats = Histories(), ReadStats()
        outs.append(list(records(path, histories, stats)))
        assert (stats.events, stats.skipped, stats.typed, stats.identified) == (2, 1, 1, 1)
        assert histories.users["b"].account == "c1" and list(histories.users["b"].activity) == [1767607200000]
    assert outs[0] == outs[1]
    (_, first), (key, second) = outs[0]
    assert first == body.split(b"\n")[0]  # untouched lines are sent as they are
    doc = orjson.loads(second)
    assert key == b"b" and doc["type"] == "track" and len(doc["event_id"]) == 24


def test_count_lines_without_a_final_newline(tmp_path: Path) -> None:
    path = tmp_path / "e.jsonl"
    path.write_bytes(b'{"a":1}\n{"a":2}')
    assert count_lines(path) == 2


def test_checkpoints_spread_or_per_account(tmp_path: Path) -> None:
    assert spread_days(100, 180, 7) == (110, 120, 130, 140, 150, 160, 170)
    text = "account_id,first_day,last_day\ncourse_1,2014-05-25,2014-06-23\n"
    marks = read_checkpoints(io.StringIO(text), UTC)
    assert marks.by_account == {"course_1": UTC.parse("2014-06-23")}
    with pytest.raises(ValueError, match="expected columns"):
        read_checkpoints(io.StringIO("course,day\n"), UTC)
    with pytest.raises(ValueError, match="neither a number nor a file"):
        checkpoints_option("seven", UTC, 0, D)
    assert checkpoints_option("3", UTC, 100 * D, 180 * D).days == (120, 140, 160)


# --- flags -----------------------------------------------------------------------------------

def test_flag_figures_of_a_hand_computed_case() -> None:
    """Churners a..d churn on day 100; x and y never churn (observed until day 120)."""
    subjects = [Subject(u, True, 100 * D, None, 0) for u in "abcd"] + \
        [Subject(u, False, 120 * D, None, 0) for u in "xy"]
    flags = {
        "a": [Flag(80 * D, 80), Flag(95 * D, 95)],  # on 20 days ahead: recalled, lead 20
        "b": [Flag(97 * D, 97)],                    # 3 days ahead: recalled, lead 3 (< 7)
        "c": [Flag(40 * D, 40, 50 * D)],            # lifted 50 days before: flagged, not recalled
        "d": [Flag(101 * D, 101)],                  # after churning: not flagged
        "x": [Flag(50 * D, 50, 60 * D)],            # a non-churner flagged
    }
    f = judge_flags(Figures("p"), flags, subjects, lead_days=7, window_days=35)
    assert (f.churners, f.non_churners, f.flagged, f.flagged_churners, f.recalled, f.caught) == (4, 2, 4, 3, 2, 1)
    assert f.precision == 3 / 4 and f.recall == 2 / 4 and f.recall_lead == 1 / 4
    assert f.f1 == pytest.approx(2 * 0.75 * 0.5 / 1.25)
    assert f.median_lead_days == (20 + 3) / 2 and f.nonchurners_flagged == 1 / 2


def test_flags_after_a_checkpoint_day_do_not_count() -> None:
    """Observed until day 30 (per-account checkpoint): a flag judged for day 30 counts although
    it is made after midnight; one for day 31 does not."""
    subjects = [Subject("a", True, 31 * D, 30, 0), Subject("b", False, 31 * D, 30, 0)]
    flags = {"a": [Flag(31 * D + 1000, 30)], "b": [Flag(32 * D + 1000, 31)]}
    f = judge_flags(Figures("p"), flags, subjects, lead_days=7, window_days=35)
    assert (f.flagged, f.recalled, f.caught, f.nonchurners_flagged) == (1, 1, 0, 0.0)
    assert f.median_lead_days == 0


# --- ranking ---------------------------------------------------------------------------------

def test_auc_and_false_positives_at_recall() -> None:
    # pairs (p, n): 3>1, 3>2, 3=3 (half), 2>1, 2=2 (half), 2<3 -> 4 of 6
    assert auc([3, 2], [1, 2, 3]) == pytest.approx(4 / 6)
    assert auc([], [1]) is None
    scored = [(0.9, True, 0), (0.8, False, 0), (0.7, True, 0), (0.7, False, 0), (0.1, True, 0), (0.0, False, 0)]
    # 60% of 3 positives needs 2: cut at 0.7 takes 2 positives and 2 of 3 negatives
    assert fpr_at_recall(scored, 0.6) == pytest.approx(2 / 3)


def test_population_per_account_checkpoints() -> None:
    """Accounts c1 (judged on day 30) and c2 (no checkpoint); u3 was first seen after day 30."""
    h = Histories()
    h.note("u1", 10 * D, True, "c1")
    h.note("u2", 12 * D, True, "c1")
    h.note("u3", 31 * D, True, "c1")
    h.note("u4", 12 * D, True, "c2")
    h.finish()
    labels = Labels({"u1": Label(True), "u2": Label(False), "u3": Label(True), "u4": Label(False),
                     "u9": Label(True)}, complete=True)
    people = population(labels, h, Checkpoints(by_account={"c1": 30}), UTC, 35)
    assert people.unseen == 1 and people.unjudged == 1
    assert [(s.user, s.end_ms, s.end_day) for s in people.subjects] == \
        [("u1", 31 * D, 30), ("u2", 31 * D, 30), ("u3", 31 * D, 30)]
    assert people.judgements == [Judgement("u1", 30, True), Judgement("u2", 30, False)]


def test_population_on_spread_checkpoints() -> None:
    """Checkpoint day 40. Churners: a (active day 30, churns day 50: within 35 days, positive), b (day 90: later, left
    out), c (day 35: gone before). Non-churners: d (active day 39), e (last active day 2: not
    around any more), f (first seen day 41). Churners-only labels: d, e, f are non-churners."""
    h = Histories()
    for user, days in {"a": [1, 30, 50], "b": [1, 39, 90], "c": [1, 35], "d": [1, 39, 60], "e": [1, 2],
                       "f": [41]}.items():
        for day in days:
            h.note(user, day * D + 1000, True, None)
    h.finish()
    labels = Labels({u: Label(True, d * D + 1000) for u, d in {"a": 50, "b": 90, "c": 35}.items()}, complete=False)
    people = population(labels, h, Checkpoints(days=(40,)), UTC, 35)
    assert sorted(people.judgements) == [Judgement("a", 40, True), Judgement("d", 40, False)]
    assert {s.user: s.churned for s in people.subjects} == {"a": True, "b": True, "c": True, "d": False,
                                                            "e": False, "f": False}


def test_pipeline_risk_reads_bands_flags_and_probabilities() -> None:
    def sig(user: str, day: int, to: str, **extra: float) -> dict:
        return {"type": "churn_risk", "user_id": user, "to": to, "day": UTC.label(day),
                "event_time_ms": (day + 1) * D + 60_000, **extra}

    signals = [sig("a", 10, "medium"), sig("a", 12, "high"), sig("a", 20, "low"), sig("a", 25, "high"),
               sig("b", 5, "high", probability=0.8), {"type": "engagement_score", "user_id": "a"}]
    risk = PipelineRisk(signals, UTC)
    assert risk.flags() == {"a": [Flag(13 * D + 60_000, 12, 21 * D + 60_000), Flag(26 * D + 60_000, 25)],
                            "b": [Flag(6 * D + 60_000, 5)]}
    assert [risk.risk("a", d) for d in (9, 10, 12, 19, 20, 30)] == [0.0, 1.0, 2.0, 2.0, 0.0, 2.0]
    assert risk.risk("b", 6) == 0.8 and risk.risk("zz", 6) == 0.0
    figures = judge_ranking(Figures("p"), risk.risk, [Judgement("a", 12, True), Judgement("b", 4, False)], UTC)
    assert figures.auc == 1.0 and figures.checkpoint_aucs == {}


def test_band_changes_per_month() -> None:
    """a: 3 changes in 90 days observed (1 per 30 days); b: 2 in 10 days (counted as 30: 2)."""
    subjects = [Subject("a", False, 90 * D, None, 0), Subject("b", False, 10 * D, None, 0),
                Subject("c", False, 90 * D, None, 0)]
    changes = {"a": [D, 2 * D, 3 * D, 95 * D], "b": [D, 2 * D]}
    assert band_changes_per_month(changes, subjects) == 1.0  # median of 1, 2, 0


# --- baselines -------------------------------------------------------------------------------

def test_silence_baseline() -> None:
    """a: active days 0, 3, 20 (a 17-day gap: flagged from day 10 until day 20), then silent to the
    end (day 30): flagged again from day 27. b: active every day."""
    h = Histories()
    for day in (0, 3, 20):
        h.note("a", day * D, True, None)
    for day in range(31):
        h.note("b", day * D, True, None)
    h.finish()
    rule, ranking = silent(h, UTC)
    assert rule.flags == {"a": [Flag(10 * D, 10, 20 * D), Flag(27 * D, 27)]}
    assert ranking.risk("a", 9) == 7.0 and rule.risk("a", 9) == 1.0 and rule.risk("a", 8) == 0.0
    assert everyone(h, UTC).flags == {"a": [Flag(0, 0)], "b": [Flag(0, 0)]}


def test_bottom_of_account_baseline() -> None:
    """Account k, five users over days 0..9: u0 active every day, u1 every other day, u2 on day 0
    only, u3 and u4 every day. On day 9 the 14-day counts are 10, 5, 1, 10, 10: u2 ranks 0.5/5 =
    0.1 (flagged), u1 1.5/5 = 0.3. On day 0 everyone has 1 (rank 0.5). u2 is the bottom from day 1
    (counts 2, 1, 1, 2, 2: u1 and u2 share 2/5 = 0.2, not below 0.2); from day 2 (3, 2, 1, 3, 3)
    u2 ranks 0.1."""
    h = Histories()
    days = {"u0": range(10), "u1": range(0, 10, 2), "u2": [0], "u3": range(10), "u4": range(10)}
    for user, active in days.items():
        for day in active:
            h.note(user, day * D + 1000, True, "k")
    h.finish()
    rule, ranking = bottom_of_account(h, UTC, 35, wanted={9})
    assert rule.flags == {"u2": [Flag(3 * D, 2)]}
    assert ranking.risk("u2", 9) == pytest.approx(0.9) and ranking.risk("u1", 9) == pytest.approx(0.7)
    assert rule.risk("u2", 9) == 1.0 and rule.risk("u1", 9) == 0.0


def test_watermark_pushers_reach_every_partition() -> None:
    settings = load_settings(env={}, overrides={"partitions": 6})
    pushers = watermark_pushers(settings, 1_000_000)
    home = HomePartitions(6, 100)
    assert sorted(home(key) for key, _ in pushers) == list(range(6))
    assert all(orjson.loads(v)["user_id"].startswith(SYNTHETIC_PREFIX) for _, v in pushers)


def test_pipeline_risk_from_a_trace_of_judgements() -> None:
    """With a trace, the current risk is the last judgement's of the day or before (the last of a
    day when there are several), whatever the signals say."""
    trace = [{"user_id": "a", "day": UTC.label(d), "risk": r} for d, r in ((10, 0.2), (12, 0.5), (12, 0.6), (20, 0.1))]
    risk = PipelineRisk([{"type": "churn_risk", "user_id": "a", "to": "high", "day": UTC.label(12),
                          "event_time_ms": 13 * D}], UTC, trace=trace)
    assert risk.traced
    assert [risk.risk("a", d) for d in (9, 10, 11, 12, 19, 25)] == [0.0, 0.2, 0.2, 0.6, 0.6, 0.1]
    assert risk.risk("b", 12) == 0.0 and risk.flags() == {"a": [Flag(13 * D, 12)]}
