"""The ``report`` command: one self-contained HTML file of a run, for people without Grafana.

It reads the combined snapshots the rollup publishes on the metrics topic (or a JSON-lines file
of them, e.g. from ``streams tail --what metrics --json``), keeps the newest snapshot of every
kind and period (final ones win), and draws each kind's figures over time: counts in one chart,
ratios (0-1) in another. The data is embedded as JSON and the charts are drawn by a small inline
script into SVG, so the file opens anywhere, offline, with no library or CDN.
"""

from __future__ import annotations

import asyncio
import html
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterable

import orjson

from streams.config import Settings
from streams.tools.kafkaio import read_json

#: Charts people look at first; other kinds follow alphabetically.
KIND_ORDER = ("activity_day", "sessions_day", "usage_day", "engagement_day", "risk_day", "accounts_day")
MAX_SERIES = 8
DURATION_SUFFIXES = ("_s", "_seconds")


def latest_snapshots(records: Iterable[Any]) -> dict[str, dict[str, dict[str, Any]]]:
    """kind -> period -> the snapshot to show (final beats provisional; later beats earlier)."""
    out: dict[str, dict[str, dict[str, Any]]] = {}
    for rec in records:
        if isinstance(rec, dict) and "value" in rec and "kind" not in rec:
            rec = rec["value"]  # a line of `streams tail --json`
        if not isinstance(rec, dict) or not isinstance(rec.get("figures"), dict):
            continue
        kind, period = str(rec.get("kind")), str(rec.get("period"))
        have = out.setdefault(kind, {}).get(period)
        if have is None or rec.get("final") or not have.get("final"):
            out[kind][period] = rec
    return out


