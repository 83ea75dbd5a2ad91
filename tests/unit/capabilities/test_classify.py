"""The remembered classification (per event name, or per name and property values) gives exactly
what the rules say, for every kind of property value, and its memory stays bounded; the compact
waiting-heartbeat entries of the sessions record read the same as the older list form."""

from __future__ import annotations

import random
from typing import Any

from streams.capabilities.classify import Classifier
from streams.config import CLASSIFY_CACHE_MAX
from streams.core.contract import Event
from tests.support import session_batch as sessionbatch
from tests.support.fakes import unit_settings
from tests.support.session_data import T0, Pipeline, canonical, scenario

USAGE = {"core_actions": [
    {"name": "big_export", "event": "export_completed", "where": {"rows": [1000, 5000]}, "weight": 2.5},
    {"name": "export_completed"},
    {"name": "api_report", "event": "report_created", "where": {"via": "api", "kind": ["table", "chart"]}},
    {"name": "report_created"}],
    "feature_rules": [{"event": "feature_used", "property": "feature"},
                      {"event": "report_created", "property": "kind"},
                      {"event": "report_created", "feature": "reports"},
                      {"event": "alert_set", "feature": "alerts"}]}
NAMES = ("export_completed", "report_created", "feature_used", "alert_set", "page_ping", "clicked", "")
VALUES: tuple[Any, ...] = (1000, 1000.0, 5000, 7, True, 1, None, "api", "web", "table", "chart", "reports",
                           "alerts", "api ", ["table"], {"a": 1}, float("nan"), "legacy")


def random_doc(rng: random.Random) -> dict[str, Any]:
    props = {p: rng.choice(VALUES) for p in ("rows", "via", "kind", "feature") if rng.random() < 0.7}
    return {"event_id": "e", "type": "track", "event": rng.choice(NAMES), "properties": props}


def expected(doc: dict[str, Any], settings: Any) -> tuple[int, int]:
    """From the batch reference's definitions: (bit mask of core actions, feature index or -1)."""
    names = sessionbatch.core_actions_of(doc, settings)
    mask = sum(1 << i for i, a in enumerate(settings.usage.core_actions) if a.name in names)
    feature = sessionbatch.feature_of(doc, settings)
    return mask, settings.usage.features.index(feature) if feature is not None else -1


def test_remembered_classification_equals_the_rules() -> None:
    settings = unit_settings(usage=USAGE)
    classifier = Classifier(settings.usage)
    rng = random.Random(5)
    results = set()
    for _ in range(5000):
        doc = random_doc(rng)
        event = Event(doc, "u", T0)
        got = classifier.classify(event)
        assert got == expected(doc, settings), doc
        assert (classifier.core_mask(event), classifier.feature(event)) == got
        results.add(got)
    assert len(results) > 6  # the mix exercises several actions and features


def test_the_cache_stays_bounded_and_right_with_unbounded_property_values() -> None:
    settings = unit_settings(usage=USAGE)
    classifier = Classifier(settings.usage)
    for i in range(3 * CLASSIFY_CACHE_MAX):
        doc = {"event_id": "e", "type": "track", "event": "feature_used",
               "properties": {"feature": f"value-{i}" if i % 7 else "alerts"}}
        assert classifier.classify(Event(doc, "u", T0)) == expected(doc, settings)
        assert len(classifier._cache) <= CLASSIFY_CACHE_MAX


def test_old_list_entries_for_waiting_heartbeats_still_fold_the_same() -> None:
    """Records written before heartbeats were stored as bare ints hold ``[rel, None]`` entries: a
    partition recovered from such records emits the same sessions as an uninterrupted run."""
    stream, _, _ = scenario(seed=41, users=80, start_ms=T0, events_per_user=(20, 80))
    clean = Pipeline()
    clean.feed(stream)
    clean.sweep()

    first = Pipeline()
    cut = len(stream) // 2
    first.feed(stream[:cut])
    first.runtime.flush()
    table = first.table.recovered()
    rewritten = 0
    for key, state in list(first.runtime.store.items(0)):
        slot = state.ext.get("s")
        if not slot or not slot.get("q"):
            continue
        rewritten += sum(1 for e in slot["q"] if isinstance(e, int))
        slot["q"] = [[e, None] if isinstance(e, int) else e for e in slot["q"]]
        table.data.data[key] = state.encode()
    assert rewritten > 10  # the cut leaves heartbeats waiting
    restarted = Pipeline(table=table)
    restarted.offset = cut
    restarted.feed(stream[cut:])
    restarted.sweep()
    before = [canonical(s) for s in first.sessions()]
    after = [canonical(s) for s in restarted.sessions()]
    assert sorted(before + after) == sorted(canonical(s) for s in clean.sessions())
