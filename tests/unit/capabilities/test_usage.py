"""Core actions, feature usage, visit frequency and engagement, unit level: final day snapshots
compared with the batch reference over the accepted events, restart rebuilds, segments."""

from __future__ import annotations

from typing import Any

import msgpack
import pytest

from streams.capabilities.segment_reader import SegmentReader
from streams.capabilities.usage import UsagePartition, finish_usage_day, user_usage
from streams.config import ConfigError
from streams.core.calendar import DayClock
from streams.runtime.metrics import build_registry, describe
from tests.support import session_batch as sessionbatch
from tests.support.fakes import unit_settings
from tests.support.session_data import T0, Pipeline, doc, scenario

CLOCK = DayClock("UTC")


def compare_days(p: Pipeline, plans: dict[str, str] | None = None) -> dict[str, dict[str, Any]]:
    """Every final usage_day share equals the reference figures of that day; returns them."""
    finals = p.partials("usage_day")
    assert finals
    expected = sessionbatch.usage_days(p.accepted, p.settings, [CLOCK.parse(d) for d in finals], plans)
    for period, figures in finals.items():
        want = expected[CLOCK.parse(period)]
        segments = figures.pop("segments", {})
        if plans is not None:
            assert segments["plan"] == want.pop("segments_plan"), period
        assert figures == want, period
    return finals


def test_randomized_days_equal_the_batch_reference() -> None:
    stream, plans, _ = scenario(seed=7, users=80, start_ms=T0)
    p = Pipeline()
    p.feed(stream)
    p.sweep(days=40)  # past every 28 / 30-day window of the data
    finals = compare_days(p, plans)
    assert len(finals) >= 35
    busiest = max(finals.values(), key=lambda f: f["active_users"]["1d"])
    assert busiest["active_users"]["1d"] > 20 and busiest["visits"]["1d"] > busiest["active_users"]["1d"]
    assert busiest["core_actions"]["report_created"]["users"]["28d"] > 0
    assert busiest["features"]["reports"]["uses"]["28d"] > busiest["features"]["reports"]["users"]["28d"]
    assert all(f["active_users"]["30d"] == 0 for f in list(finals.values())[-3:])  # everyone went silent


def test_daily_cadence_and_weighted_core_actions() -> None:
    settings: dict[str, Any] = {"usage": {"cadence": "daily", "core_actions": [
        {"name": "big_export", "event": "export_completed", "where": {"rows": [1000, 5000]}, "weight": 2.5},
        {"name": "export_completed", "weight": 1.0}]}}
    p = Pipeline(**settings)
    docs = [doc(f"d{i}", i * 24 * 60, "clicked") for i in range(8)]  # 8 consecutive days
    docs += [doc("x1", 5, "export_completed", properties={"rows": 1000}),
             doc("x2", 6, "export_completed", properties={"rows": 7}),
             doc("x3", 7, "export_completed", user="u2", properties={"rows": 5000})]
    p.feed(sorted(docs, key=lambda d: d["timestamp"]))
    p.sweep(days=2)
    finals = compare_days(p)
    day7 = finals[CLOCK.label(CLOCK.day(T0) + 6)]
    assert day7["on_cadence_users_7d"] == 1  # active on all 7 days
    assert finals[CLOCK.label(CLOCK.day(T0) + 5)]["on_cadence_users_7d"] == 0
    first = finals[CLOCK.label(CLOCK.day(T0))]
    assert first["core_actions"]["big_export"]["count"]["1d"] == 2
    assert first["core_actions"]["export_completed"]["count"]["1d"] == 3
    assert first["core_actions_weighted"]["1d"] == 2 * 2.5 + 3 * 1.0


def test_restart_rebuilds_the_same_final_days() -> None:
    stream, plans, _ = scenario(seed=9, users=50, start_ms=T0)
    clean = Pipeline()
    clean.feed(stream)
    clean.sweep(days=35)

    first = Pipeline()
    cut = len(stream) * 2 // 3
    first.feed(stream[:cut])
    first.runtime.flush()
    restarted = Pipeline(table=first.table.recovered())
    restarted.offset = cut
    restarted.feed(stream[cut:])
    restarted.sweep(days=35)
    merged = {**first.partials("usage_day"), **restarted.partials("usage_day")}
    assert merged == clean.partials("usage_day")
    assert set(first.partials("usage_day")).isdisjoint(restarted.partials("usage_day"))


