"""Active users, stickiness and lifecycle: the capability against an independent batch computation."""

from __future__ import annotations

import random
from typing import Any

import jsonschema_rs
import msgpack
import orjson
import pytest

from streams.capabilities.activity import ActivityCapability, signal_id
from streams.capabilities.lifecycle import SINCE_EVER, View
from streams.capabilities.snapshots import Rollup
from streams.config import (
    SCHEMAS_DIR,
    SIGNAL_SCHEMA_FILE,
    WATERMARK_NOTIFY_STEP_MS,
    ConfigError,
    SegmentDimension,
    Settings,
    load_settings,
)
from streams.core.calendar import DayClock
from streams.core.contract import parse_time_ms
from streams.core.routing import HomePartitions
from streams.core.state import UserState
from streams.runtime.metrics import build_registry, describe
from tests.support.activity_batch import (
    LocalDays,
    SegmentSpec,
    batch_figures,
    batch_transitions,
    generate,
    normalized,
    stickiness,
)
from tests.support.fakes import FakeTable, unit_runtime, unit_settings

START = parse_time_ms("2026-02-20T00:00:00-05:00")
assert START is not None
LATENESS_S = 600
DAY_MS = 86_400_000


def activity_settings(partitions: int = 1, tz: str = "UTC", segments: tuple[SegmentDimension, ...] = (),
                      lateness_s: int = LATENESS_S, **activity: Any) -> Any:
    settings = unit_settings(partitions=partitions, allowed_lateness_s=lateness_s)
    config = dict(timezone=tz, segments=segments, provisional_interval_s=0, **activity)
    return settings.with_overrides(activity=type(settings.activity)(**config))


class Feed:
    """Messages into a runtime, each on its user's home partition with increasing offsets."""

    def __init__(self, settings: Any, table: FakeTable | None = None, offsets: dict[int, int] | None = None) -> None:
        self.settings = settings
        self.runtime, self.table, self.sink = unit_runtime(settings, [ActivityCapability(settings)], table)
        self.home = HomePartitions(settings.partitions, 10_000)
        self.offsets = offsets if offsets is not None else {}
        self.log: list[tuple[int, bytes, bytes, int]] = []

    def send(self, docs: list[dict[str, Any]]) -> list[str]:
        out = []
        for doc in docs:
            key = doc["user_id"].encode()
            partition = self.home(key)
            offset = self.offsets.get(partition, 0)
            self.offsets[partition] = offset + 1
            raw = orjson.dumps(doc)
            self.log.append((partition, key, raw, offset))
            out.append(self.runtime.handle(partition, key, raw, offset, doc["timestamp"] + 60_000))
        return out

    def redeliver(self, entries: list[tuple[int, bytes, bytes, int]]) -> list[str]:
        return [self.runtime.handle(p, k, raw, off, orjson.loads(raw)["timestamp"] + 60_000)
                for p, k, raw, off in entries]

    def close_all(self, after_ms: int) -> None:
        """Push every partition's watermark well past ``after_ms`` with a non-activity event."""
        docs = []
        for partition in range(self.settings.partitions):
            user = next(f"clock-{i}" for i in range(10_000) if self.home(f"clock-{i}".encode()) == partition)
            docs.append({"event_id": f"clock-{partition}-{after_ms}", "type": "identify", "user_id": user,
                         "timestamp": after_ms})
        self.send(docs)


def finals(sinks: list[Any], topic: str) -> dict[tuple[int, str], dict[str, Any]]:
    out: dict[tuple[int, str], dict[str, Any]] = {}
    for sink in sinks:
        for partial in sink.values(topic):
            if partial["final"]:
                key = (partial["partition"], partial["period"])
                assert out.get(key, partial) == partial, f"partition {key} published two different finals"
                out[key] = partial
    return out


def combined(partials: dict[tuple[int, str], dict[str, Any]], partitions: int) -> dict[str, dict[str, Any]]:
    """The rollup's final snapshot per day, fed the partials in order."""
    rollup, entries, snapshots = Rollup(partitions, ActivityCapability(Settings()).finishers()), {}, {}
    for (_, period), partial in sorted(partials.items(), key=lambda kv: (kv[0][1], kv[0][0])):
        entry, snap = rollup.apply(entries.get(period), partial)
        entries[period] = entry
        if snap is not None and snap["final"]:
            snapshots[period] = snap
    return snapshots


