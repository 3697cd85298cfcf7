"""Every Grafana panel's PromQL and every template variable, run against the real Prometheus while
the sandbox's apps run with traffic (`operator_stack`: ledger, metrics, API, views, webhooks)."""

from __future__ import annotations

import json
import urllib.parse
import urllib.request
from typing import Final

from infra.grafana.build import all_queries, all_variables
from tests.integration.operator_support import OperatorStack, wait_for_data

HTTP_TIMEOUT_S: Final = 5.0


def _label_values(prometheus: str, label: str, series: str) -> list[str]:
    """What Grafana's `label_values(series, label)` offers: the label's values on that series."""
    url = f"{prometheus}/api/v1/label/{label}/values?" + urllib.parse.urlencode({"match[]": series})
    with urllib.request.urlopen(url, timeout=HTTP_TIMEOUT_S) as response:
        body = json.loads(response.read())
    assert body["status"] == "success", body
    return list(body["data"])


def test_every_panel_query_returns_data(operator_stack: OperatorStack) -> None:
    """Each panel's PromQL, its variables at "All" (`.*`), succeeds and has a finite point once
    Prometheus has scraped the running apps."""
    queries = sorted({expr for _, _, expr in all_queries()})
    missing = wait_for_data(operator_stack.prometheus, queries, since=operator_stack.started_at)
    panels = {expr: f"{uid} / {title}" for uid, title, expr in all_queries()}
    assert not missing, "\n".join(f"{panels[q]}: {q}: {why}" for q, why in missing.items())


def test_every_variable_offers_values(operator_stack: OperatorStack) -> None:
    """Each template variable's `label_values(series, label)` gives Grafana something to choose."""
    for uid, variable in all_variables():
        values = _label_values(operator_stack.prometheus, variable.name, variable.series)
        assert values, f"{uid}: {variable.query} offers nothing"
