"""``streams up``: the embedded broker and a worker for a person's own events, as the README's quick
start uses them: the events typed there are produced, looked up, and Ctrl-C leaves nothing behind."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import pytest

from streams.local.broker import free_port
from tests.support.wait import wait_for
from tests.unit.config.test_config import run_cli

pytestmark = pytest.mark.integration
README = Path(__file__).resolve().parents[2] / "README.md"


def quick_start_events(now: str) -> list[str]:
    """The JSON lines of the README's quick start (between ``<<EOF`` and ``EOF``), ``$now`` filled in."""
    text = README.read_text()
    block = re.search(r"<<EOF\n(.*?)\nEOF\n", text, re.S)
    assert block, "the README's quick start has no 'streams produce - <<EOF' block"
    return [line.replace("$now", now) for line in block.group(1).splitlines()]


def children(pid: int) -> list[int]:
    return [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]


def gone(pid: int) -> bool:
    status = Path(f"/proc/{pid}/status")
    return not status.exists() or b"zombie" in status.read_bytes().lower()


def test_up_serves_my_events_and_stops_cleanly_on_ctrl_c() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ENGAGEMENT_")}
    env["PYTHONUNBUFFERED"] = "1"
    port, web_port = free_port(), free_port()
    # Started the way a script's background job is, with SIGINT ignored: Ctrl-C must still stop it.
    up = subprocess.Popen([sys.executable, "-m", "streams", "up", "--port", str(port), "--web-port", str(web_port)],
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env,
                          preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN))
    assert up.stdout is not None
    seen: list[str] = []
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not any("streams report" in line for line in seen):
            line = up.stdout.readline().decode()
            if not line and up.poll() is not None:
                break
            seen.append(line)
        text = "".join(seen)
        assert f"Kafka bootstrap   127.0.0.1:{port}" in text, text
        url = f"http://127.0.0.1:{web_port}"
        assert f"{url}/metrics" in text and f"{url}/users/<user_id>" in text
        assert f"export ENGAGEMENT_BOOTSTRAP=127.0.0.1:{port} ENGAGEMENT_WORKER_URL={url}" in text
        for command in ("streams produce", "streams tail --what signals", "streams user <user_id>"):
            assert command in text
        started = children(up.pid)
        assert len(started) == 2  # the broker and the worker

        # The README's events, produced the way it says (stdin), then looked up the way it says.
        now = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
        lines = quick_start_events(now)
        docs = [json.loads(line) for line in lines]
        client_env = {"ENGAGEMENT_BOOTSTRAP": f"127.0.0.1:{port}", "ENGAGEMENT_WORKER_URL": url}
        produced = run_cli("produce", "-", env=client_env, stdin="\n".join(lines).encode())
        assert produced.returncode == 0, produced.stderr
        assert f"sent {len(docs)} events" in produced.stderr.decode()
        user = docs[0]["user_id"]
        mine = [d for d in docs if d["user_id"] == user]
        looked_up = wait_for(lambda: (lambda r: r if r.returncode == 0 else None)(
            run_cli("user", user, "--json", env=client_env)), timeout=30, message=f"{user} known")
        doc = json.loads(looked_up.stdout)
        assert doc["events"] == len(mine)
        assert doc["accounts"]["account"] == mine[-1]["account_id"]
        assert doc["activity"]["lifecycle"] == "new" and doc["activity"]["active_days"] == [now[:10]]
        printed = run_cli("user", user, env=client_env).stdout.decode()
        assert re.search(r"lifecycle\s+new", printed)
    finally:
        up.send_signal(signal.SIGINT)
        out, _ = up.communicate(timeout=60)
    assert up.returncode == 0, out.decode()
    assert out.decode().rstrip().endswith("stopped.")
    for pid in started:
        assert gone(pid), pid


def test_a_closed_terminal_stops_up_and_what_it_started() -> None:
    """SIGHUP (the terminal went away) reaches only ``streams up``: the broker and the worker run in
    sessions of their own, so it has to stop them itself."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ENGAGEMENT_")}
    up = subprocess.Popen([sys.executable, "-m", "streams", "up", "--port", str(free_port()),
                           "--web-port", str(free_port())], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env)
    assert up.stdout is not None
    lines: list[str] = []
    while not any("streams report" in line for line in lines) and up.poll() is None:
        lines.append(up.stdout.readline().decode())
    started = children(up.pid)
    assert len(started) == 2, "".join(lines)
    up.send_signal(signal.SIGHUP)
    out, _ = up.communicate(timeout=60)
    assert out.decode().rstrip().endswith("stopped.")
    for pid in started:
        assert gone(pid), pid
