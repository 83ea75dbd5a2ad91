"""``GET /users/<id>``: one user's current state, asked of any worker.

A CRM or an alert handler that receives a signal wants the rest of the story: lifecycle, active
days, the open session, score, churn-risk band and its reasons, account. Each user lives in one
partition of the state table, owned by one worker; Faust's table router
(``app.table_route``) forwards the request to that worker (it knows every worker's web address
from the group assignment), which reads the record and asks each capability to ``describe`` it.
"""

from __future__ import annotations

from typing import Any

import faust

from streams.config import RESERVED_KEY_PREFIX
from streams.core.eventtime import iso_ms
from streams.runtime.partitions import Runtime


def describe_user(runtime: Runtime, key: bytes) -> tuple[int, dict[str, Any]]:
    """(HTTP status, document) for one user, read on the worker that owns the user's partition."""
    user = key.decode("utf-8", "replace")
    if not key or key.startswith(RESERVED_KEY_PREFIX):
        return 404, {"error": f"unknown user {user!r}: not a user id", "user_id": user}
    partition = runtime.home(key)
    processor = runtime.processors.get(partition)
    if processor is None:  # the partition moved while the request was routed (a rebalance)
        return 503, {"error": f"partition {partition} of user {user!r} is not on this worker right now; "
                              "ask again in a few seconds", "user_id": user}
    state = runtime.store.get(partition, key)
    if state is None:
        return 404, {"error": f"unknown user {user!r}: no event of theirs has been applied", "user_id": user,
                     "partition": partition}
    doc: dict[str, Any] = {"user_id": user, "partition": partition, "events": state.events,
                           "first_event": iso_ms(state.first_ts), "last_event": iso_ms(state.max_ts),
                           "watermark": iso_ms(processor.watermark.value) if processor.watermark.value > 0 else None}
    for cap, part in zip(runtime.capabilities, processor.capabilities):
        facts = part.describe(key, state)
        if facts:
            doc[cap.name] = dict(facts)
    return 200, doc


def install_user_page(app: faust.App, table: Any, runtime: Runtime) -> None:
    """Serve ``/users/{user_id}`` on this worker, routed to the owner of the user's partition."""

    @app.page("/users/{user_id}")
    @app.table_route(table=table, match_info="user_id")
    async def user(web: Any, request: Any, user_id: str) -> Any:
        status, doc = describe_user(runtime, user_id.encode())
        return web.json(doc, status=status)
