"""The HTML report: built from snapshots and signals, drawn by a real browser, and what is drawn
(charts, series, points, axis titles, the accounts named) checked against the data."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import orjson
import pytest

from streams.config import load_settings
from streams.tools.report import latest_snapshots, risk_chart, write_report
from tests.support.browser import rendered_dom, screenshot

pytestmark = pytest.mark.needs_debian("chromium")
DAYS = [f"2026-11-{day:02d}" for day in range(1, 16)]
FINAL_DAYS, PROVISIONAL_DAY, PARTIAL_DAY = DAYS[:13], DAYS[13], DAYS[14]


def snapshot(kind: str, period: str, final: bool, reported: int = 4, **figures: Any) -> dict[str, Any]:
    return {"id": f"{kind}|{period}|{final}|{reported}", "kind": kind, "period": period, "final": final,
            "partitions": 4, "partitions_reported": reported, "figures": figures}


def test_final_snapshots_win_over_provisional_and_complete_over_partial() -> None:
    chosen = latest_snapshots([
        snapshot("activity_day", "2026-11-01", True, dau=10),
        snapshot("activity_day", "2026-11-01", False, dau=7),  # a late provisional repeat
        snapshot("activity_day", "2026-11-02", False, dau=5),
        snapshot("activity_day", "2026-11-02", False, reported=2, dau=3),  # fewer partitions, later
        {"topic": "x", "value": snapshot("sessions_day", "2026-11-01", True, sessions=4)},  # tail --json line
        {"unrelated": True},
    ])
    assert chosen["activity_day"]["2026-11-01"]["figures"]["dau"] == 10
    assert chosen["activity_day"]["2026-11-02"]["figures"]["dau"] == 5
    assert chosen["sessions_day"]["2026-11-01"]["figures"]["sessions"] == 4


def health(index: int, day: int) -> float:
    return round(20 + 5 * index + (day % 3), 1)


def records() -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for i, period in enumerate(DAYS):
        final, reported = period in FINAL_DAYS, 1 if period == PARTIAL_DAY else 4
        dau, mau = 100 + i, 900
        out.append(snapshot("activity_day", period, final, reported, dau=dau, wau=300 + i, mau=mau, users=950,
                            lifecycle={"new": 50, "returning": 800, "resurrected": 20, "dormant": 80},
                            daily={"new": 5, "returning": dau - 7, "resurrected": 2, "dormant": 3},
                            stickiness={"dau_mau": dau / mau, "wau_mau": (300 + i) / mau}))
        out.append(snapshot("sessions_day", period, final, reported, sessions=250 + 3 * i,
                            duration_ms_sum=655_161_058 + i, active_time_ms_sum=400_000_000 + i,
                            duration_seconds_avg=1500.0 + i, active_time_seconds_avg=900.0 + i))
    for index in range(14):  # accounts, health rising with the index: 0..9 are the least healthy
        for day, period in enumerate(DAYS[:13]):
            out.append({"id": f"a{index}{period}", "kind": "account_health", "period": period, "final": True,
                        "account_id": f"acct-{index:02d}",
                        "figures": {"health": health(index, day), "band": "red" if index < 3 else "yellow",
                                    "seats": 10, "active_seats": 4, "arrow": "→"}})
    for user, moves in {"u1": [("2026-11-03", None, "medium"), ("2026-11-06", "medium", "high")],
                        "u2": [("2026-11-04", None, "high"), ("2026-11-09", "high", "low")],
                        "u3": [("2026-11-10", None, "medium")]}.items():
        for day, old, new in moves:
            at = int(DAYS.index(day)) * 86_400_000 + 1_793_491_200_000
            out.append({"id": f"{user}{day}", "type": "churn_risk", "user_id": user, "day": day,
                        "event_time_ms": at, "from": old, "to": new, "reasons": []})
    return out


def charts(dom: str) -> dict[str, str]:
    """The DOM of each drawn chart, by its data-chart key."""
    parts = re.split(r'<figure class="chart" data-chart="([^"]+)">', dom)
    return dict(zip(parts[1::2], parts[2::2]))


def drawn(chunk: str) -> dict[str, Any]:
    """What Plotly drew in one chart: axis titles, legend names, points (markers or bars) per trace."""
    traces = re.split(r'<g class="trace (?:scatter|bars)', chunk)[1:]
    return {"y": re.findall(r'class="ytitle"[^>]*>([^<]*)<', chunk),
            "x": re.findall(r'class="xtitle"[^>]*>([^<]*)<', chunk),
            "legend": sorted(re.findall(r'class="legendtext"[^>]*>([^<]*)<', chunk)),
            "points": [t.split('<g class="trace ')[0].count('class="point"') for t in traces],
            "yticks": re.findall(r'class="ytick"[^>]*>(?:<text[^>]*>)?([^<]*)<', chunk)}


def test_report_draws_what_the_data_says_in_chromium(tmp_path: Path) -> None:
    source = tmp_path / "records.jsonl"
    data = records()
    source.write_bytes(b"\n".join(orjson.dumps(r) for r in data))
    page = tmp_path / "report.html"
    shown = write_report(load_settings(env={}), page, source=source)
    assert shown == 2 * len(DAYS) + 14 * 13

    found = charts(rendered_dom(page, tmp_path / "profile"))
    drawn_days = len(DAYS) - 1  # the partial day is left out
    expected = {  # chart: (y axis title, series, points per series)
        "active-users": ("users", ["DAU", "MAU", "WAU"], drawn_days),
        "stickiness": ("share of monthly active users", ["DAU / MAU", "WAU / MAU"], drawn_days),
        "lifecycle-stock": ("users", ["dormant", "new", "resurrected", "returning"], drawn_days),
        "lifecycle-flows": ("users per day", ["active as new", "active as resurrected", "active as returning",
                                              "became dormant (below 0)"], drawn_days),
        "sessions": ("sessions", [], drawn_days),
        "session-length": ("minutes per session", ["average active time", "average duration"], drawn_days),
        "active-time": ("hours", [], drawn_days),
        "risk-bands": ("users", ["high", "medium"], len(DAYS)),
        "account-health": ("health (0-100)", sorted(f"acct-{i:02d}" for i in range(10)), 13),
    }
    for key, (y_title, names, points) in expected.items():
        seen = drawn(found[key])
        assert seen["y"] == [y_title], key
        assert seen["legend"] == names, key  # a single series has no legend
        assert seen["points"] == [points] * max(1, len(names)), key
        if key != "account-health":
            assert seen["x"] == ["day (event time)"], key
    for key in ("active-users", "sessions", "lifecycle-flows"):
        assert f"not drawn: {PARTIAL_DAY}" in found[key]
        assert ">provisional<" in found[key]  # the open day's band

    # The accounts most at risk, by name, the least healthy at the top (health rises with the index).
    at_risk = drawn(found["accounts-at-risk"])
    assert at_risk["points"] == [10] and at_risk["y"] == ["account"]
    assert at_risk["yticks"] == [f"acct-{i:02d}" for i in range(9, -1, -1)]  # ticks run bottom-up

    png = screenshot(page, tmp_path / "report.png", tmp_path / "profile2", size="1300,3400")
    assert png.exists() and png.stat().st_size > 50_000


def test_risk_bands_are_counted_from_the_signals() -> None:
    """Users per band at the end of each day, by replaying the changes independently."""
    signals = [r for r in records() if r.get("type") == "churn_risk"]
    chart = risk_chart(signals, DAYS)
    assert chart is not None
    counted = {trace.name: list(trace.y) for trace in chart.figure.data}
    expected: dict[str, list[int]] = {"medium": [], "high": []}
    for day in DAYS:
        latest: dict[str, str] = {}
        for s in sorted(signals, key=lambda s: s["day"]):
            if s["day"] <= day:
                latest[s["user_id"]] = s["to"]
        for band in expected:
            expected[band].append(list(latest.values()).count(band))
    assert counted == expected
    assert expected["high"][DAYS.index("2026-11-08")] == 2  # u1 raised, u2 not yet lowered


def test_empty_report_says_so(tmp_path: Path) -> None:
    source = tmp_path / "none.jsonl"
    source.write_text("")
    page = tmp_path / "empty.html"
    assert write_report(load_settings(env={}), page, source=source) == 0
    assert "No snapshots were found" in rendered_dom(page, tmp_path / "profile")
