"""The Prometheus rules file: valid for promtool, and its alerts behave as the unit tests expect."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from infra.local.prometheus import RULES_DIR

RULES = RULES_DIR / "kpsandbox_rules.yml"
RULE_TESTS = sorted((RULES_DIR / "tests").glob("*.yml"))
PROMTOOL_TIMEOUT_S = 60

pytestmark = pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool is not installed")


def _promtool(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["promtool", *map(str, args)], capture_output=True, text=True, timeout=PROMTOOL_TIMEOUT_S, check=False
    )


def test_rules_pass_promtool_check() -> None:
    """`promtool check rules` accepts the rules file with no lint findings."""
    result = _promtool("check", "rules", RULES)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


@pytest.mark.parametrize("path", RULE_TESTS, ids=lambda p: p.name)
def test_rule_unit_tests_pass(path: Path) -> None:
    """`promtool test rules` passes each unit-test file (recording values and alert timing)."""
    result = _promtool("test", "rules", path)
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_alert_is_unit_tested() -> None:
    """Each alert in the rules file appears in at least one promtool alert test."""
    groups = yaml.safe_load(RULES.read_text())["groups"]
    alerts = {rule["alert"] for group in groups for rule in group["rules"] if "alert" in rule}
    tested = {
        case["alertname"]
        for path in RULE_TESTS
        for test in yaml.safe_load(path.read_text())["tests"]
        for case in test.get("alert_rule_test", [])
    }
    assert alerts == {"KpsandboxExporterDown", "KpsandboxConsumerLagHigh", "KpsandboxRejectionRateHigh",
                      "KpsandboxDeadLettersGrowing", "LedgerDown", "LedgerStalled"}  # fmt: skip
    assert alerts <= tested


def test_a_broken_rule_is_caught(tmp_path: Path) -> None:
    """The check really runs: a rules file with a bad expression is refused."""
    bad = tmp_path / "bad_rules.yml"
    bad.write_text("groups:\n  - name: x\n    rules:\n      - record: a:b\n        expr: sum(\n")
    assert _promtool("check", "rules", bad).returncode != 0


def test_ledger_alerts_are_tested_firing_and_silent() -> None:
    """LedgerDown and LedgerStalled each have promtool cases that expect an alert and cases that expect none."""
    outcomes: dict[str, set[bool]] = {"LedgerDown": set(), "LedgerStalled": set()}
    for path in RULE_TESTS:
        for test in yaml.safe_load(path.read_text())["tests"]:
            for case in test.get("alert_rule_test", []):
                if case["alertname"] in outcomes:
                    outcomes[case["alertname"]].add(bool(case["exp_alerts"]))
    assert outcomes == {"LedgerDown": {True, False}, "LedgerStalled": {True, False}}
