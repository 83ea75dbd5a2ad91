"""``streams backtest`` end to end (its own embedded broker, a real worker process) on a small
history whose figures are worked out by hand, from a gzip file whose track events carry no type."""

from __future__ import annotations

import gzip
import subprocess
import sys
from pathlib import Path

import orjson
import pytest

from streams.config import MS_PER_DAY, MS_PER_MINUTE
from streams.core.eventtime import iso_ms
from tests.support.engagement_feed import DAY0_MS, History, at, weekdays

pytestmark = pytest.mark.integration
D = MS_PER_DAY
STEADY = [f"steady-{i}" for i in range(6)]


def test_backtest_command_reports_the_hand_computed_figures(tmp_path: Path) -> None:
    """Churners: ``cancel`` (cancel intent on day 37, churns on day 55: warned 18 days ahead),
    ``drop`` (high on day 42's assessment, churns on day 49: 6.4 days ahead) and ``silent`` (stops
    on day 18, high only 28 silent days later, after churning: not flagged). Flagged without
    churning: ``newbie-silent``. Steady users: nothing. Seven checkpoints over days 0..53."""
    h = History()
    for user in STEADY:
        h.days(user, weekdays(0, 55))
    h.days("silent", weekdays(0, 18))
    h.days("drop", weekdays(0, 34))
    h.days("drop", [35, 42, 49], minutes=4, cores=0)
    h.days("cancel", [d for d in weekdays(0, 55) if d != 37])
    h.session("cancel", 37, extra=["cancel_intent"])
    h.days("newbie-silent", [21, 22])
    docs = h.sorted()
    for doc in docs:
        if doc["type"] == "track":
            del doc["type"]  # read as track by the backtest
    events = tmp_path / "events.jsonl.gz"
    events.write_bytes(gzip.compress(b"".join(orjson.dumps(d) + b"\n" for d in docs)))
    last = {user: max(d["timestamp"] for d in h.docs if d["user_id"] == user) for user in ("silent", "drop")}
    labels = tmp_path / "churn.csv"
    rows = [f"{u},0," for u in [*STEADY, "newbie-silent"]] + \
        ["silent,1,", f"drop,1,{iso_ms(last['drop'])}", f"cancel,1,{at(55)}"]  # silent: its last event
    labels.write_text("user_id,churned,churn_time\n" + "\n".join(rows) + "\n")
    out = tmp_path / "result.json"
    run = subprocess.run([sys.executable, "-m", "streams", "backtest", str(events), "--labels", str(labels),
                          "--json-out", str(out), "-q"], capture_output=True, text=True, timeout=300, cwd=tmp_path,
                         env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)})
    assert run.returncode == 0, run.stderr[-3000:]
    result = orjson.loads(out.read_bytes())
    assert result["events"] == len(docs) and result["given_type"] == sum(1 for d in docs if "type" not in d)
    assert (result["churners"], result["non_churners"]) == (3, 7)
    rows_by_name = {row["name"]: row for row in result["rows"]}
    pipeline = rows_by_name["pipeline: band high"]
    cancel_lead = (at(55) - at(37, 20) - 1000) / D  # the intent at day 37 10:20:01
    drop_lead = (last["drop"] - (DAY0_MS + 43 * D + 31 * MS_PER_MINUTE)) / D  # day 42 judged at 00:31 next day
    assert (pipeline["flagged"], pipeline["flagged_churners"], pipeline["recalled"], pipeline["caught"]) == (3, 2, 2, 1)
    assert pipeline["precision"] == pytest.approx(2 / 3) and pipeline["recall_lead"] == pytest.approx(1 / 3)
    assert pipeline["median_lead_days"] == pytest.approx((cancel_lead + drop_lead) / 2)
    assert pipeline["nonchurners_flagged"] == pytest.approx(1 / 7)
    everyone = rows_by_name["everyone, at once"]
    assert (everyone["precision"], everyone["recall"], everyone["recall_lead"], everyone["auc"]) == \
        (pytest.approx(0.3), 1.0, 1.0, 0.5)
    assert everyone["median_lead_days"] == pytest.approx((last["drop"] - at(0)) / D)  # leads 18, 49, 55 days
    silent = rows_by_name["no activity for 7 days"]  # newbie-silent only; silent's flag comes after it churned
    assert (silent["flagged"], silent["recall"], silent["nonchurners_flagged"]) == (1, 0.0, pytest.approx(1 / 7))
    assert len(result["checkpoints"]) == 7
    assert "pipeline: band high" in run.stdout and "0.667" in run.stdout
