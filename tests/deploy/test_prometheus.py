"""deploy/prometheus and deploy/alertmanager: the real promtool / amtool check them, and every alert
has unit tests in deploy/prometheus/tests that see it fire and see it stay quiet."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support.debian_tools import run_tool

pytestmark = pytest.mark.needs_debian("promtool", "amtool")

REPO = Path(__file__).resolve().parents[2]
PROMETHEUS_DIR = REPO / "deploy" / "prometheus"
RULE_FILES = sorted((PROMETHEUS_DIR / "rules").glob("*.yml"))
RULE_TESTS = sorted((PROMETHEUS_DIR / "tests").glob("*.yml"))
RUNBOOKS = REPO / "docs" / "runbooks.md"
SEVERITIES = {"critical", "warning", "info"}


def alerts() -> list[dict[str, Any]]:
    """Every alerting rule in deploy/prometheus/rules."""
    found = []
    for path in RULE_FILES:
        for group in yaml.safe_load(path.read_text())["groups"]:
            found.extend(rule for rule in group["rules"] if "alert" in rule)
    return found


def github_anchor(heading: str) -> str:
    """The fragment GitHub gives a Markdown heading (lower case, punctuation dropped, spaces to -)."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def test_the_rule_set_covers_what_the_operators_asked_for() -> None:
    names = {rule["alert"] for rule in alerts()}
    assert {"EngagementDAUDrop", "EngagementHighRiskSpike", "EngagementAccountRed",
            "EngagementDeadLetterShareHigh", "EngagementWatermarkStalled", "EngagementConsumerLagHigh",
            "EngagementWorkerDown"} <= names


def test_prometheus_config_is_valid_and_loads_the_rules() -> None:
    result = run_tool("promtool", "check", "config", str(PROMETHEUS_DIR / "prometheus.yml"))
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(RULE_FILES)} rule files found" in result.stdout  # rules/*.yml, next to it


@pytest.mark.parametrize("path", RULE_FILES, ids=lambda p: p.name)
def test_rules_pass_promtool_check(path: Path) -> None:
    result = run_tool("promtool", "check", "rules", str(path))
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("path", RULE_TESTS, ids=lambda p: p.name)
def test_rule_unit_tests_pass(path: Path) -> None:
    result = run_tool("promtool", "test", "rules", path.name, cwd=path.parent)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_every_alert_has_for_severity_summary_and_a_runbook_section() -> None:
    headings = {github_anchor(line.lstrip("#")) for line in RUNBOOKS.read_text().splitlines()
                if line.startswith("#")}
    for rule in alerts():
        name = rule["alert"]
        assert "for" in rule, name
        assert rule["labels"]["severity"] in SEVERITIES, name
        assert rule["annotations"]["summary"].strip(), name
        runbook = rule["annotations"]["runbook"]
        assert runbook.startswith("docs/runbooks.md#runbook-"), (name, runbook)
        assert runbook.split("#", 1)[1] in headings, f"{name}: no section for {runbook} in {RUNBOOKS}"


def test_every_alert_is_unit_tested_firing_and_quiet() -> None:
    firing: set[str] = set()
    quiet: set[str] = set()
    for path in RULE_TESTS:
        for case in yaml.safe_load(path.read_text())["tests"]:
            for check in case.get("alert_rule_test", []):
                (firing if check.get("exp_alerts") else quiet).add(check["alertname"])
    names = {rule["alert"] for rule in alerts()}
    assert names - firing == set(), "alerts never seen firing in a unit test"
    assert names - quiet == set(), "alerts never seen staying quiet in a unit test"


def test_every_recording_rule_is_unit_tested() -> None:
    recorded = {rule["record"] for path in RULE_FILES for group in yaml.safe_load(path.read_text())["groups"]
                for rule in group["rules"] if "record" in rule}
    tested = {check["expr"] for path in RULE_TESTS for case in yaml.safe_load(path.read_text())["tests"]
              for check in case.get("promql_expr_test", [])}
    assert recorded and recorded <= tested


def test_alertmanager_config_is_valid() -> None:
    result = run_tool("amtool", "check-config", str(REPO / "deploy" / "alertmanager" / "alertmanager.yml"))
    assert result.returncode == 0, result.stdout + result.stderr
