"""The backtest: its metric definitions against hand-computed cases, and the command end to end
(embedded broker, a real worker) on a small history whose outcome is worked out by hand."""

from __future__ import annotations

import io
import subprocess
import sys
from pathlib import Path

import orjson
import pytest

from streams.capabilities.sessions import iso_ms
from streams.config import MS_PER_DAY
from streams.tools.backtest_scoring import high_flags, read_labels, score_flags
from tests.support.engagement_feed import History, at, weekdays

D = MS_PER_DAY


def test_metrics_of_a_small_hand_computed_case() -> None:
    churned = {"a": 100 * D, "b": 100 * D, "c": 100 * D, "d": 100 * D}
    flags = {
        "a": [80 * D, 95 * D],   # warned 20 days ahead: caught, lead 20
        "b": [97 * D],           # 3 days ahead: correct flag, but too late
        "c": [40 * D],           # 60 days ahead: outside the 35-day window: missed (yet a correct flag)
        "x": [50 * D],           # never churned: false positive
        "d": [101 * D],          # flagged after churning: not a correct flag, and missed
    }
    score = score_flags(flags, churned, lead_days=7, window_days=35)
    assert (score.churners, score.flagged, score.correct, score.caught, score.late, score.missed) == (4, 5, 3, 1, 1, 2)
    assert score.precision == 3 / 5 and score.recall == 1 / 4
    assert score.f1 == pytest.approx(2 * 0.6 * 0.25 / 0.85)
    assert score.median_lead_days == 20 and score.median_lead_days_all == (20 + 3) / 2
    assert score.false_positives == ["d", "x"]


def test_metrics_with_no_flags_and_no_labels() -> None:
    empty = score_flags({}, {})
    assert (empty.precision, empty.recall, empty.f1, empty.median_lead_days) == (0.0, 0.0, 0.0, None)


def test_high_flags_take_churn_risk_signals_to_high_only() -> None:
    signals = [{"type": "churn_risk", "to": "high", "user_id": "a", "event_time_ms": 5},
               {"type": "churn_risk", "to": "medium", "user_id": "a", "event_time_ms": 1},
               {"type": "churn_risk", "to": "high", "user_id": "a", "event_time_ms": 2},
               {"type": "account_health", "to": "red", "user_id": None, "event_time_ms": 3},
               {"type": "lifecycle", "to": "dormant", "user_id": "b", "event_time_ms": 4}]
    assert high_flags(signals) == {"a": [2, 5]}


def test_labels_read_rfc3339_or_epoch_ms_with_or_without_a_header() -> None:
    text = "user_id,churned_at\nu1,2026-01-05T10:00:00.000Z\nu2,1767607200000\n\n"
    assert read_labels(io.StringIO(text)) == {"u1": 1767607200000, "u2": 1767607200000}
    with pytest.raises(ValueError, match="line 2"):
        read_labels(io.StringIO("u1,2026-01-05\nu2,yesterday\n"))


@pytest.mark.integration
def test_backtest_command_reports_the_hand_computed_figures(tmp_path: Path) -> None:
    """Churners: ``cancel`` (cancel intent on day 37, churns on day 55: caught 18 days ahead),
    ``drop`` (high on day 42's assessment, churns on day 49: 6.4 days ahead, too late) and
    ``silent`` (stops on day 18; high only 28 silent days later, after churning). Flagged
    without churning: ``newbie-silent``. Steady users: nothing."""
    h = History()
    for user in [f"steady-{i}" for i in range(6)]:
        h.days(user, weekdays(0, 55))
    h.days("silent", weekdays(0, 18))
    h.days("drop", weekdays(0, 34))
    h.days("drop", [35, 42, 49], minutes=4, cores=0)
    h.days("cancel", [d for d in weekdays(0, 55) if d != 37])
    h.session("cancel", 37, extra=["cancel_intent"])
    h.days("newbie-silent", [21, 22])
    events = tmp_path / "events.jsonl"
    events.write_bytes(b"".join(orjson.dumps(d) + b"\n" for d in h.sorted()))
    last = {user: max(d["timestamp"] for d in h.docs if d["user_id"] == user) for user in ("silent", "drop")}
    labels = tmp_path / "churn.csv"
    labels.write_text("user_id,churned_at\n" + "".join(
        f"{user},{iso_ms(ms)}\n" for user, ms in [("silent", last["silent"]), ("drop", last["drop"]),
                                                  ("cancel", at(55))]))
    out = tmp_path / "result.json"
    run = subprocess.run([sys.executable, "-m", "streams", "backtest", str(events), "--labels", str(labels),
                          "--json-out", str(out), "-q"], capture_output=True, text=True, timeout=300, cwd=tmp_path,
                         env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)})
    assert run.returncode == 0, run.stderr[-3000:]
    result = orjson.loads(out.read_bytes())
    assert (result["churners"], result["flagged"], result["correct"], result["caught"], result["late"],
            result["missed"]) == (3, 4, 2, 1, 1, 1)
    assert result["precision"] == 0.5 and result["recall"] == pytest.approx(1 / 3)
    assert result["false_positives"] == ["newbie-silent", "silent"]
    # cancel: the intent at day 37 10:20:01, the churn at day 55 10:00
    assert result["median_lead_days"] == pytest.approx((at(55) - at(37, 20) - 1000) / D)
    assert "precision" in run.stdout and "0.500" in run.stdout
