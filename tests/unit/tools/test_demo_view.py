"""The demo's view: each signal row says what changed, lags are what was sent and not consumed and
how far event time is behind the simulation, and the phase admits when the pipeline is behind."""

from __future__ import annotations

from streams.config import load_settings
from streams.tools.demo_view import DemoView, change, consumed, duration


def test_every_signal_type_says_what_changed() -> None:
    assert change({"type": "churn_risk", "from": "low", "to": "high"}) == "low -> high"
    assert change({"type": "lifecycle", "from": None, "to": "new"}) == "none -> new"
    assert change({"type": "engagement_score", "threshold": 50.0, "direction": "down", "score": 41,
                   "previous_score": 58}) == "58 -> 41 (down through 50)"
    assert change({"type": "account_health", "from": "yellow", "to": "red", "health": 31.5}) == "yellow -> red"


def test_lags_and_phase() -> None:
    view = DemoView(load_settings(env={}), users=10, live=False)
    day = 86_400_000
    doc = {"outcomes": {"applied": 800, "duplicate": 5, "late": 5, "dead_letter": 40, "rekeyed": 10},
           "partitions": {"0": {"watermark_ms": 20 * day}, "1": {"watermark_ms": 2 * day}, "2": {"watermark_ms": -1}}}
    view.sent, view.sim_now_ms = 1000, 23 * day
    view.phase, view.speed = "live at 3600x", 3600.0
    assert consumed(doc) == 850
    assert view.lags(doc) == (150, 2 * day, 21 * day)  # the slowest partition that has a watermark
    assert view.status(doc) == "live at 3600x (the pipeline is catching up: 21.0d of event time behind)"
    line = view.line(doc)
    assert "sent 1,000, consumed 850 (lag 150)" in line and "(21.0d behind)" in line
    for partition in ("0", "1"):  # a minute behind: keeping up
        doc["partitions"][partition]["watermark_ms"] = 23 * day - 60_000
    assert view.status(doc) == "live at 3600x"
    assert duration(90_000) == "1.5m" and duration(3 * 86_400_000) == "3.0d" and duration(12_000) == "12s"
