"""The ``report`` command: one self-contained HTML file of a run, for people without Grafana.

It reads the combined day snapshots the rollup publishes on the metrics topic and the signals on
the signals topic (or a JSON-lines file of either, e.g. from ``streams tail --json``), keeps the
newest snapshot of every kind and day, and draws them with Plotly (its script inlined, so the file
opens anywhere, offline). Each chart has one unit on its axis: users, shares of MAU, sessions,
minutes, hours, health points, never a count and a duration together.

Two kinds of day are not what they seem and are told apart:

* **provisional**: the day was still open when the snapshot was taken (every partition reported,
  some not final yet). Drawn with hollow markers in a shaded band.
* **partial**: only some partitions had reported; its figures are a fraction of the day's, so it
  is not drawn at all (a drop that never happened), only counted under the chart.
"""

from __future__ import annotations

import asyncio
import html
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from pathlib import Path
from typing import Any, Iterable, Sequence

import orjson
import plotly.graph_objects as go
from plotly.offline import get_plotlyjs

from streams.config import LIFECYCLE_STATES, RISK_BANDS, Settings
from streams.tools.kafkaio import read_json

#: The accounts shown by name: the least healthy on the last day.
ACCOUNTS_SHOWN = 10
RISK_COLORS = {"medium": "#f3a712", "high": "#d62728"}
HEALTH_COLORS = {"red": "#d62728", "yellow": "#f3a712", "green": "#2ca02c"}
LIFECYCLE_COLORS = {"new": "#17a398", "returning": "#2f6fdf", "resurrected": "#7b2d8e", "dormant": "#9aa5b1"}


def _unwrap(rec: Any) -> Any:
    """A line of ``streams tail --json`` holds the record under ``value``."""
    if isinstance(rec, dict) and "value" in rec and "kind" not in rec and "type" not in rec:
        return rec["value"]
    return rec


def _rank(rec: dict[str, Any]) -> tuple[bool, int]:
    return bool(rec.get("final")), int(rec.get("partitions_reported") or 0)


def latest_snapshots(records: Iterable[Any]) -> dict[str, dict[str, dict[str, Any]]]:
    """kind -> period -> the snapshot to show: final beats provisional, more partitions beat fewer,
    then later beats earlier. Account snapshots are kept per account (``kind`` ``account_health:<id>``)."""
    out: dict[str, dict[str, dict[str, Any]]] = {}
    for rec in map(_unwrap, records):
        if not isinstance(rec, dict) or not isinstance(rec.get("figures"), dict) or "kind" not in rec:
            continue
        kind, period = str(rec["kind"]), str(rec.get("period"))
        if rec.get("account_id"):
            kind = f"{kind}:{rec['account_id']}"
        have = out.setdefault(kind, {}).get(period)
        if have is None or _rank(rec) >= _rank(have):
            out[kind][period] = rec
    return out


def signal_records(records: Iterable[Any]) -> list[dict[str, Any]]:
    return [rec for rec in map(_unwrap, records) if isinstance(rec, dict) and "type" in rec and "day" in rec]


def is_partial(snapshot: dict[str, Any]) -> bool:
    """Only some partitions had reported: the figures are a fraction of the day's."""
    reported, partitions = snapshot.get("partitions_reported"), snapshot.get("partitions")
    return not snapshot.get("final") and reported is not None and partitions is not None and reported < partitions


@dataclass
class Days:
    """The days of one snapshot kind that are drawn, and what was left out."""

    periods: list[str] = field(default_factory=list)
    snapshots: list[dict[str, Any]] = field(default_factory=list)
    partial: list[str] = field(default_factory=list)

    @classmethod
    def of(cls, by_period: dict[str, dict[str, Any]]) -> "Days":
        days = cls()
        for period in sorted(by_period):
            snapshot = by_period[period]
            if is_partial(snapshot):
                days.partial.append(period)
            else:
                days.periods.append(period)
                days.snapshots.append(snapshot)
        return days

    @property
    def provisional(self) -> list[str]:
        return [p for p, s in zip(self.periods, self.snapshots) if not s.get("final")]

    def values(self, *path: str, scale: float = 1.0) -> list[float | None]:
        out: list[float | None] = []
        for snapshot in self.snapshots:
            value: Any = snapshot["figures"]
            for key in path:
                value = value.get(key) if isinstance(value, dict) else None
            out.append(value * scale if isinstance(value, (int, float)) and not isinstance(value, bool) else None)
        return out


