"""The commands a person runs: produce, tail, demo (with Ctrl-C), bench, on the embedded broker."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import orjson
import pytest

from streams.local.broker import EmbeddedBroker
from streams.tools.kafkaio import read_json
from tests.unit.config.test_config import run_cli

pytestmark = pytest.mark.integration


def test_embedded_broker_answers_and_leaves_nothing_behind() -> None:
    broker = EmbeddedBroker().start()
    pid = broker.pid
    assert pid is not None and Path(f"/proc/{pid}").exists()
    broker.stop()
    time.sleep(0.2)
    assert not Path(f"/proc/{pid}").exists() or b"zombie" in Path(f"/proc/{pid}/status").read_bytes().lower()


def test_produce_reports_invalid_lines_and_sends_valid_ones(make_settings: Any, tmp_path: Path) -> None:
    settings = make_settings()
    lines = [
        {"event_id": "a", "type": "track", "event": "x", "user_id": "u1", "timestamp": "2026-11-01T10:00:00Z"},
        "not json at all",
        {"event_id": "b", "type": "track", "user_id": "u1", "timestamp": "2026-11-01T10:00:00Z"},  # no event name
        {"event_id": "c", "type": "page", "user_id": "u2", "timestamp": 1793527200000},
    ]
    path = tmp_path / "events.jsonl"
    path.write_text("\n".join(line if isinstance(line, str) else json.dumps(line) for line in lines) + "\n")
    env = {"ENGAGEMENT_BOOTSTRAP": settings.bootstrap, "ENGAGEMENT_EVENTS_TOPIC": settings.events_topic}
    result = run_cli("produce", "--quiet", str(path), env=env)
    err = result.stderr.decode()
    assert result.returncode == 1  # invalid lines were skipped: the exit code says so
    assert "line 2: invalid_json" in err and "line 3: schema" in err
    assert "sent 2 events" in err
    import asyncio
    sent = asyncio.run(read_json(settings, settings.events_topic, idle_timeout=2))
    assert sorted(doc["event_id"] for doc in sent) == ["a", "c"]

    tailed = run_cli("tail", "--what", "events", "--json", "--idle-timeout", "2", env=env)
    records = [orjson.loads(line) for line in tailed.stdout.splitlines()]
    assert sorted((r["key"], r["value"]["event_id"]) for r in records) == [("u1", "a"), ("u2", "c")]


def test_demo_runs_shows_metrics_and_cleans_up_on_ctrl_c(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    env.pop("ENGAGEMENT_BOOTSTRAP", None)
    demo = subprocess.Popen([sys.executable, "-m", "streams", "demo", "--users", "150", "--history-days", "3",
                             "--no-live"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN))  # as a background job
    assert demo.stdout is not None
    seen: list[str] = []
    broker_addr = metrics_url = None
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and metrics_url is None:
        line = demo.stdout.readline().decode()
        seen.append(line)
        if line.startswith("broker "):
            broker_addr = line.split()[1].rstrip(";")
        if "worker metrics:" in line:
            metrics_url = line.split("worker metrics:")[1].split()[0]
    assert broker_addr and metrics_url, "".join(seen)
    import urllib.request
    # Not a terminal: a plain progress line every few seconds, while it runs.
    progress = None
    while time.monotonic() < deadline and not (progress and int(progress.group(2).replace(",", "")) > 0):
        line = demo.stdout.readline().decode()
        seen.append(line)
        progress = re.search(r"sent ([\d,]+), consumed ([\d,]+) \(lag ([\d,]+)\)", line)
    assert progress, "".join(seen)
    body = urllib.request.urlopen(metrics_url, timeout=5).read().decode()
    applied = [ln for ln in body.splitlines() if ln.startswith('engagement_events_total{outcome="applied"}')]
    assert applied and float(applied[0].split()[-1]) > 0
    demo.send_signal(signal.SIGINT)
    out, _ = demo.communicate(timeout=60)
    assert demo.returncode in (0, 130, -2)
    assert "demo stopped" in out.decode()
    # The summary counts what the view counted: every message sent, none lost from the count.
    summary = re.search(r"summary: .*sent ([\d,]+), consumed ([\d,]+)", out.decode())
    assert summary, out.decode()
    sent = [int(m.replace(",", "")) for m in re.findall(r"sent ([\d,]+), consumed", "".join(seen) + out.decode())]
    assert int(summary.group(1).replace(",", "")) == max(sent) > 0
    pids = [int(p) for p in re.findall(r"pid (\d+)", "".join(seen))]
    assert len(pids) == 2, "".join(seen)
    for pid in pids:  # the broker and the worker are gone (not even left as zombies of ours)
        assert not Path(f"/proc/{pid}").exists() or b"zombie" in Path(f"/proc/{pid}/status").read_bytes().lower()


def test_bench_measures_both_modes_over_every_event_of_each_workload(tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    env = {k: v for k, v in os.environ.items() if not k.startswith("ENGAGEMENT_")}
    result = subprocess.run([sys.executable, "-m", "streams", "bench", "--events", "3000", "--users", "100",
                             "--workload", "dense", "--workload", "sparse", "--scale", "0.002",
                             "--repeat", "1", "--json-out", str(out)], capture_output=True, env=env, timeout=600)
    assert result.returncode == 0, result.stderr.decode()[-3000:]
    doc = orjson.loads(out.read_bytes())
    assert list(doc["workloads"]) == ["dense", "sparse"]
    dense, sparse = doc["workloads"]["dense"], doc["workloads"]["sparse"]
    assert dense["events"] == 3000 and sparse["events"] > 3000 and sparse["users"] == 100
    for w in (dense, sparse):
        assert [r["mode"] for r in w["runs"]] == ["bare", "pipeline"]
        assert all(r["events"] == w["events"] and r["events_per_s"] > 0 and r["peak_rss_mb"] > 0 for r in w["runs"])
        assert w["ratio"] == pytest.approx(w["pipeline"]["events_per_s"] / w["bare"]["events_per_s"])
        bare, pipeline = w["runs"]
        # The bare agent produces nothing; the pipeline's records include sessions and signals (a run
        # this short ends before its first commit, so before any state changelog record).
        assert bare["sent"] == {} and bare["handle_us"] == 0
        assert pipeline["sent"].get("engagement-sessions", 0) > 0 and pipeline["sent"].get("engagement-signals", 0) > 0
        assert pipeline["handle_us"] > 0 and pipeline["loop_block_ms"] > 0
        assert w["pipeline"]["outputs_per_event"] == pytest.approx(sum(pipeline["sent"].values()) / w["events"])
    floors = {f["what"]: f for f in doc["floors"]}
    assert floors["sparse events/s / dense events/s"]["value"] == pytest.approx(
        sparse["pipeline"]["events_per_s"] / dense["pipeline"]["events_per_s"], abs=1e-3)
    assert "dense: pipeline / bare" in result.stdout.decode()