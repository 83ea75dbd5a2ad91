"""deploy/alertmanager: the routes send the customer alerts to customer success and the rest to the
on-call engineers (checked with amtool against the rule files' labels), and a real Alertmanager
delivers an alert to the webhook its route names."""

from __future__ import annotations

import json
import subprocess
import threading
import urllib.request
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any, Iterator

import pytest
import yaml

from streams.local.broker import free_port
from tests.support.debian_tools import debian_tool, run_tool
from tests.support.wait import wait_for

pytestmark = pytest.mark.needs_debian("amtool", "prometheus-alertmanager")
REPO = Path(__file__).resolve().parents[2]
CONFIG = REPO / "deploy" / "alertmanager" / "alertmanager.yml"
RULES = REPO / "deploy" / "prometheus" / "rules"


def alert_rules() -> Iterator[tuple[str, dict[str, Any]]]:
    """(rule file stem, rule) for every alerting rule."""
    for path in sorted(RULES.glob("*.yml")):
        for group in yaml.safe_load(path.read_text())["groups"]:
            for rule in group["rules"]:
                if "alert" in rule:
                    yield path.stem, rule


def routed_to(labels: dict[str, str]) -> str:
    args = [f"{k}={v}" for k, v in labels.items()]
    result = run_tool("amtool", "config", "routes", "test", f"--config.file={CONFIG}", *args)
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout.strip()


def test_business_alerts_go_to_customer_success_and_pipeline_alerts_to_on_call() -> None:
    seen = set()
    for stem, rule in alert_rules():
        expected = "customer-success" if stem == "business" else "on-call"
        assert routed_to({"alertname": rule["alert"], **rule.get("labels", {})}) == expected, rule["alert"]
        seen.add(expected)
    assert seen == {"customer-success", "on-call"}


class Hook(BaseHTTPRequestHandler):
    received: list[tuple[str, dict[str, Any]]] = []

    def do_POST(self) -> None:  # noqa: N802 (http.server's name)
        body = self.rfile.read(int(self.headers["Content-Length"]))
        Hook.received.append((self.path, json.loads(body)))
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


def test_a_real_alertmanager_delivers_a_customer_alert_to_its_webhook(tmp_path: Path) -> None:
    hook = HTTPServer(("127.0.0.1", 0), Hook)
    threading.Thread(target=hook.serve_forever, daemon=True).start()
    # The shipped file with the webhooks pointed here and the waits shortened: same routes.
    config = yaml.safe_load(CONFIG.read_text())
    config["route"]["group_wait"] = "1s"
    for route in config["route"]["routes"]:
        route["group_wait"] = "1s"
    for receiver in config["receivers"]:
        for webhook in receiver["webhook_configs"]:
            webhook["url"] = webhook["url"].replace("http://alert-receiver:8080", f"http://127.0.0.1:{hook.server_port}")
    (tmp_path / "am.yml").write_text(yaml.safe_dump(config))
    port = free_port()
    log = open(tmp_path / "alertmanager.log", "wb")
    proc = subprocess.Popen([debian_tool("prometheus-alertmanager"), f"--config.file={tmp_path / 'am.yml'}",
                             f"--storage.path={tmp_path / 'data'}", f"--web.listen-address=127.0.0.1:{port}",
                             "--cluster.listen-address="], stdout=log, stderr=subprocess.STDOUT)
    try:
        base = f"http://127.0.0.1:{port}"
        wait_for(lambda: urllib.request.urlopen(f"{base}/-/ready", timeout=2).status == 200, timeout=30,
                 message="Alertmanager ready")
        labels = next(dict(alertname=r["alert"], **r["labels"]) for stem, r in alert_rules()
                      if r["alert"] == "EngagementAccountRed")
        alert = [{"labels": labels, "annotations": {"summary": "1 account(s) moved to red health"}}]
        request = urllib.request.Request(f"{base}/api/v2/alerts", data=json.dumps(alert).encode(),
                                         headers={"Content-Type": "application/json"}, method="POST")
        assert urllib.request.urlopen(request, timeout=5).status == 200
        path, doc = wait_for(lambda: Hook.received and Hook.received[0], timeout=30, message="the webhook called")
        assert path == "/customer-success" and doc["receiver"] == "customer-success"
        assert doc["alerts"][0]["labels"]["alertname"] == "EngagementAccountRed"
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        hook.shutdown()