def test_a_user_is_counted_under_their_current_segment() -> None:
    p = Pipeline()
    p.feed([doc("i1", 0, None, kind="identify", traits={"plan": "free"}), doc("a", 1),
            doc("i2", 60, None, kind="identify", traits={"plan": "team"}), doc("b", 61),
            doc("c", 62, user="u2")])
    p.sweep(days=1)
    day = p.partials("usage_day")["2026-11-02"]
    plan = day["segments"]["plan"]
    assert plan["team"] == {"users_total": 1, "active_users_30d": 1, "visits_30d": 2}
    assert plan["free"] == {"users_total": 0, "active_users_30d": 0, "visits_30d": 0}
    assert plan["unknown"] == {"users_total": 1, "active_users_30d": 1, "visits_30d": 1}
    assert finish_usage_day(day)["segments"]["plan"]["team"]["engagement"] == 2.0


def test_engagement_figure_from_the_literature() -> None:
    """500 active of 1000 users, 4 visits each in 30 days -> engagement 2 (DESIGN.md)."""
    figures = finish_usage_day({"cadence": "weekly", "users_total": 1000,
                                "active_users": {"1d": 100, "7d": 300, "28d": 480, "30d": 500},
                                "visits": {"1d": 120, "7d": 600, "30d": 2000}, "on_cadence_users_7d": 300,
                                "features": {"api": {"users": {"1d": 5, "28d": 48}}}})
    assert figures["engagement"] == 2.0
    assert figures["visits_per_active_user"] == {"7d": 2.0, "30d": 4.0}
    assert figures["expected_visits_per_active_user"] == {"7d": 1.0, "30d": 30 / 7}
    assert figures["cadence_ratio"]["7d"] == 2.0
    assert figures["features"]["api"]["adoption"] == {"1d": 0.05, "28d": 0.1}
    assert finish_usage_day({"users_total": 0})["engagement"] is None


def test_segment_codes_read_from_the_record_agree_with_the_activity_view() -> None:
    stream, _, _ = scenario(seed=11, users=30, start_ms=T0)
    for d in stream[::7]:
        d["context"] = {"platform": "ios" if len(d["event_id"]) % 2 else "web", "country": "DE"}
    p = Pipeline()
    p.feed(stream)
    p.runtime.flush()
    part = p.runtime.processor(0)
    reader = SegmentReader(part.capabilities[0].ctx)
    activity = reader._peer()
    assert activity is not None
    seen = set()
    for _, state in p.runtime.store.items(0):
        view = activity.rules.new_view(state.ext.get("a"))
        codes = reader.codes(state)
        assert codes == tuple(entries[-1][1] if entries else None for entries in view.segs)
        seen.add(codes)
    assert len(seen) > 3


def test_light_users_cost_a_few_bytes() -> None:
    p = Pipeline()
    p.feed([doc("a", 0, "page_ping"), doc("b", 1, "feature_used", properties={"feature": "alerts"}), doc("c", 2)])
    p.sweep(days=3)
    p.runtime.flush()
    ((_, state),) = list(p.runtime.store.items(0))
    assert "s" not in state.ext  # nothing of sessions left once the session's day is final
    usage = len(msgpack.packb(state.ext["u"], use_bin_type=True))
    assert usage <= 24, state.ext["u"]


def test_prometheus_gauges_have_bounded_labels_and_sum_partitions() -> None:
    p = Pipeline()
    p.feed([doc("a", 0, "report_created"), doc("b", 1, "feature_used", properties={"feature": "api"}),
            doc("c", 2, "feature_used", user="u2", properties={"feature": "not-configured"})])
    samples = describe(build_registry(p.runtime))
    assert samples[("engagement_core_actions", (("action", "report_created"), ("window", "7d")))] == 1
    assert samples[("engagement_feature_users", (("feature", "api"), ("window", "28d")))] == 1
    assert samples[("engagement_usage_active_users", (("window", "1d"),))] == 2
    labels = {dict(k[1]).get("feature") for k in samples if k[0] == "engagement_feature_uses"}
    assert labels == set(p.settings.usage.features)
    assert samples[("engagement_sessions_open", ())] == 2