def assert_days_equal(snapshots: dict[str, dict[str, Any]], expected: dict[str, dict[str, Any]]) -> None:
    assert sorted(snapshots) == sorted(expected)
    for day, want in expected.items():
        got = snapshots[day]["figures"]
        assert normalized(got) == want, f"figures differ on {day}"
        assert got["stickiness"] == stickiness(want)
        for name, values in want.get("segments", {}).items():
            for value, group in values.items():
                assert got["segments"][name][value]["stickiness"] == stickiness(group)


SEGMENTS = (SegmentDimension("plan", "traits", values=("free", "team", "business")),
            SegmentDimension("platform", "context"),
            SegmentDimension("country", "context", values=("DE", "US", "FR")))
SPECS = [SegmentSpec("plan", "traits", ("free", "team", "business")), SegmentSpec("platform", "context"),
         SegmentSpec("country", "context", ("DE", "US", "FR"))]


@pytest.mark.parametrize("restart", [False, True], ids=["straight", "restarted"])
def test_every_day_equals_the_batch_computation_across_partitions(restart: bool) -> None:
    """Three partitions, New York days (DST starts on 2026-03-08), out of order, duplicates, late;
    optionally a restart from the changelog at 60% (each partition its own segment code table)."""
    settings = activity_settings(partitions=3, tz="America/New_York", segments=SEGMENTS)
    feed = Feed(settings)
    events = generate(seed=3, users=240, days=45, start_ms=START, lateness_ms=LATENESS_S * 1000,
                      home=lambda user: feed.home(user.encode()))
    sinks = [feed.sink]
    if restart:
        cut = int(len(events.arrivals) * 0.6)
        outcomes = feed.send(events.arrivals[:cut])
        feed.runtime.flush()
        feed = Feed(settings, table=feed.table.recovered(), offsets=dict(feed.offsets))
        sinks.append(feed.sink)
        outcomes += feed.send(events.arrivals[cut:])
    else:
        outcomes = feed.send(events.arrivals)
    assert outcomes.count("late") == events.late > 0
    assert outcomes.count("duplicate") == events.duplicates > 0
    assert outcomes.count("applied") == len(events.accepted)
    clock_ms = START + 80 * DAY_MS
    feed.close_all(clock_ms)

    days = LocalDays("America/New_York")
    first = min(days.date(d["timestamp"]) for d in events.accepted if d["type"] != "identify")
    last = days.date(clock_ms - LATENESS_S * 1000 - DAY_MS)
    partials = finals(sinks, settings.partials_topic)
    expected = batch_figures(events.accepted, "America/New_York", 14, SPECS, first, last)
    assert_days_equal(combined(partials, 3), expected)
    assert {p for p, _ in partials} == {0, 1, 2}

    signals = [s for sink in sinks for s in sink.values(settings.signals_topic)]
    got = {(s["user_id"], s["from"], s["to"], s["day"]) for s in signals}
    assert got == batch_transitions(events.accepted, "America/New_York", 14, last)
    assert len(signals) == len(got), "one message per change"
    assert all(s["id"] == signal_id(s["user_id"], s["from"], s["to"], s["day"]) for s in signals)
    assert {s["to"] for s in signals} == {"new", "returning", "resurrected", "dormant"}
    schema = jsonschema_rs.validator_for(orjson.loads((SCHEMAS_DIR / SIGNAL_SCHEMA_FILE).read_bytes()))
    for signal in signals:
        schema.validate(signal)  # the published signal contract