def chart_series(snapshots: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """The charts of one kind: top-level numeric figures over periods, split into counts, ratios
    and durations, so series of one scale share an axis."""
    periods = sorted(snapshots)
    names: list[str] = []
    for period in periods:
        for name, value in snapshots[period]["figures"].items():
            if isinstance(value, (int, float)) and not isinstance(value, bool) and name not in names:
                names.append(name)

    def values(name: str) -> list[float | None]:
        return [snapshots[p]["figures"].get(name) for p in periods]

    ratios = [n for n in names if all(v is None or 0 <= v <= 1 for v in values(n))
              and any(isinstance(v, float) for v in values(n))]
    durations = [n for n in names if n not in ratios and n.endswith(DURATION_SUFFIXES)]
    counts = [n for n in names if n not in ratios and n not in durations]
    charts = []
    for title, group in (("counts", counts), ("ratios (0-1)", ratios), ("time (seconds)", durations)):
        if group:
            charts.append({"title": title, "periods": periods, "final": [bool(snapshots[p].get("final")) for p in periods],
                           "series": [{"name": n, "values": values(n)} for n in group[:MAX_SERIES]]})
    return charts


def render(snapshots: dict[str, dict[str, dict[str, Any]]], title: str = "Engagement report") -> str:
    """The HTML document (charts drawn in the browser from the embedded data)."""
    kinds = sorted(snapshots, key=lambda k: (KIND_ORDER.index(k) if k in KIND_ORDER else len(KIND_ORDER), k))
    data = [{"kind": kind, "charts": chart_series(snapshots[kind])} for kind in kinds]
    generated = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    payload = orjson.dumps(data).decode().replace("</", "<\\/")
    return _TEMPLATE.replace("__TITLE__", html.escape(title)).replace("__GENERATED__", generated) \
        .replace("__DATA__", payload)


def write_report(settings: Settings, out: str | Path, source: str | Path | None = None,
                 idle_timeout: float = 3.0) -> int:
    """Read snapshots (topic or file), write the HTML; returns how many snapshots it shows."""
    if source is not None:
        records = [orjson.loads(line) for line in Path(source).read_bytes().splitlines() if line.strip()]
    else:
        records = asyncio.run(read_json(settings, settings.metrics_topic, idle_timeout=idle_timeout))
    snapshots = latest_snapshots(records)
    Path(out).write_text(render(snapshots), encoding="utf-8")
    return sum(len(periods) for periods in snapshots.values())


_TEMPLATE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>__TITLE__</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>
 body { font: 14px/1.4 system-ui, sans-serif; margin: 24px; color: #1d2433; background: #fafbfc; }
 h1 { font-size: 22px; margin: 0 0 4px; } .meta { color: #667; margin-bottom: 20px; }
 section { background: #fff; border: 1px solid #e3e6ea; border-radius: 8px; padding: 12px 16px; margin: 0 0 18px; }
 h2 { font-size: 16px; margin: 4px 0 8px; } .charts { display: flex; flex-wrap: wrap; gap: 16px; }
 figure { margin: 0; } figcaption { color: #556; font-size: 12px; margin-bottom: 4px; }
 .legend span { display: inline-block; margin-right: 12px; font-size: 12px; }
 .legend i { display: inline-block; width: 10px; height: 10px; margin-right: 4px; border-radius: 2px; }
 .empty { color: #a33; }
</style></head>
<body><h1>__TITLE__</h1>
<div class="meta">Generated __GENERATED__ from the pipeline's metrics topic. Hollow points are provisional
(the period was still open); filled points are final.</div>
<div id="report"></div>
<script id="data" type="application/json">__DATA__</script>
<script>
(function () {
  var data = JSON.parse(document.getElementById("data").textContent);
  var colors = ["#2f6fdf", "#e4572e", "#17a398", "#f3a712", "#7b2d8e", "#29335c", "#8c564b", "#669bbc"];
  var root = document.getElementById("report"), NS = "http://www.w3.org/2000/svg";
  function el(name, attrs, parent) {
    var node = document.createElementNS(NS, name);
    for (var k in attrs) node.setAttribute(k, attrs[k]);
    if (parent) parent.appendChild(node);
    return node;
  }
  function chart(spec) {
    var W = 560, H = 240, L = 56, R = 12, T = 10, B = 40;
    var all = [];
    spec.series.forEach(function (s) { s.values.forEach(function (v) { if (v !== null) all.push(v); }); });
    var lo = Math.min(0, Math.min.apply(null, all)), hi = Math.max.apply(null, all);
    if (hi === lo) hi = lo + 1;
    var n = spec.periods.length;
    var x = function (i) { return L + (n < 2 ? (W - L - R) / 2 : i * (W - L - R) / (n - 1)); };
    var y = function (v) { return T + (H - T - B) * (1 - (v - lo) / (hi - lo)); };
    var svg = el("svg", {width: W, height: H, viewBox: "0 0 " + W + " " + H, "class": "chart"});
    for (var g = 0; g <= 4; g++) {
      var v = lo + (hi - lo) * g / 4, gy = y(v);
      el("line", {x1: L, x2: W - R, y1: gy, y2: gy, stroke: "#eceff3"}, svg);
      el("text", {x: L - 6, y: gy + 4, "text-anchor": "end", "font-size": 10, fill: "#667"}, svg)
        .textContent = Math.abs(hi) <= 1 ? v.toFixed(2) : Math.round(v).toLocaleString();
    }
    var step = Math.max(1, Math.ceil(n / 8));
    spec.periods.forEach(function (p, i) {
      if (i % step === 0) el("text", {x: x(i), y: H - B + 16, "text-anchor": "middle", "font-size": 10, fill: "#667"}, svg).textContent = p;
    });
    spec.series.forEach(function (s, si) {
      var c = colors[si % colors.length], d = "";
      s.values.forEach(function (v, i) { if (v !== null) d += (d ? "L" : "M") + x(i).toFixed(1) + "," + y(v).toFixed(1); });
      el("path", {d: d, fill: "none", stroke: c, "stroke-width": 2, "class": "series", "data-series": s.name}, svg);
      s.values.forEach(function (v, i) {
        if (v !== null) el("circle", {cx: x(i), cy: y(v), r: 2.5, fill: spec.final[i] ? c : "#fff", stroke: c}, svg);
      });
    });
    return svg;
  }
  if (!data.length) {
    var p = document.createElement("p"); p.className = "empty";
    p.textContent = "No snapshots were found on the metrics topic."; root.appendChild(p);
  }
  data.forEach(function (kind) {
    var sec = document.createElement("section"), h = document.createElement("h2");
    h.textContent = kind.kind.replace(/_/g, " "); sec.appendChild(h);
    var box = document.createElement("div"); box.className = "charts"; sec.appendChild(box);
    kind.charts.forEach(function (spec) {
      var fig = document.createElement("figure"), cap = document.createElement("figcaption");
      cap.textContent = spec.title; fig.appendChild(cap); fig.appendChild(chart(spec));
      var legend = document.createElement("div"); legend.className = "legend";
      spec.series.forEach(function (s, si) {
        var span = document.createElement("span"), sw = document.createElement("i");
        sw.style.background = colors[si % colors.length]; span.appendChild(sw);
        span.appendChild(document.createTextNode(s.name)); legend.appendChild(span);
      });
      fig.appendChild(legend); box.appendChild(fig);
    });
    root.appendChild(sec);
  });
  document.body.setAttribute("data-charts-drawn", String(document.querySelectorAll("svg.chart").length));
})();
</script></body></html>
"""
