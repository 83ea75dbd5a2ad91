"""A rebalance hands a partition over while a batch taken before it is still being handled: its
remaining messages are left to the next owner, and no processor of it comes back (its stale
event time would hold this worker's other partitions back for ever)."""

from __future__ import annotations

import orjson

from streams.core.rekey import mark
from tests.support.fakes import unit_runtime

T0 = 1_767_225_600_000  # 2026-01-01


def event(n: int) -> bytes:
    return orjson.dumps({"event_id": f"e{n}", "type": "page", "event": "home", "user_id": "u",
                         "timestamp": T0 + n * 1000})


def test_messages_of_a_partition_handed_over_are_left_to_its_next_owner() -> None:
    runtime, _, _ = unit_runtime()
    assert runtime.offer(0, b"u", event(1), 0, T0, "token-0")
    assert 0 in runtime.processors and runtime.outcomes["applied"] == 1

    runtime.revoke([0])
    assert 0 not in runtime.processors
    # In flight from before the rebalance: not handled, not acknowledged (read again by the owner).
    assert not runtime.offer(0, b"u", event(2), 1, T0, "token-1")
    assert runtime.held == {}
    assert runtime.handle_rekeyed(0, None, mark(1, T0, False), 0) is None
    assert 0 not in runtime.processors and runtime.outcomes["applied"] == 1

    runtime.assign([0])  # ours again: read from the last commit, as a new owner would
    assert runtime.offer(0, b"u", event(2), 1, T0, "token-1")
    assert 0 in runtime.processors and runtime.outcomes["applied"] == 2
