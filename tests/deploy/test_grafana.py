"""deploy/grafana: the provisioning fits the dashboards, and every panel's query returns data from a
real Prometheus (Debian's binary) scraping two real workers fed by the simulator (then a steady
trickle of live events, so that rates have traffic)."""

from __future__ import annotations

import json
import math
import os
import re
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Iterator

import orjson
import pytest
import yaml

from streams.config import ENV_PREFIX, Settings, settings_to_toml
from streams.local.broker import free_port
from tests.support.debian_tools import debian_tool
from tests.support.fleet import start_fleet
from tests.support.wait import wait_for

pytestmark = pytest.mark.needs_debian("prometheus")

REPO = Path(__file__).resolve().parents[2]
GRAFANA = REPO / "deploy" / "grafana"
DASHBOARDS = sorted((GRAFANA / "dashboards").glob("*.json"))
RULE_FILES = sorted((REPO / "deploy" / "prometheus" / "rules").glob("*.yml"))
#: What Grafana substitutes for its interval variables (the test Prometheus scrapes every second),
#: and for the dashboards' own variables set to "All" (their ``allValue``).
GRAFANA_VARIABLES = {"$__rate_interval": "10s", "$__interval": "2s", "$dimension": ".*", "$value": ".*"}
#: Metrics the alert rules use ahead of the capability that will expose them (churn risk and
#: account health signals). Nothing else may be missing; reconcile the rules when it lands.
PENDING_METRICS: set[str] = set()
#: The metrics reference: every metric a worker exposes is documented there.
METRIC_DOCS = [REPO / "docs" / "metrics.md"]


def referenced_metrics() -> set[str]:
    """Worker metric names used by the alert rules and the dashboards."""
    texts = [p.read_text() for p in [*RULE_FILES, *DASHBOARDS]]
    return {name for text in texts for name in re.findall(r"\b(engagement_[a-z0-9_]+)", text)}


