"""The Prometheus rules file: valid for promtool, its alerts behave as the unit tests expect, and it
names only catalogued series (schemas/metrics.py)."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from infra.local.prometheus import RULES_DIR
from infra.settings import Settings
from producers.api.app import create_app
from schemas.metrics import exposed_name_index

RULES = RULES_DIR / "kpsandbox_rules.yml"
RULE_TESTS = sorted((RULES_DIR / "tests").glob("*.yml"))
PROMTOOL_TIMEOUT_S = 60
SERIES_NAME = re.compile(r"\b(kpsandbox_[a-z0-9_]+)")
LONG_POLL = re.compile(r'route!~"([^"]+)"')

needs_promtool = pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool is not installed")


def _groups() -> list[dict[str, Any]]:
    return yaml.safe_load(RULES.read_text())["groups"]  # type: ignore[no-any-return]


def _alerts() -> set[str]:
    return {rule["alert"] for group in _groups() for rule in group["rules"] if "alert" in rule}


def _alert_cases() -> list[dict[str, Any]]:
    return [
        case
        for path in RULE_TESTS
        for test in yaml.safe_load(path.read_text())["tests"]
        for case in test.get("alert_rule_test", [])
    ]


def _promtool(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["promtool", *map(str, args)], capture_output=True, text=True, timeout=PROMTOOL_TIMEOUT_S, check=False
    )


@needs_promtool
def test_rules_pass_promtool_check() -> None:
    """`promtool check rules` accepts the rules file with no lint findings."""
    result = _promtool("check", "rules", RULES)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


@needs_promtool
@pytest.mark.parametrize("path", RULE_TESTS, ids=lambda p: p.name)
def test_rule_unit_tests_pass(path: Path) -> None:
    """`promtool test rules` passes each unit-test file (recording values and alert timing)."""
    result = _promtool("test", "rules", path)
    assert result.returncode == 0, result.stdout + result.stderr


@needs_promtool
def test_a_broken_rule_is_caught(tmp_path: Path) -> None:
    """The check really runs: a rules file with a bad expression is refused."""
    bad = tmp_path / "bad_rules.yml"
    bad.write_text("groups:\n  - name: x\n    rules:\n      - record: a:b\n        expr: sum(\n")
    assert _promtool("check", "rules", bad).returncode != 0


def test_every_component_has_its_alerts() -> None:
    """The alerts of issue 12: each process down, the ledger stalled, API errors and latency,
    webhooks failing, the outbox backlog and dead letters, plus the metrics consumer's own."""
    assert _alerts() == {
        "KpsandboxExporterDown", "KpsandboxConsumerLagHigh", "KpsandboxRejectionRateHigh", "DeadLettersGrowing",
        "LedgerDown", "LedgerStalled", "OutboxBacklogOld", "ApiDown", "ApiErrorRatioHigh", "ApiLatencyHigh",
        "WebhooksDown", "WebhookDeliveryFailing",
    }  # fmt: skip


def test_every_alert_is_tested_firing_and_silent() -> None:
    """Each alert has a promtool case that expects it to fire and one that expects silence."""
    outcomes: dict[str, set[bool]] = {alert: set() for alert in _alerts()}
    for case in _alert_cases():
        assert case["alertname"] in outcomes, f"promtool case for unknown alert {case['alertname']}"
        outcomes[case["alertname"]].add(bool(case["exp_alerts"]))
    missing = {alert: {True, False} - seen for alert, seen in outcomes.items() if seen != {True, False}}
    assert not missing, f"alerts without a firing (True) or silent (False) promtool case: {missing}"


def test_rules_name_only_catalogued_series() -> None:
    """Every kpsandbox_… series in an expression is an exposed name of schemas/metrics.py."""
    known = set(exposed_name_index())
    for group in _groups():
        for rule in group["rules"]:
            unknown = set(SERIES_NAME.findall(rule["expr"])) - known
            assert not unknown, f"{rule.get('alert') or rule.get('record')}: not in the catalogue: {unknown}"


def test_latency_excludes_exactly_the_long_poll_routes() -> None:
    """The p99 leaves out the routes whose GET takes `?wait=` (they may hold a request for seconds),
    and no other: checked against the API's own route templates, so a new waiting route is noticed."""
    p99 = "kpsandbox:api_request_duration_seconds:p99_5m"
    (recording,) = [rule for group in _groups() for rule in group["rules"] if rule.get("record") == p99]
    (pattern,) = LONG_POLL.findall(recording["expr"])
    excluded = re.compile(pattern.replace("\\\\", "\\"))
    paths = create_app(Settings()).openapi()["paths"]  # route templates, as the `route` label has them
    waiting = {
        path
        for path, operations in paths.items()
        for operation in operations.values()
        if any(p["name"] == "wait" and p["in"] == "query" for p in operation.get("parameters", []))
    }
    assert waiting, "no route takes ?wait= any more: drop the exclusion from the p99"
    assert {path for path in paths if excluded.fullmatch(path)} == waiting


def test_every_api_latency_rule_excludes_the_same_routes() -> None:
    """The console's p50 and p95 leave out the same long-poll routes as the alert's p99, so the three
    lines of one graph describe the same requests."""
    latency = [
        rule
        for group in _groups()
        for rule in group["rules"]
        if rule.get("record", "").startswith("kpsandbox:api_request_duration_seconds:")
    ]
    assert {rule["record"].rpartition(":")[2] for rule in latency} == {"p50_5m", "p95_5m", "p99_5m"}
    assert len({tuple(LONG_POLL.findall(rule["expr"])) for rule in latency}) == 1, "the exclusions differ"