@dataclass
class Chart:
    """One figure and what a reader needs to know under it."""

    key: str
    figure: go.Figure
    note: str = ""


def _figure(title: str, y_title: str, days: Days | None = None, x_title: str = "day (event time)",
            percent: bool = False) -> go.Figure:
    fig = go.Figure()
    fig.update_layout(title={"text": title, "x": 0.01}, template="plotly_white", height=380,
                      margin={"l": 70, "r": 20, "t": 50, "b": 40}, hovermode="x unified",
                      legend={"orientation": "h", "yanchor": "top", "y": -0.3, "x": 0})
    fig.update_xaxes(title_text=x_title)
    fig.update_yaxes(title_text=y_title, rangemode="tozero", separatethousands=True,
                     tickformat=".0%" if percent else ",~r")
    if days is not None and days.provisional:
        half = timedelta(hours=12)  # the band covers the whole of each provisional day
        first, last = date.fromisoformat(days.provisional[0]), date.fromisoformat(days.provisional[-1])
        fig.add_vrect(x0=datetime.combine(first, time()) - half, x1=datetime.combine(last, time()) + half,
                      fillcolor="#f3a712", opacity=0.12, line_width=0,
                      annotation_text="provisional", annotation_position="top left")
    return fig


def _line(fig: go.Figure, days: Days, name: str, values: Sequence[float | None], color: str | None = None,
          stack: bool = False, dash: str | None = None) -> None:
    final = [bool(s.get("final")) for s in days.snapshots]
    fig.add_trace(go.Scatter(
        x=days.periods, y=list(values), name=name, mode="lines+markers", connectgaps=False,
        stackgroup="one" if stack else None,
        line={"color": color, "dash": dash} if color or dash else None,
        marker={"symbol": ["circle" if f else "circle-open" for f in final], "size": 6}))


def _note(days: Days) -> str:
    notes = []
    if days.provisional:
        notes.append(f"{len(days.provisional)} provisional day(s) (still open): hollow markers")
    if days.partial:
        notes.append(f"not drawn: {', '.join(days.partial)} (only some partitions had reported)")
    return "; ".join(notes)


def activity_charts(by_period: dict[str, dict[str, Any]]) -> list[Chart]:
    days = Days.of(by_period)
    note = _note(days)
    users = _figure("Active users", "users", days)
    for name, key in (("DAU", "dau"), ("WAU", "wau"), ("MAU", "mau")):
        _line(users, days, name, days.values(key))
    sticky = _figure("Stickiness", "share of monthly active users", days, percent=True)
    _line(sticky, days, "DAU / MAU", days.values("stickiness", "dau_mau"))
    _line(sticky, days, "WAU / MAU", days.values("stickiness", "wau_mau"))
    stock = _figure("Lifecycle: users by state at the end of the day", "users", days)
    for state in LIFECYCLE_STATES:
        _line(stock, days, state, days.values("lifecycle", state), LIFECYCLE_COLORS.get(state), stack=True)
    flows = _figure("Lifecycle flows: who was active, who turned dormant", "users per day", days)
    for state in LIFECYCLE_STATES:
        sign = -1.0 if state == "dormant" else 1.0
        label = "became dormant (below 0)" if state == "dormant" else f"active as {state}"
        flows.add_trace(go.Bar(x=days.periods, y=days.values("daily", state, scale=sign), name=label,
                               marker_color=LIFECYCLE_COLORS.get(state)))
    flows.update_layout(barmode="relative")
    return [Chart("active-users", users, note), Chart("stickiness", sticky, note),
            Chart("lifecycle-stock", stock, note), Chart("lifecycle-flows", flows, note)]


def session_charts(by_period: dict[str, dict[str, Any]]) -> list[Chart]:
    days = Days.of(by_period)
    note = _note(days)
    count = _figure("Sessions per day", "sessions", days)
    _line(count, days, "sessions", days.values("sessions"))
    length = _figure("Session length", "minutes per session", days)
    _line(length, days, "average duration", days.values("duration_seconds_avg", scale=1 / 60))
    _line(length, days, "average active time", days.values("active_time_seconds_avg", scale=1 / 60), dash="dot")
    total = _figure("Active time per day", "hours", days)
    _line(total, days, "active time", days.values("active_time_ms_sum", scale=1 / 3_600_000))
    return [Chart("sessions", count, note), Chart("session-length", length, note), Chart("active-time", total, note)]