def crash_points(arrivals: list[dict[str, Any]], days: list[int], lateness_ms: int) -> list[int]:
    """For each of ``days``, the last arrival index at which the day before is still open: users
    already have activity, timers and segment changes on the new day while the old one can still
    change. The hardest moment to restart."""
    cuts = []
    for day in days:
        midnight = (START // DAY_MS + day) * DAY_MS  # UTC
        newest = 0
        for index, doc in enumerate(arrivals):
            newest = max(newest, doc["timestamp"])
            if newest - lateness_ms >= midnight:
                cuts.append(index)
                break
    return cuts


def test_a_restart_rebuilds_figures_timers_and_segment_codes_from_records_alone() -> None:
    """Crash three times right after midnight, recover the table from its changelog each time,
    get redeliveries: the same finals and signals as an uninterrupted run, and as the batch."""
    segments = (SegmentDimension("plan", "traits"), SegmentDimension("country", "context", max_values=2))
    specs = [SegmentSpec("plan", "traits"), SegmentSpec("country", "context", cap=2)]
    lateness_s = 6 * 3600
    settings = activity_settings(segments=segments, dormant_days=10, lateness_s=lateness_s)
    events = generate(seed=11, users=150, days=40, start_ms=START, lateness_ms=lateness_s * 1000)
    clock_ms = START + 70 * DAY_MS

    straight = Feed(settings)
    straight.send(events.arrivals)
    straight.close_all(clock_ms)

    cuts = crash_points(events.arrivals, [12, 25, 33], lateness_s * 1000)
    feeds = [Feed(settings)]
    for begin, end in zip([0, *cuts], [*cuts, len(events.arrivals)]):
        if begin:
            before = feeds[-1]
            before.runtime.flush()
            feeds.append(Feed(settings, table=before.table.recovered(), offsets=dict(before.offsets)))
            assert feeds[-1].redeliver(before.log[-30:]) == ["duplicate"] * 30
        feeds[-1].send(events.arrivals[begin:end])
    feeds[-1].close_all(clock_ms)

    one = finals([straight.sink], settings.partials_topic)
    two = finals([feed.sink for feed in feeds], settings.partials_topic)
    assert two == one
    last = LocalDays("UTC").date(clock_ms - lateness_s * 1000 - DAY_MS)
    first = min(LocalDays("UTC").date(d["timestamp"]) for d in events.accepted if d["type"] != "identify")
    assert_days_equal(combined(two, 1), batch_figures(events.accepted, "UTC", 10, specs, first, last))
    countries = {v for p in two.values() for v in p["figures"]["segments"]["country"]}
    assert "other" in countries and len(countries - {"other", "unknown"}) == 2

    signals = [s for feed in feeds for s in feed.sink.values(settings.signals_topic)]
    got = [(s["user_id"], s["from"], s["to"], s["day"]) for s in signals]
    assert sorted(got, key=str) == sorted(batch_transitions(events.accepted, "UTC", 10, last), key=str)


def test_the_latest_observation_of_a_day_wins_even_when_it_arrives_first() -> None:
    settings = activity_settings(segments=(SegmentDimension("platform", "context"),))
    feed = Feed(settings)
    page = {"type": "page", "user_id": "u"}
    feed.send([dict(page, event_id="a", timestamp=START + 3_600_000, context={"platform": "web"}),
               dict(page, event_id="b", timestamp=START + DAY_MS + 7_200_000, context={"platform": "web"}),
               # arrives last, happened 5 minutes before "b" (within the lateness): "b" stays the day's latest
               dict(page, event_id="c", timestamp=START + DAY_MS + 6_900_000, context={"platform": "ios"})])
    feed.close_all(START + 5 * DAY_MS)
    days = {day: p["figures"]["segments"]["platform"] for (_, day), p in finals([feed.sink], settings.partials_topic).items()}
    assert set(days["2026-02-21"]) == {"web"}
    feed2 = Feed(settings)
    feed2.send([dict(page, event_id="a", timestamp=START + 3_600_000, context={"platform": "web"}),
                dict(page, event_id="c", timestamp=START + DAY_MS + 7_500_000, context={"platform": "ios"}),
                dict(page, event_id="b", timestamp=START + DAY_MS + 7_200_000, context={"platform": "web"})])
    feed2.close_all(START + 5 * DAY_MS)
    days = {day: p["figures"]["segments"]["platform"] for (_, day), p in finals([feed2.sink], settings.partials_topic).items()}
    assert set(days["2026-02-20"]) == {"web"} and set(days["2026-02-21"]) == {"ios"}


def test_a_long_dormancy_threshold_keeps_more_days_and_still_equals_the_batch() -> None:
    """dormant_days=40 needs 80+ days of history per user: more than a 64-bit integer holds."""
    settings = activity_settings(dormant_days=40)
    feed = Feed(settings)
    events = generate(seed=5, users=60, days=120, start_ms=START, lateness_ms=LATENESS_S * 1000)
    feed.send(events.arrivals)
    clock_ms = START + 170 * DAY_MS
    feed.close_all(clock_ms)
    days = LocalDays("UTC")
    first = min(days.date(d["timestamp"]) for d in events.accepted if d["type"] != "identify")
    last = days.date(clock_ms - LATENESS_S * 1000 - DAY_MS)
    assert_days_equal(combined(finals([feed.sink], settings.partials_topic), 1),
                      batch_figures(events.accepted, "UTC", 40, [], first, last))
    got = {(s["user_id"], s["from"], s["to"], s["day"]) for s in feed.sink.values(settings.signals_topic)}
    assert got == batch_transitions(events.accepted, "UTC", 40, last)


def test_dormancy_is_signalled_when_its_day_closes_not_at_the_next_event() -> None:
    settings = activity_settings(dormant_days=3)
    feed = Feed(settings)
    track = {"type": "track", "event": "x", "account_id": "acct-1"}
    feed.send([dict(track, event_id="a", user_id="quiet", timestamp=START + 3_600_000)])
    # Another user keeps event time moving; "quiet" sends nothing more.
    for day in range(1, 6):
        feed.send([dict(track, event_id=f"b{day}", user_id="busy", timestamp=START + day * DAY_MS + 3_600_000)])
    quiet = [s for s in feed.sink.values(settings.signals_topic) if s["user_id"] == "quiet"]
    assert [(s["from"], s["to"], s["day"]) for s in quiet] == [(None, "new", "2026-02-20"),
                                                               ("new", "dormant", "2026-02-23")]
    dormant = quiet[1]
    assert dormant["account_id"] == "acct-1"
    assert dormant["event_time"] == "2026-02-24T00:00:00.000Z"
    assert dormant["reason"] == "no activity for 3 days since 2026-02-20"
    feed.send([dict(track, event_id="c", user_id="quiet", timestamp=START + 6 * DAY_MS)])
    back = [s for s in feed.sink.values(settings.signals_topic) if s["user_id"] == "quiet"][2:]
    assert [(s["from"], s["to"], s["day"]) for s in back] == [("dormant", "resurrected", "2026-02-26")]
    assert "after 5 days without activity" in back[0]["reason"]


def test_one_signal_per_change_when_the_watermark_passes_midnight_between_notifications() -> None:
    """Capabilities hear of the watermark in steps (WATERMARK_NOTIFY_STEP_MS), the day's checks are
    timers due at midnight: an event just past midnight, between two notifications, must neither
    miss the checks nor double the dormancy check."""
    settings = activity_settings(dormant_days=3)
    feed = Feed(settings)
    lateness, step = LATENESS_S * 1000, WATERMARK_NOTIFY_STEP_MS
    track = {"type": "track", "event": "x"}
    midnight = parse_time_ms("2026-02-20T00:00:00Z")
    feed.send([dict(track, event_id="a0", user_id="a", timestamp=midnight + 3_600_000)])
    for day in range(1, 4):
        feed.send([dict(track, event_id=f"b{day}", user_id="b", timestamp=midnight + day * DAY_MS + 3_600_000)])
    end_of_day_3 = midnight + 4 * DAY_MS
    feed.send([dict(track, event_id="b-before", user_id="b", timestamp=end_of_day_3 + lateness - step // 3)])
    feed.send([dict(track, event_id="b-after", user_id="b", timestamp=end_of_day_3 + lateness + step // 3)])
    feed.send([dict(track, event_id="a4", user_id="a", timestamp=end_of_day_3 + lateness + step // 2)])
    feed.close_all(midnight + 20 * DAY_MS)
    changes = [(s["from"], s["to"], s["day"]) for s in feed.sink.values(settings.signals_topic) if s["user_id"] == "a"]
    assert changes == [(None, "new", "2026-02-20"), ("new", "dormant", "2026-02-23"),
                       ("dormant", "resurrected", "2026-02-24"), ("resurrected", "dormant", "2026-02-27")]


def test_identify_and_group_events_never_make_a_user_active() -> None:
    settings = activity_settings(segments=(SegmentDimension("plan", "traits"),))
    feed = Feed(settings)
    feed.send([{"event_id": "i", "type": "identify", "user_id": "u", "timestamp": START, "traits": {"plan": "pro"}},
               {"event_id": "g", "type": "group", "user_id": "u", "timestamp": START + 1, "traits": {"plan": "x"}}])
    proc = feed.runtime.processor(0)
    assert proc.figures()["activated_users"] == 0 and proc.users == 1
    feed.send([{"event_id": "p", "type": "page", "user_id": "u", "timestamp": START + 2}])
    figures = proc.capabilities[0].current_figures()
    assert figures["dau"] == 1 and figures["lifecycle"]["new"] == 1
    assert list(figures["segments"]["plan"]) == ["pro"]  # the group event's traits describe the account


def test_time_zone_decides_which_day_an_event_counts_on() -> None:
    """23:30 in Berlin on 2026-03-28 is 22:30 UTC the same day; 00:30 Berlin is still the 28th in UTC."""
    results = {}
    for tz in ("UTC", "Europe/Berlin"):
        settings = activity_settings(tz=tz)
        feed = Feed(settings)
        feed.send([{"event_id": "a", "type": "page", "user_id": "u", "timestamp": parse_time_ms("2026-03-28T23:30:00+01:00")},
                   {"event_id": "b", "type": "page", "user_id": "v", "timestamp": parse_time_ms("2026-03-29T00:30:00+01:00")}])
        feed.close_all(parse_time_ms("2026-04-02T00:00:00Z"))
        results[tz] = {day: p["figures"]["dau"] for (_, day), p in finals([feed.sink], settings.partials_topic).items()
                       if p["figures"]["dau"]}
    assert results["UTC"] == {"2026-03-28": 2}
    assert results["Europe/Berlin"] == {"2026-03-28": 1, "2026-03-29": 1}


def test_day_clock_follows_daylight_saving() -> None:
    clock = DayClock("America/New_York")
    day = DayClock.parse("2026-03-08")
    assert clock.end(day) - clock.start(day) == 23 * 3_600_000
    assert clock.start(day) == parse_time_ms("2026-03-08T00:00:00-05:00")
    assert clock.day(parse_time_ms("2026-03-08T23:59:59.999-04:00")) == day
    assert clock.day(parse_time_ms("2026-03-09T00:00:00-04:00")) == day + 1
    assert DayClock.label(day) == "2026-03-08"


def test_a_year_of_daily_activity_keeps_the_record_small() -> None:
    settings = activity_settings(segments=SEGMENTS)
    feed = Feed(settings)
    docs = [{"event_id": f"e{d}", "type": "track", "event": "x", "user_id": "loyal", "account_id": "acct-12345",
             "timestamp": START + d * DAY_MS + 7_200_000, "context": {"platform": "web", "country": "DE"}}
            for d in range(400)]
    feed.send(docs)
    feed.runtime.flush()
    record = UserState.decode(feed.table.data.data[b"loyal"])
    slot = msgpack.unpackb(record.ext["a"])
    assert slot[2] < 2 ** 32, "the activity bitmap holds at most 32 days"
    assert len(record.ext["a"]) <= 32, slot
    assert len(record.recent) == settings.dedupe_window
    assert len(record.encode()) <= 200  # even with a full de-duplication ring (128 bytes)


def test_prometheus_families_are_counts_with_bounded_labels() -> None:
    segments = (SegmentDimension("country", "context", max_values=2),)
    settings = activity_settings(segments=segments)
    feed = Feed(settings)
    feed.send([{"event_id": f"e{i}", "type": "page", "user_id": f"u{i}", "timestamp": START + i,
                "context": {"country": f"C{i}"}} for i in range(6)])
    samples = describe(build_registry(feed.runtime))
    assert samples[("engagement_active_users", (("window", "1d"),))] == 6
    assert samples[("engagement_active_users", (("window", "30d"),))] == 6
    assert samples[("engagement_lifecycle_users", (("state", "new"),))] == 6
    values = {dict(labels)["value"] for name, labels in samples if name == "engagement_segment_active_users"}
    assert values == {"C0", "C1", "other"}
    assert samples[("engagement_segment_active_users", (("dimension", "country"), ("value", "other"),
                                                        ("window", "1d")))] == 4
    assert samples[("engagement_lifecycle_transitions_total", (("to", "new"),))] == 6
    assert not any("stickiness" in name for name, _ in samples)


@pytest.mark.parametrize("section, message", [
    ({"timezone": "Mars/Olympus"}, "activity.timezone"),
    ({"dormant_days": 0}, "activity.dormant_days"),
    ({"provisional_interval_s": -1}, "activity.provisional_interval_s"),
    ({"segments": [{"name": "plan", "source": "cookies"}]}, "activity.segments.plan.source"),
    ({"segments": [{"name": "plan", "values": ["other"]}]}, "activity.segments.plan.values"),
    ({"segments": [{"name": "plan"}, {"name": "plan"}]}, "activity.segments"),
    ({"start_date": "yesterday"}, "activity.start_date"),
])
def test_bad_activity_settings_name_the_key(tmp_path: Any, section: dict[str, Any], message: str) -> None:
    import tomli_w

    path = tmp_path / "bad.toml"
    path.write_text(tomli_w.dumps({"activity": section}))
    with pytest.raises(ConfigError, match=message.replace(".", r"\.")):
        load_settings(path, env={})


def test_changing_segment_dimensions_under_existing_state_fails_loudly() -> None:
    settings = activity_settings(segments=(SegmentDimension("plan"), SegmentDimension("country", "context")))
    feed = Feed(settings)
    feed.send([{"event_id": "a", "type": "page", "user_id": "u", "timestamp": START, "context": {"country": "DE"}}])
    feed.runtime.flush()
    appended = activity_settings(segments=(SegmentDimension("plan"), SegmentDimension("country", "context"),
                                           SegmentDimension("platform", "context")))
    Feed(appended, table=feed.table.recovered()).runtime.processor(0)  # appending is fine
    reordered = activity_settings(segments=(SegmentDimension("country", "context"), SegmentDimension("plan")))
    with pytest.raises(ConfigError, match="activity.segments"):
        Feed(reordered, table=feed.table.recovered()).runtime.processor(0)


def test_note_records_what_observe_would_or_leaves_the_record_untouched() -> None:
    """The per-event shortcut (``View.note``) against the full rule (``View.observe``), at random."""
    rng = random.Random(11)
    accepted = 0
    for _ in range(5000):
        days = sorted(rng.sample([SINCE_EVER, 0, 1, 2, 3, 4, 5], rng.randint(0, 4)))
        entries = [(d, rng.randint(0, 2), None if d == SINCE_EVER or rng.random() < 0.2 else rng.randint(0, 9))
                   for d in days]
        view = View(5, 0, 1, [entries])
        day, ts, code = rng.randint(0, 6), rng.randint(0, 9), rng.randint(0, 2)
        shortcut, full = view.copy(), view.copy()
        if shortcut.note(0, day, ts, code):
            accepted += 1
            assert full.observe(0, day, ts, code) is False  # the value from ``day`` on did not change
            assert shortcut.segs == full.segs  # and the observation time was recorded the same way
        else:
            assert shortcut.segs == view.segs
    assert 300 < accepted < 4700  # both branches were exercised


def test_a_record_kept_live_between_flushes_is_written_as_its_stored_form() -> None:
    view = View(20, 3, 0b1011, [[(SINCE_EVER, 1, None), (19, 2, 1_000), (20, 2, 5_000)], []])
    state = UserState()
    state.max_ts = 6_000
    state.ext["a"] = view
    blob = state.encode()
    assert state.ext["a"] == view.dump(6_000)  # the cached record holds bytes again after the flush
    back = UserState.decode(blob)
    loaded = View.load(back.ext["a"], 2, back.max_ts)
    assert (loaded.n, loaded.f, loaded.bits, loaded.segs) == (view.n, view.f, view.bits, view.segs)