def test_bad_usage_settings_name_the_key() -> None:
    with pytest.raises(ConfigError, match="usage.cadence"):
        unit_settings(usage={"cadence": "hourly"})
    with pytest.raises(ConfigError, match="usage.feature_rules"):
        unit_settings(usage={"feature_rules": [{"event": "x"}]})
    with pytest.raises(ConfigError, match="usage.core_actions"):
        unit_settings(usage={"core_actions": [{"name": "a"}, {"name": "a"}]})
    with pytest.raises(ConfigError, match="usage.feature_rules"):
        unit_settings(usage={"feature_rules": [{"event": "x", "feature": "not-listed"}]})


def test_day_windows_use_the_configured_time_zone() -> None:
    """22:55 and 23:30 UTC are one UTC day but two Berlin days: usage follows the activity time zone."""
    p = Pipeline(activity={"timezone": "Europe/Berlin"})
    p.feed([doc("a", 12 * 60 + 55), doc("b", 13 * 60 + 30, user="u2")])  # 2026-11-02 22:55 / 23:30 UTC
    p.sweep(days=2)
    finals = p.partials("usage_day")
    assert finals["2026-11-02"]["active_users"]["1d"] == 1
    assert finals["2026-11-03"]["active_users"]["1d"] == 1
    assert finals["2026-11-03"]["active_users"]["7d"] == 2


def test_gaps_at_the_window_edges_across_a_restart() -> None:
    """Activity 27, 28, 29 and 30 days apart: users leave and re-enter the 28 / 30-day windows on
    exactly the right day, also when the partition is rebuilt from its records in between."""
    day_ms = 24 * 60  # minutes
    plan = {0: ["u1", "u2"], 1: ["u1"], 27: ["u1"], 28: ["u3"], 29: ["u1", "u2"], 30: ["u1"], 58: ["u1", "u3"]}

    def events(days: list[int]) -> list[dict[str, Any]]:
        return [doc(f"{u}-{d}", d * day_ms, "feature_used", user=u, properties={"feature": "alerts"})
                for d in days for u in plan[d]]

    def run(p: Pipeline, days: list[int]) -> None:
        for d in days:
            p.feed(events([d]))
            p.sweep(days=0.5)

    clean = Pipeline()
    run(clean, sorted(plan))
    clean.sweep(days=3)
    compare_days(clean)

    first = Pipeline()
    run(first, [0, 1, 27, 28, 29])
    first.runtime.flush()
    restarted = Pipeline(table=first.table.recovered())
    restarted.offset = first.offset
    restarted.accepted = list(first.accepted)
    run(restarted, [30, 58])
    restarted.sweep(days=3)
    compare_days(restarted)
    assert {**first.partials("usage_day"), **restarted.partials("usage_day")} == clean.partials("usage_day")


def test_per_user_counts_per_day_and_rolling_windows() -> None:
    stream, _, _ = scenario(seed=13, users=25, start_ms=T0)
    p = Pipeline()
    p.feed(stream)
    p.sweep()  # the watermark follows what several users agree on: in a sparse stream, well behind the newest
    p.runtime.flush()
    part = p.runtime.processor(0)
    usage = next(c for c in part.capabilities if isinstance(c, UsagePartition))
    checked = 0
    for key, state in p.runtime.store.items(0):
        mine = [d for d in p.accepted if d["user_id"] == key.decode()]
        for day in {sessionbatch.day(d["timestamp"]) for d in mine}:
            want = sessionbatch.usage_days(mine, p.settings, [day])[day]
            got = user_usage(state, day, usage.classifier)
            assert got["visits"] == {w: want["visits"][w] for w in ("7d", "30d")}
            assert got["core_actions"] == {a: f["count"] for a, f in want["core_actions"].items()}
            assert got["features"] == {f: v["uses"] for f, v in want["features"].items()}
            checked += 1
    assert checked > 40


def test_the_documented_configuration_loads_and_round_trips(tmp_path: Any) -> None:
    from streams.config import REPO_ROOT, load_settings, settings_to_toml

    text = (REPO_ROOT / "docs" / "sessions-and-usage.md").read_text()
    blocks = [part.split("```", 1)[0] for part in text.split("```toml\n")[1:]]
    block = next(b for b in blocks if "[usage]" in b)
    path = tmp_path / "engagement.toml"
    path.write_text(block)
    settings = load_settings(path, env={})
    actions = {a.name: a for a in settings.usage.core_actions}
    assert actions["big_export"].where == {"rows": [1000, 5000]} and actions["big_export"].weight == 2.5
    assert [r.feature or r.property for r in settings.usage.feature_rules] == ["feature", "alerts"]
    path.write_text(settings_to_toml(settings))
    assert load_settings(path, env={}) == settings
