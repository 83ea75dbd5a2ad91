"""The rollup: partition shares in, one combined snapshot per kind and period out."""

from __future__ import annotations

from typing import Any

from streams.capabilities.snapshots import Rollup, add_figures


def partial(partition: int, final: bool, figures: dict[str, Any], kind: str = "test_day",
            period: str = "2026-11-02") -> dict[str, Any]:
    return {"kind": kind, "period": period, "partition": partition, "final": final, "figures": figures}


def test_add_figures_sums_nested_counts_and_keeps_the_rest() -> None:
    total = add_figures({}, {"a": 1, "nested": {"x": 2, "deeper": {"y": 3}}, "name": "p0"})
    total = add_figures(total, {"a": 4, "nested": {"x": 5, "deeper": {"y": 6, "z": 1}}, "name": "p1", "b": 2.5})
    assert total == {"a": 5, "nested": {"x": 7, "deeper": {"y": 9, "z": 1}}, "name": "p0", "b": 2.5}


def test_provisional_until_every_partition_is_final_then_one_final_snapshot() -> None:
    rollup = Rollup(partitions=2)
    entry, snap = rollup.apply(None, partial(0, False, {"n": 1}))
    assert snap is not None and not snap["final"] and snap["figures"] == {"n": 1}
    assert snap["partitions_reported"] == 1 and snap["partitions_final"] == 0
    entry, again = rollup.apply(entry, partial(0, False, {"n": 1}))
    assert again is None, "an unchanged provisional snapshot is not re-published"
    entry, snap = rollup.apply(entry, partial(0, True, {"n": 2}))
    assert snap is not None and not snap["final"]
    entry, stale = rollup.apply(entry, partial(0, False, {"n": 1}))
    assert stale is None, "a provisional share never replaces a final one"
    entry, snap = rollup.apply(entry, partial(1, True, {"n": 3}))
    assert snap is not None and snap["final"] and snap["figures"] == {"n": 5}
    assert entry == {"final": snap}, "shares are dropped once final"
    final_id = snap["id"]
    # A partition re-sends its final share after a restart: the same snapshot, same id.
    entry, repeat = rollup.apply(entry, partial(1, True, {"n": 3}))
    assert repeat == snap and repeat["id"] == final_id
    entry, nothing = rollup.apply(entry, partial(1, False, {"n": 9}))
    assert nothing is None


def test_ids_are_deterministic_and_differ_by_content_for_provisional_snapshots() -> None:
    one = Rollup(2).apply(None, partial(0, False, {"n": 1}))[1]
    two = Rollup(2).apply(None, partial(0, False, {"n": 1}))[1]
    three = Rollup(2).apply(None, partial(0, False, {"n": 2}))[1]
    assert one is not None and two is not None and three is not None
    assert one["id"] == two["id"] != three["id"]
    final = Rollup(1).apply(None, partial(0, True, {"n": 1}))[1]
    other_final = Rollup(1).apply(None, partial(0, True, {"n": 1}, period="2026-11-03"))[1]
    assert final is not None and other_final is not None and final["id"] != other_final["id"]


def test_finishers_derive_ratios_after_summing() -> None:
    def finish(figures: dict[str, Any]) -> dict[str, Any]:
        figures["share"] = figures["part"] / figures["whole"]
        return figures

    rollup = Rollup(2, {"ratio_test_day": finish})
    entry, _ = rollup.apply(None, partial(0, True, {"part": 1, "whole": 4}, kind="ratio_test_day"))
    _, snap = rollup.apply(entry, partial(1, True, {"part": 3, "whole": 4}, kind="ratio_test_day"))
    assert snap is not None and snap["figures"]["share"] == 0.5  # (1+3)/(4+4), not 1/4 + 3/4


def test_activity_day_stickiness_is_a_ratio_of_sums() -> None:
    from streams.capabilities.activity import ActivityCapability
    from streams.config import Settings

    rollup = Rollup(2, ActivityCapability(Settings()).finishers())
    entry, _ = rollup.apply(None, partial(0, True, {"dau": 1, "wau": 2, "mau": 4}, kind="activity_day"))
    _, snap = rollup.apply(entry, partial(1, True, {"dau": 0, "wau": 0, "mau": 0,
                                                    "segments": {"plan": {"pro": {"dau": 0, "wau": 0, "mau": 0}}}},
                                          kind="activity_day"))
    assert snap is not None
    assert snap["figures"]["stickiness"] == {"dau_mau": 0.25, "wau_mau": 0.5}
    assert snap["figures"]["segments"]["plan"]["pro"]["stickiness"] == {"dau_mau": None, "wau_mau": None}