def usage_charts(by_period: dict[str, dict[str, Any]]) -> list[Chart]:
    days = Days.of(by_period)
    note = _note(days)
    features = sorted({name for s in days.snapshots for name in s["figures"].get("features", {})})
    adoption = _figure("Feature adoption (28 days)", "share of users active in 28 days", days, percent=True)
    for name in features:
        _line(adoption, days, name, days.values("features", name, "adoption", "28d"))
    visits = _figure("Visits per day", "visits", days)
    _line(visits, days, "visits", days.values("visits", "1d"))
    return [Chart("visits", visits, note), Chart("feature-adoption", adoption, note)]


def risk_chart(signals: list[dict[str, Any]], periods: Sequence[str]) -> Chart | None:
    """Users in the medium and high churn-risk bands at the end of each day, from the churn_risk
    signals (every band change is one; a first assessment of low is not, so low is left out)."""
    changes = sorted((s for s in signals if s.get("type") == "churn_risk"),
                     key=lambda s: (s.get("event_time_ms") or 0, s.get("id") or ""))
    if not changes:
        return None
    days = sorted({*periods, *(str(s["day"]) for s in changes)})
    band: dict[str, str] = {}
    counts: dict[str, list[int]] = {name: [] for name in RISK_BANDS[1:]}
    pending = iter(changes)
    nxt = next(pending, None)
    for day in days:
        while nxt is not None and str(nxt["day"]) <= day:
            band[str(nxt.get("user_id"))] = str(nxt.get("to"))
            nxt = next(pending, None)
        for name in counts:
            counts[name].append(sum(1 for b in band.values() if b == name))
    fig = _figure("Churn risk: users in each band at the end of the day", "users")
    for name, values in counts.items():
        fig.add_trace(go.Scatter(x=days, y=values, name=name, mode="lines+markers", stackgroup="one",
                                 line={"color": RISK_COLORS.get(name)}))
    return Chart("risk-bands", fig, f"from {len(changes):,} churn_risk signals")


def account_charts(snapshots: dict[str, dict[str, dict[str, Any]]]) -> list[Chart]:
    accounts = {kind.split(":", 1)[1]: by_period for kind, by_period in snapshots.items()
                if kind.startswith("account_health:")}
    if not accounts:
        return []
    last = {acct: by_period[max(by_period)] for acct, by_period in accounts.items()}
    worst = sorted(last, key=lambda a: (last[a]["figures"].get("health", 100.0), a))[:ACCOUNTS_SHOWN]

    def name(acct: str) -> str:
        label = last[acct]["figures"].get("name") or last[acct].get("account_name")
        return f"{label} ({acct})" if label else acct

    bars = _figure(f"The {len(worst)} accounts most at risk (lowest health on their last day)", "account",
                   x_title="health (0-100)")
    shown = list(reversed(worst))  # the worst at the top
    bars.add_trace(go.Bar(
        y=[name(a) for a in shown], x=[last[a]["figures"].get("health") for a in shown], orientation="h",
        name="health", marker_color=[HEALTH_COLORS.get(str(last[a]["figures"].get("band")), "#999") for a in shown],
        text=[f"{last[a]['figures'].get('band')} {last[a]['figures'].get('arrow', '')} "
              f"seats {last[a]['figures'].get('active_seats', '-')}/{last[a]['figures'].get('seats', '-')}"
              for a in shown], textposition="auto"))
    bars.update_xaxes(range=[0, 100])
    bars.update_yaxes(rangemode=None, tickformat=None, type="category")
    bars.update_layout(height=120 + 28 * len(worst), hovermode="closest", showlegend=False)
    trend = _figure("Health of those accounts over time", "health (0-100)")
    for acct in worst:
        by_period = accounts[acct]
        periods = sorted(by_period)
        trend.add_trace(go.Scatter(x=periods, y=[by_period[p]["figures"].get("health") for p in periods],
                                   name=name(acct), mode="lines+markers"))
    trend.update_yaxes(range=[0, 100])
    note = f"{len(accounts)} accounts with a health snapshot; the {len(worst)} least healthy are named"
    return [Chart("accounts-at-risk", bars, note), Chart("account-health", trend, note)]


