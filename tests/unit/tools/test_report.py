"""The HTML report: built from snapshots, drawn by a real browser."""

from __future__ import annotations

import re
from pathlib import Path

import orjson
import pytest

from streams.config import load_settings
from streams.tools.report import latest_snapshots, write_report
from tests.support.browser import rendered_dom, screenshot

pytestmark = pytest.mark.needs_debian("chromium")


def snapshot(kind: str, period: str, final: bool, **figures: float) -> dict:
    return {"id": f"{kind}|{period}|{final}", "kind": kind, "period": period, "final": final, "figures": figures}


def test_final_snapshots_win_over_provisional() -> None:
    chosen = latest_snapshots([
        snapshot("activity_day", "2026-11-01", True, dau=10),
        snapshot("activity_day", "2026-11-01", False, dau=7),  # a late provisional repeat
        snapshot("activity_day", "2026-11-02", False, dau=3),
        snapshot("activity_day", "2026-11-02", False, dau=5),
        {"topic": "x", "value": snapshot("sessions_day", "2026-11-01", True, sessions=4)},  # tail --json line
        {"unrelated": True},
    ])
    assert chosen["activity_day"]["2026-11-01"]["figures"]["dau"] == 10
    assert chosen["activity_day"]["2026-11-02"]["figures"]["dau"] == 5
    assert chosen["sessions_day"]["2026-11-01"]["figures"]["sessions"] == 4


def test_report_charts_are_drawn_in_chromium(tmp_path: Path) -> None:
    records = []
    for day in range(1, 15):
        period = f"2026-11-{day:02d}"
        records.append(snapshot("activity_day", period, day < 14, dau=100 + day, wau=300 + day, mau=900.0,
                                stickiness_dau_mau=(100 + day) / 900.0))
        records.append(snapshot("sessions_day", period, day < 14, sessions=250 + 3 * day, active_time_s=9000.0 + day))
    source = tmp_path / "snapshots.jsonl"
    source.write_bytes(b"\n".join(orjson.dumps(r) for r in records))
    page = tmp_path / "report.html"
    shown = write_report(load_settings(env={}), page, source=source)
    assert shown == 28

    dom = rendered_dom(page, tmp_path / "profile")
    assert 'data-charts-drawn="4"' in dom  # activity counts + ratios, sessions counts + durations
    paths = re.findall(r'<path d="M([^"]+)"[^>]*data-series="([^"]+)"', dom)
    assert {name for _, name in paths} == {"dau", "wau", "mau", "stickiness_dau_mau", "sessions", "active_time_s"}
    for d, name in paths:  # every series is a line through all 14 days
        assert d.count("L") == 13, name
    png = screenshot(page, tmp_path / "report.png", tmp_path / "profile2")
    assert png.exists() and png.stat().st_size > 10_000


def test_empty_report_says_so(tmp_path: Path) -> None:
    source = tmp_path / "none.jsonl"
    source.write_text("")
    page = tmp_path / "empty.html"
    assert write_report(load_settings(env={}), page, source=source) == 0
    assert "No snapshots were found" in rendered_dom(page, tmp_path / "profile")
