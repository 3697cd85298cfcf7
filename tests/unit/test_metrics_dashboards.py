"""The Grafana dashboards: committed JSON equals the generator, and every query names real series."""

from __future__ import annotations

import json
import re

import yaml

from consumers.metrics.aggregate import Aggregator
from consumers.metrics.exporter import new_registry
from infra.grafana.build import DASHBOARD_DIR, DATASOURCE, all_queries, main, rendered
from infra.local.prometheus import RULES_DIR

NAME = re.compile(r"\b(kpsandbox[_:][a-z0-9_:]*)")


def _exported_names() -> set[str]:
    names = set()
    lag = {("kp-metrics", "kp.cash.v1", 0): 0}  # lag has series once partitions are assigned
    for family in new_registry(Aggregator, lambda: lag).collect():
        names.update(sample.name for sample in family.samples)
    return names


def _recorded_names() -> set[str]:
    groups = yaml.safe_load((RULES_DIR / "kpsandbox_rules.yml").read_text())["groups"]
    return {rule["record"] for group in groups for rule in group["rules"] if "record" in rule}


def test_committed_dashboards_equal_the_generator() -> None:
    """infra/grafana/dashboards/*.json is exactly what infra/grafana/build.py produces."""
    for name, text in rendered().items():
        assert (DASHBOARD_DIR / name).read_text() == text, f"{name} is stale: run `python -m infra.grafana.build`"
    assert main(["--check"]) == 0


def test_every_panel_uses_the_provisioned_datasource() -> None:
    """Each panel and target points at the datasource uid provisioned for docker-compose."""
    for name in rendered():
        board = json.loads((DASHBOARD_DIR / name).read_text())
        assert board["panels"], name
        for panel in board["panels"]:
            assert panel["datasource"] == DATASOURCE
            assert panel["targets"] and all(t["datasource"] == DATASOURCE for t in panel["targets"])


def test_every_query_names_an_exported_or_recorded_series() -> None:
    """No panel queries a metric the exporter does not export or the rules do not record."""
    known = _exported_names() | _recorded_names()
    for uid, title, expr in all_queries():
        names = set(NAME.findall(expr))
        assert names or expr.startswith("up{"), (uid, title, expr)
        assert names <= known, (uid, title, names - known)


def test_operator_and_policy_views_cover_the_brief() -> None:
    """The operator view shows throughput, latency, lag, rejections, dead letters; the policy view the shares."""
    text = " ".join(f"{uid} {expr}" for uid, _, expr in all_queries())
    for needle in ("payments:rate1m", "latency", "consumer_lag", "rejected", "dead_letter"):
        assert needle in text
    policy = " ".join(expr for uid, _, expr in all_queries() if uid == "kpsandbox-policy")
    for needle in ('basis="count"', 'basis="value"', "inclusion", "active_digital_users", "acceptance"):
        assert needle in policy
