"""The Grafana dashboards: committed JSON equals the generator, every query names catalogued or
recorded series, and template variables are declared, used and substituted."""

from __future__ import annotations

import json
import re

import yaml

from infra.grafana.build import (
    ALL_VALUE,
    DASHBOARD_DIR,
    DASHBOARDS,
    DATASOURCE,
    all_queries,
    all_variables,
    main,
    rendered,
)
from infra.local.prometheus import RULES_DIR
from schemas.metrics import JOBS, exposed_name_index

NAME = re.compile(r"\b(kpsandbox[_:][a-z0-9_:]*)")
VARIABLE_USE = re.compile(r"\$(\w+)")


def _recorded_names() -> set[str]:
    groups = yaml.safe_load((RULES_DIR / "kpsandbox_rules.yml").read_text())["groups"]
    return {rule["record"] for group in groups for rule in group["rules"] if "record" in rule}


def test_committed_dashboards_equal_the_generator() -> None:
    """infra/grafana/dashboards/*.json is exactly what infra/grafana/build.py produces, and nothing else."""
    for name, text in rendered().items():
        assert (DASHBOARD_DIR / name).read_text() == text, f"{name} is stale: run `python -m infra.grafana.build`"
    assert {p.name for p in DASHBOARD_DIR.glob("*.json")} == set(rendered())
    assert main(["--check"]) == 0


def test_every_panel_uses_the_provisioned_datasource() -> None:
    """Each panel, target and variable points at the datasource uid provisioned for docker-compose."""
    for name in rendered():
        board = json.loads((DASHBOARD_DIR / name).read_text())
        assert board["panels"], name
        for panel in board["panels"]:
            assert panel["datasource"] == DATASOURCE
            assert panel["targets"] and all(t["datasource"] == DATASOURCE for t in panel["targets"])
        assert all(v["datasource"] == DATASOURCE for v in board["templating"]["list"])


def test_every_query_names_a_catalogued_or_recorded_series() -> None:
    """No panel queries a series the catalogue (schemas/metrics.py) does not expose or the rules do not record."""
    known = set(exposed_name_index()) | _recorded_names()
    for uid, title, expr in all_queries():
        names = set(NAME.findall(expr))
        assert names or expr.startswith("up{"), (uid, title, expr)
        assert names <= known, (uid, title, names - known)


def test_variables_are_declared_used_and_substituted() -> None:
    """Each `$var` in a panel is one of its dashboard's variables, each variable is used by a panel,
    and the queries handed to Prometheus carry the "All" value instead of any `$`."""
    for board in DASHBOARDS:
        used = {name for p in board.panels for q in p.queries for name in VARIABLE_USE.findall(q.expr)}
        declared = {v.name for v in board.variables}
        assert used == declared, (board.uid, used ^ declared)
    for uid, title, expr in all_queries():
        assert "$" not in expr, (uid, title, expr)
    assert any(f'=~"{ALL_VALUE}"' in expr for _, _, expr in all_queries())


def test_variables_read_a_catalogued_series_that_carries_their_label() -> None:
    """`label_values(series, label)`: the series is in the catalogue and has that label."""
    index = exposed_name_index()
    variables = all_variables()
    assert {v.name for _, v in variables} == {"district", "group"}
    for uid, variable in variables:
        assert variable.series in index, (uid, variable)
        assert variable.name in index[variable.series].labels, (uid, variable)
        assert variable.query == f"label_values({variable.series}, {variable.name})"


def test_dashboards_cover_every_component() -> None:
    """The operator view shows throughput, latency, lag, rejections, dead letters and every process;
    the policy view the shares; the ledger and API/webhook dashboards their own families."""
    text = " ".join(f"{uid} {expr}" for uid, _, expr in all_queries())
    for needle in ("payments:rate1m", "latency", "consumer_lag", "rejected", "dead_letter", *JOBS):
        assert needle in text
    policy = " ".join(expr for uid, _, expr in all_queries() if uid == "kpsandbox-policy")
    for needle in ('basis="count"', 'basis="value"', "inclusion", "active_digital_users", "acceptance"):
        assert needle in policy
    home = {"kpsandbox-ledger": "kpsandbox-ledger", "kpsandbox-api": "kpsandbox-api-webhooks",
            "kpsandbox-webhooks": "kpsandbox-api-webhooks"}  # fmt: skip
    for family in exposed_name_index().values():
        if family.job in home:
            board = " ".join(expr for uid, _, expr in all_queries() if uid == home[family.job])
            assert family.name in board, f"{family.name} has no panel on {home[family.job]}"