def panels(dashboard: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Every panel with queries (rows, collapsed rows' children included)."""
    for panel in dashboard["panels"]:
        if panel["type"] == "row":
            yield from panel.get("panels", [])
        else:
            yield panel


def substitute(expr: str) -> str:
    for variable, value in GRAFANA_VARIABLES.items():
        expr = expr.replace(variable, value)
    return expr


def queries() -> list[tuple[str, str, str]]:
    """(dashboard, panel title, PromQL as Grafana would send it) for every target, and for every
    ``label_values(selector, label)`` variable the query listing that label's values."""
    found = []
    for path in DASHBOARDS:
        dashboard = json.loads(path.read_text())
        for variable in dashboard["templating"]["list"]:
            query = variable["query"]["query"]
            match = re.fullmatch(r"label_values\((.+), (\w+)\)", query)
            assert match, f"{path.name}: variable {variable['name']}: not a label_values() query: {query}"
            assert variable["allValue"] == GRAFANA_VARIABLES[f"${variable['name']}"]
            found.append((dashboard["title"], f"${variable['name']}",
                          f"count by ({match.group(2)}) ({substitute(match.group(1))})"))
        for panel in panels(dashboard):
            for target in panel["targets"]:
                expr = substitute(target["expr"])
                assert "$" not in expr, f"{path.name} / {panel['title']}: unknown variable in {expr}"
                found.append((dashboard["title"], panel["title"], expr))
    return found


def test_two_dashboards_are_provisioned_on_the_provisioned_data_source() -> None:
    titles = {json.loads(p.read_text())["title"] for p in DASHBOARDS}
    assert titles == {"Engagement overview", "Pipeline health"}
    source = yaml.safe_load((GRAFANA / "provisioning" / "datasources" / "prometheus.yml").read_text())["datasources"][0]
    assert source["type"] == "prometheus" and source["url"] == "http://prometheus:9090"
    uids = set()
    for path in DASHBOARDS:
        dashboard = json.loads(path.read_text())
        uids.add(dashboard["uid"])
        occupied: set[tuple[int, int]] = set()
        for panel in dashboard["panels"]:
            grid = panel["gridPos"]
            cells = {(x, y) for x in range(grid["x"], grid["x"] + grid["w"])
                     for y in range(grid["y"], grid["y"] + grid["h"])}
            assert grid["x"] + grid["w"] <= 24 and not cells & occupied, f"{path.name}: {panel['title']} overlaps"
            occupied |= cells
        for panel in panels(dashboard):
            assert panel["targets"], panel["title"]
            assert panel["datasource"]["uid"] == source["uid"], panel["title"]
            assert all(t["datasource"]["uid"] == source["uid"] for t in panel["targets"]), panel["title"]
    assert len(uids) == len(DASHBOARDS)


def family(series: str, exposed: set[str]) -> str:
    """The documented name of a series: a histogram's ``_bucket`` / ``_sum`` / ``_count`` belong to it."""
    base = re.sub(r"_(bucket|sum|count)$", "", series)
    return base if f"{base}_bucket" in exposed else series


class Prometheus:
    """Debian's Prometheus on a free loopback port, scraping the given targets every second, with
    the repository's rule files loaded (so it also proves the rules load in a real server)."""

    def __init__(self, workdir: Path, targets: list[str]) -> None:
        self.port = free_port()
        self.workdir = workdir
        config = {"global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
                  "rule_files": [str(p) for p in RULE_FILES],
                  "scrape_configs": [{"job_name": "engagement-worker", "static_configs": [{"targets": targets}]}]}
        (workdir / "prometheus.yml").write_text(yaml.safe_dump(config))
        self.proc: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> "Prometheus":
        log = open(self.workdir / "prometheus.log", "wb")
        self.proc = subprocess.Popen(
            [debian_tool("prometheus"), f"--config.file={self.workdir / 'prometheus.yml'}",
             f"--storage.tsdb.path={self.workdir / 'tsdb'}", f"--web.listen-address=127.0.0.1:{self.port}",
             "--log.level=warn"], stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        wait_for(self.ready, timeout=30, message="Prometheus ready")
        return self

    def __exit__(self, *exc: Any) -> None:
        if self.proc is not None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def ready(self) -> bool:
        assert self.proc is not None and self.proc.poll() is None, "Prometheus exited"
        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/-/ready", timeout=2) as resp:
            return resp.status == 200

    def query(self, expr: str) -> list[dict[str, Any]]:
        url = f"http://127.0.0.1:{self.port}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
        with urllib.request.urlopen(url, timeout=5) as resp:
            doc = orjson.loads(resp.read())
        assert doc["status"] == "success", doc
        return doc["data"]["result"]

    def names(self) -> set[str]:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/api/v1/label/__name__/values", timeout=5) as resp:
            return set(orjson.loads(resp.read())["data"])

    def values(self, expr: str) -> list[float]:
        """The finite sample values of an instant query (NaN, e.g. 0/0, is not data)."""
        return [v for v in (float(r["value"][1]) for r in self.query(expr)) if math.isfinite(v)]


def simulate_history(settings: Settings, workdir: Path, users: int = 300, days: int = 3) -> list[dict[str, Any]]:
    """``streams simulate`` (the real command) for the last ``days`` up to now, published with
    ``streams produce`` as the compose stack does; returns the simulated events."""
    start = datetime.fromtimestamp(time.time() - days * 86400, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S")
    history = workdir / "history.jsonl"
    config = workdir / "settings.toml"
    config.write_text(settings_to_toml(settings))
    env = {k: v for k, v in os.environ.items() if not k.startswith(ENV_PREFIX)}
    for argv in (["simulate", "--users", str(users), "--days", str(days), "--start", start, "--quiet",
                  "-o", str(history)],
                 ["produce", "--config", str(config), "--quiet", str(history)]):
        done = subprocess.run([sys.executable, "-m", "streams", *argv], env=env, capture_output=True, text=True)
        assert done.returncode == 0, done.stderr
    return [orjson.loads(line) for line in history.read_bytes().splitlines()]


@pytest.mark.integration
def test_every_dashboard_panel_returns_data(make_settings: Any, workers: Any, tmp_path: Path) -> None:
    from tests.support.deploy_feed import Feeder

    settings = make_settings(partitions=4)
    fleet = start_fleet(workers, settings, tmp_path)
    targets = [f"{w.settings.web_host}:{w.settings.web_port}" for w in fleet]
    with Prometheus(tmp_path, targets) as prom:
        wait_for(lambda: len(prom.values('up{job="engagement-worker"} == 1')) == 2, timeout=30,
                 message="both workers scraped")
        # The simulated history gives the business panels their figures (Prometheus watches it
        # arrive, so increases over time show); the feeder then keeps live traffic coming so that
        # rates and the dead-letter share have something to divide.
        history = simulate_history(settings, tmp_path)
        with Feeder(settings) as feed:
            pending = queries()
            deadline = time.monotonic() + 60
            while pending and time.monotonic() < deadline:
                pending = [q for q in pending if not prom.values(q[2])]
                time.sleep(1)
            assert not pending, f"panels whose query returns no data: {pending}"

        # The rules and dashboards use metrics the workers really expose, and every exposed
        # metric is documented.
        exposed = prom.names()
        assert referenced_metrics() - exposed - PENDING_METRICS == set()
        docs = "\n".join(p.read_text() for p in METRIC_DOCS)
        families = {family(n, exposed) for n in exposed if n.startswith("engagement_")}
        assert {n for n in families if f"`{n}`" not in docs} == set(), "metrics missing from docs/metrics.md"

        # Not double counted across the two workers: the fleet totals equal what was fed,
        # counted here in plain Python.
        events = history + feed.sent
        expected = {"sum(engagement_users)": len({user_of(doc) for doc in events}),
                    "sum(engagement_applied_events)": len(events),
                    'sum(engagement_events_total{outcome="applied"})': len(events),
                    'sum(engagement_dead_letters_total{reason="invalid_json"})': feed.invalid,
                    'sum(engagement_output_messages_total{output="dead_letters"})': feed.invalid,
                    "sum(engagement_assigned_partitions)": 4}
        wait_for(lambda: {q: prom.values(q) for q in expected} == {q: [float(v)] for q, v in expected.items()},
                 timeout=30, message=f"fleet totals {expected}")
        # DAU of the open day (the day each partition's gauges describe; all four are on the same
        # day, the day of the newest events) = distinct users with an activity event in it.
        open_days = set(prom.values("engagement_activity_open_day_timestamp_seconds"))
        assert len(open_days) == 1, open_days
        day_start = datetime.fromtimestamp(open_days.pop(), timezone.utc)
        dau = {user_of(doc) for doc in events if doc["type"] in ("track", "page", "screen")
               and day_start <= event_time(doc) < day_start + timedelta(days=1)}
        assert dau
        wait_for(lambda: prom.values('sum(engagement_active_users{window="1d"})') == [float(len(dau))],
                 timeout=30, message=f"fleet DAU == {len(dau)}")


def user_of(doc: dict[str, Any]) -> str:
    return doc.get("user_id") or doc["anonymous_id"]


def event_time(doc: dict[str, Any]) -> datetime:
    """The event's time, read independently of the pipeline's parser (RFC 3339 or epoch ms)."""
    ts = doc["timestamp"]
    if isinstance(ts, (int, float)):
        return datetime.fromtimestamp(ts / 1000, timezone.utc)
    return datetime.fromisoformat(ts)