SECTIONS = (("activity_day", "Active users, stickiness and lifecycle", activity_charts),
            ("sessions_day", "Sessions and active time", session_charts),
            ("usage_day", "Usage", usage_charts))


def build_charts(records: Sequence[Any]) -> list[tuple[str, list[Chart]]]:
    """(section title, charts) in reading order."""
    snapshots = latest_snapshots(records)
    sections: list[tuple[str, list[Chart]]] = []
    for kind, title, make in SECTIONS:
        if snapshots.get(kind):
            sections.append((title, make(snapshots[kind])))
    risk = risk_chart(signal_records(records), sorted(snapshots.get("activity_day", {})))
    health = account_charts(snapshots)
    if risk or health:
        sections.append(("Churn risk and account health", ([risk] if risk else []) + health))
    return sections


def render(records: Sequence[Any], title: str = "Engagement report") -> str:
    """The HTML document: Plotly's script once, then one div per chart."""
    sections = build_charts(records)
    periods = sorted({str(r.get("period")) for r in map(_unwrap, records) if isinstance(r, dict) and "period" in r})
    span = f"{periods[0]} to {periods[-1]}" if periods else "no snapshots"
    body = []
    for heading, charts in sections:
        body.append(f"<section><h2>{html.escape(heading)}</h2><div class=\"charts\">")
        for chart in charts:
            div = chart.figure.to_html(full_html=False, include_plotlyjs=False, div_id=f"chart-{chart.key}",
                                       config={"displayModeBar": False, "responsive": True})
            note = f"<p class=\"note\">{html.escape(chart.note)}</p>" if chart.note else ""
            body.append(f"<figure class=\"chart\" data-chart=\"{chart.key}\">{div}{note}</figure>")
        body.append("</div></section>")
    if not sections:
        body.append("<p class=\"empty\">No snapshots were found on the metrics topic.</p>")
    return (_HEAD.replace("__TITLE__", html.escape(title)).replace("__PLOTLY__", get_plotlyjs())
            + f"<h1>{html.escape(title)}</h1><div class=\"meta\">Days {html.escape(span)}, event time (UTC days "
              "unless [activity].timezone says otherwise). Hollow markers in a shaded band: provisional days "
              "(still open). Days only some partitions had reported are not drawn.</div>"
            + "".join(body) + "</body></html>\n")


def read_records(settings: Settings, source: str | Path | None, idle_timeout: float) -> list[Any]:
    if source is not None:
        return [orjson.loads(line) for line in Path(source).read_bytes().splitlines() if line.strip()]

    async def both() -> list[Any]:
        metrics = await read_json(settings, settings.metrics_topic, idle_timeout=idle_timeout)
        return metrics + await read_json(settings, settings.signals_topic, idle_timeout=idle_timeout)

    return asyncio.run(both())


def write_report(settings: Settings, out: str | Path, source: str | Path | None = None,
                 idle_timeout: float = 3.0) -> int:
    """Read snapshots and signals (topics or file), write the HTML; returns how many snapshots it shows."""
    records = read_records(settings, source, idle_timeout)
    Path(out).write_text(render(records), encoding="utf-8")
    snapshots = latest_snapshots(records)
    return sum(len(periods) for periods in snapshots.values())


_HEAD = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>__TITLE__</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>
 body { font: 14px/1.4 system-ui, sans-serif; margin: 24px; color: #1d2433; background: #fafbfc; }
 h1 { font-size: 22px; margin: 0 0 4px; } .meta { color: #667; margin-bottom: 20px; max-width: 1100px; }
 section { background: #fff; border: 1px solid #e3e6ea; border-radius: 8px; padding: 12px 16px; margin: 0 0 18px; }
 h2 { font-size: 16px; margin: 4px 0 8px; }
 .charts { display: grid; grid-template-columns: repeat(auto-fill, minmax(560px, 1fr)); gap: 16px; }
 figure { margin: 0; min-width: 0; } .note { color: #667; font-size: 12px; margin: 2px 8px; }
 .empty { color: #a33; }
</style>
<script>__PLOTLY__</script>
</head><body>
"""
