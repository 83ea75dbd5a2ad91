"""The ``user`` command: one user's current state, from any worker's ``/users/<id>``."""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

from rich.console import Console
from rich.table import Table


class UserLookupError(Exception):
    """The worker could not be asked, or does not know the user; the message is one line."""


def fetch_user(url: str, user_id: str, timeout: float = 5.0) -> dict[str, Any]:
    """The worker's document for ``user_id`` (any worker: it routes to the owner)."""
    target = f"{url.rstrip('/')}/users/{urllib.parse.quote(user_id, safe='')}"
    try:
        with urllib.request.urlopen(target, timeout=timeout) as resp:
            return dict(json.loads(resp.read()))
    except urllib.error.HTTPError as exc:
        try:
            message = json.loads(exc.read()).get("error") or exc.reason
        except ValueError:
            message = exc.reason
        raise UserLookupError(f"{target}: {exc.code} {message}") from None
    except (urllib.error.URLError, OSError) as exc:
        cause = getattr(exc, "reason", exc)
        raise UserLookupError(f"no worker answers at {url} ({cause}); give --url (a worker's web address)") from None


def _session(doc: dict[str, Any]) -> str:
    parts = []
    session = doc.get("open_session")
    if session:
        parts.append(f"open since {session['start']} ({session['events']} events, "
                     f"{session['active_time_s']:.0f}s active, last event {session['last_event']})")
    if doc.get("waiting_events"):
        parts.append(f"{doc['waiting_events']} events since {doc['waiting_since']} waiting for the watermark")
    return "; ".join(parts) or "none open"


def _risk(doc: dict[str, Any]) -> str:
    if not doc.get("band"):
        return "not assessed yet"
    text = f"{doc['band']}"
    if doc.get("points") is not None:
        text += f" ({doc['points']} points on {doc['assessed_day']}{', onboarding' if doc.get('onboarding') else ''})"
    for reason in doc.get("reasons") or []:
        text += f"\n- {reason.get('text', reason.get('code'))}"
    return text


def rows(doc: dict[str, Any]) -> list[tuple[str, str]]:
    """What a person reads first, one row per subject, from the document's capability sections."""
    out = [("user", f"{doc['user_id']} (partition {doc['partition']}, {doc['events']:,} events, "
                     f"{doc['first_event']} .. {doc['last_event']})")]
    activity = doc.get("activity")
    if activity:
        segments = ", ".join(f"{k}={v}" for k, v in activity.get("segments", {}).items())
        out.append(("lifecycle", f"{activity['lifecycle']} on {activity['as_of_day']} (first active "
                                 f"{activity['first_active_day']}, last {activity['last_active_day']})"
                                 + (f"; {segments}" if segments else "")))
        out.append(("active days", f"{activity['active_days_7d']} of the last 7, {activity['active_days_30d']} "
                                   f"of the last 30"))
    if "sessions" in doc:
        out.append(("session", _session(doc["sessions"])))
    engagement = doc.get("engagement")
    if engagement is not None:
        out.append(("engagement score", "not scored yet" if engagement.get("score") is None
                    else f"{engagement['score']} (day {engagement['scored_day']})"))
    if "risk" in doc:
        out.append(("churn risk", _risk(doc["risk"])))
    if "accounts" in doc:
        out.append(("account", doc["accounts"].get("account") or "-"))
    usage = doc.get("usage")
    if usage:
        visits = usage.get("visits", {})
        actions = ", ".join(f"{name} {counts.get('7d', 0)}" for name, counts in usage.get("core_actions", {}).items()
                            if counts.get("7d"))
        out.append(("usage", f"visits {visits.get('7d', 0)} (7 d), {visits.get('30d', 0)} (30 d)"
                             + (f"; core actions (7 d): {actions}" if actions else "")))
    return out


def print_user(doc: dict[str, Any], console: Console | None = None) -> None:
    table = Table.grid(padding=(0, 2))
    table.add_column(style="bold")
    table.add_column(overflow="fold")
    for name, value in rows(doc):
        table.add_row(name, value)
    (console or Console()).print(table)
