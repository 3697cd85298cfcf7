"""The Grafana dashboards, generated from code: `python -m infra.grafana.build` writes
infra/grafana/dashboards/*.json (committed; a unit test checks they match this generator).

Pure: panels are data (title, PromQL, unit); `dashboard_json()` turns them into Grafana's JSON model.
Every query here is also run against a real Prometheus by tests/integration/test_metrics_dashboards.py,
with each template variable (`$district`, `$group`) replaced by its "All" value first.

Series names come from the catalogue (schemas/metrics.py) or the recording rules
(infra/prometheus/kpsandbox_rules.yml); tests/unit/test_metrics_dashboards.py checks both.
grafana-foundation-sdk was tried for the builders and not adopted: the panels here are already
data, and its builder chains were as long as `_panel` while adding a 5 MB dependency.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from schemas.metrics import JOBS

DASHBOARD_DIR: Final = Path(__file__).resolve().parent / "dashboards"
DATASOURCE: Final = {"type": "prometheus", "uid": "kpsandbox-prometheus"}
COLUMNS: Final = 24
PANEL_HEIGHT: Final = 8
ALL_VALUE: Final = ".*"  # what a variable's "All" stands for in a `label=~"$var"` matcher


@dataclass(frozen=True)
class Query:
    """One PromQL query of a panel and its legend."""

    expr: str
    legend: str = ""


@dataclass(frozen=True)
class Panel:
    """One panel: a title, its queries, a unit and a kind (timeseries, stat or bargauge)."""

    title: str
    queries: tuple[Query, ...]
    unit: str = "short"
    kind: str = "timeseries"
    width: int = 12
    description: str = ""


@dataclass(frozen=True)
class Variable:
    """A template variable: the values of label `name` on one catalogued series, multi-select with
    "All"; panels use it as `name=~"$name"`."""

    name: str
    label: str
    series: str

    @property
    def query(self) -> str:
        """Grafana's Prometheus variable query."""
        return f"label_values({self.series}, {self.name})"


@dataclass(frozen=True)
class Dashboard:
    """One dashboard: uid, title, template variables and panels in reading order."""

    uid: str
    title: str
    description: str
    panels: tuple[Panel, ...]
    variables: tuple[Variable, ...] = ()

    def substituted(self, expr: str) -> str:
        """`expr` with every variable at its "All" value, as Prometheus receives it by default."""
        for variable in self.variables:
            expr = expr.replace(f"${variable.name}", ALL_VALUE)
        return expr


def _q(expr: str, legend: str = "") -> tuple[Query, ...]:
    return (Query(expr, legend),)


LATENCY: Final = "sum by (le) (rate(kpsandbox_settlement_latency_seconds_bucket[5m]))"
UP: Final = 'up{job=~"' + "|".join(JOBS) + '"}'  # every exporter of the catalogue

DISTRICT: Final = Variable("district", "District", "kpsandbox_payments_total")
LAG_GROUP: Final = Variable("group", "Consumer group", "kpsandbox_consumer_lag_messages")
LEDGER_GROUP: Final = Variable("group", "Consumer group", "kpsandbox_ledger_batches_total")
LEDGER: Final = 'group=~"$group"'  # the ledger dashboard's selector


def _quantiles(bucket_rate: str, *quantiles: float) -> tuple[Query, ...]:
    return tuple(Query(f"histogram_quantile({q}, {bucket_rate})", f"p{round(q * 100)}") for q in quantiles)


OPERATOR: Final = Dashboard(
    uid="kpsandbox-operator",
    title="KP sandbox — operator",
    description="Every process up, throughput, settlement latency, consumer lag, rejections, dead letters, "
    "and the API's and webhooks' headline numbers (details: the ledger and API/webhooks dashboards).",
    variables=(DISTRICT, LAG_GROUP),
    panels=(
        Panel("Processes up", _q(UP, "{{job}}"), "short", kind="stat"),
        Panel("Retail payments per second", _q("kpsandbox:payments:rate1m", "{{instrument}} {{outcome}}"), "ops"),
        Panel("Messages read per second (metrics consumer)",
              _q("sum by (topic) (rate(kpsandbox_metrics_events_total[1m]))", "{{topic}}"), "ops"),
        Panel("Settlement latency (request → outcome, Kafka timestamps)", (
            Query(f"histogram_quantile(0.5, {LATENCY})", "p50"),
            Query("kpsandbox:settlement_latency_seconds:p95_5m", "p95"),
            Query(f"histogram_quantile(0.99, {LATENCY})", "p99"),
        ), "s"),
        Panel("Consumer lag by group and topic",
              _q('sum by (group, topic) (kpsandbox_consumer_lag_messages{group=~"$group"})', "{{group}} {{topic}}"),
              "short"),
        Panel("Rejected share of digital payments (5 m)", _q("kpsandbox:payments_rejected:ratio_rate5m", "rejected"),
              "percentunit"),
        Panel("Rejected digital payments by district",
              _q('sum by (district) (kpsandbox_payments_total{outcome="rejected",district=~"$district"})',
                 "{{district}}"), "short", kind="bargauge"),
        Panel("Dead letters by reason", _q("sum by (reason) (kpsandbox_dead_letter_total)", "{{reason}}"), "short"),
        Panel("Outbox: oldest unpublished outcome",
              _q("max by (group) (kpsandbox_ledger_outbox_oldest_age_seconds)", "{{group}}"), "s"),
        Panel("API requests per second and 5xx share", (
            Query("kpsandbox:api_requests:rate5m", "requests/s"),
            Query("kpsandbox:api_requests_5xx:ratio_rate5m", "5xx share"),
        ), "short"),
        Panel("Webhook attempts failed (5 m)", _q("kpsandbox:webhook_attempts_failed:ratio_rate5m", "failed"),
              "percentunit", width=6),
        Panel("Simulated time", _q("kpsandbox_simulated_time_seconds * 1000", "simulated"), "dateTimeAsIso",
              kind="stat", width=6),
    ),
)  # fmt: skip

POLICY: Final = Dashboard(
    uid="kpsandbox-policy",
    title="KP sandbox — cash to digital",
    description="Digital share, financial inclusion, active users and merchant acceptance (30 simulated days).",
    variables=(DISTRICT,),
    panels=(
        Panel("Digital share of retail payments, province", _q("kpsandbox:digital_share:ratio", "by {{basis}}"),
              "percentunit", kind="stat"),
        Panel("Digital share by count, per district",
              _q('kpsandbox_digital_share_ratio{basis="count",district!="all",district=~"$district"}', "{{district}}"),
              "percentunit", kind="bargauge"),
        Panel("Digital share by value, per district",
              _q('kpsandbox_digital_share_ratio{basis="value",district!="all",district=~"$district"}', "{{district}}"),
              "percentunit", kind="bargauge"),
        Panel("Financial inclusion by gender, province",
              _q("kpsandbox:financial_inclusion:ratio_by_gender", "{{gender}}"), "percentunit"),
        Panel("Financial inclusion by district and gender",
              _q('kpsandbox_financial_inclusion_ratio{district!="all",district=~"$district",gender=~"female|male"}',
                 "{{district}} {{gender}}"), "percentunit", kind="bargauge"),
        Panel("Active digital users by gender (30 simulated days)",
              _q("kpsandbox:active_digital_users:sum_by_gender", "{{gender}}"), "short"),
        Panel("Active digital users by district",
              _q('sum by (district) (kpsandbox_active_digital_users{district=~"$district"})', "{{district}}"), "short",
              kind="bargauge"),
        Panel("Merchant digital acceptance by category",
              _q("kpsandbox_merchant_digital_acceptance_ratio", "{{category}}"), "percentunit", kind="bargauge"),
        Panel("Cash-out leakage by district",
              _q('kpsandbox_cash_out_leakage_ratio{district!="all",district=~"$district"}', "{{district}}"),
              "percentunit", kind="bargauge"),
        Panel("Cash-out leakage, province", _q('kpsandbox_cash_out_leakage_ratio{district="all"}', "province"),
              "percentunit", kind="stat"),
    ),
)  # fmt: skip

LEDGER_BOARD: Final = Dashboard(
    uid="kpsandbox-ledger",
    title="KP sandbox — ledger",
    description="The ledger's own /metrics: batches, decisions, lag, progress, outbox, retries and dead letters.",
    variables=(LEDGER_GROUP,),
    panels=(
        Panel("Ledger up", _q('up{job="kpsandbox-ledger"}', "{{instance}}"), "short", kind="stat", width=6),
        Panel("Assigned partitions", _q(f"sum by (instance) (kpsandbox_ledger_assigned_partitions{{{LEDGER}}})",
                                        "{{instance}}"), "short", kind="stat", width=6),
        Panel("Seconds since the last committed batch",
              _q(f"time() - kpsandbox_ledger_last_progress_timestamp_seconds{{{LEDGER}}}", "{{instance}}"), "s"),
        Panel("Batches and transfers per second", (
            Query(f"sum by (group) (rate(kpsandbox_ledger_batches_total{{{LEDGER}}}[1m]))", "batches {{group}}"),
            Query(f"sum by (group) (rate(kpsandbox_ledger_transfers_total{{{LEDGER}}}[1m]))", "transfers {{group}}"),
        ), "ops"),
        Panel("Requests decided per second, by result",
              _q(f"sum by (result) (rate(kpsandbox_ledger_requests_total{{{LEDGER}}}[1m]))", "{{result}}"), "ops"),
        Panel("Batch time (decide, write, commit)", _quantiles(
            f"sum by (le) (rate(kpsandbox_ledger_batch_seconds_bucket{{{LEDGER}}}[5m]))", 0.5, 0.99), "s"),
        Panel("Lag by partition", _q(f"sum by (group, partition) (kpsandbox_ledger_lag_messages{{{LEDGER}}})",
                                     "{{group}} p{{partition}}"), "short"),
        Panel("Outbox rows waiting", _q(f"sum by (instance) (kpsandbox_ledger_outbox_rows{{{LEDGER}}})",
                                        "{{instance}}"), "short"),
        Panel("Outbox: oldest unpublished outcome",
              _q(f"max by (instance) (kpsandbox_ledger_outbox_oldest_age_seconds{{{LEDGER}}})", "{{instance}}"), "s"),
        Panel("Retries by kind (5 m)",
              _q(f"sum by (kind) (increase(kpsandbox_ledger_retries_total{{{LEDGER}}}[5m]))", "{{kind}}"), "short"),
        Panel("Dead letters by reason (5 m)",
              _q(f"sum by (reason) (increase(kpsandbox_ledger_dead_letters_total{{{LEDGER}}}[5m]))", "{{reason}}"),
              "short"),
        Panel("Fenced batches and expired transfers (5 m)", (
            Query(f"sum(increase(kpsandbox_ledger_fenced_batches_total{{{LEDGER}}}[5m]))", "fenced batches"),
            Query(f"sum(increase(kpsandbox_ledger_expired_transfers_total{{{LEDGER}}}[5m]))", "expired transfers"),
        ), "short"),
        Panel("Simulated clock by partition",
              _q(f"kpsandbox_ledger_clock_seconds{{{LEDGER}}} * 1000", "p{{partition}}"), "dateTimeAsIso"),
    ),
)  # fmt: skip

API_REQUEST_BUCKETS: Final = "rate(kpsandbox_api_request_duration_seconds_bucket[5m])"
API_WEBHOOKS: Final = Dashboard(
    uid="kpsandbox-api-webhooks",
    title="KP sandbox — API and webhooks",
    description="The HTTP API's requests, errors and latency; the webhook dispatcher's attempts and backlog.",
    panels=(
        Panel("API up", _q('up{job="kpsandbox-api"}', "{{instance}}"), "short", kind="stat", width=6),
        Panel("API requests in flight", _q("sum(kpsandbox_api_requests_in_flight)", "in flight"), "short",
              kind="stat", width=6),
        Panel("API requests per second, by status",
              _q("sum by (status) (rate(kpsandbox_api_requests_total[1m]))", "{{status}}"), "reqps"),
        Panel("API requests per second, by route",
              _q("sum by (method, route) (rate(kpsandbox_api_requests_total[1m]))", "{{method}} {{route}}"), "reqps"),
        Panel("API 5xx share (5 m)", _q("kpsandbox:api_requests_5xx:ratio_rate5m", "5xx"), "percentunit"),
        Panel("API latency (p99 leaves out `?wait=` long-polls)", (
            Query(f"histogram_quantile(0.5, sum by (le) ({API_REQUEST_BUCKETS}))", "p50, all routes"),
            Query("kpsandbox:api_request_duration_seconds:p99_5m", "p99"),
        ), "s"),
        Panel("API p99 latency by route",
              _q(f"histogram_quantile(0.99, sum by (le, method, route) ({API_REQUEST_BUCKETS}))",
                 "{{method}} {{route}}"), "s"),
        Panel("Webhooks up", _q('up{job="kpsandbox-webhooks"}', "{{instance}}"), "short", kind="stat", width=6),
        Panel("Webhook deliveries pending", _q("sum(kpsandbox_webhook_deliveries_pending)", "pending"), "short",
              kind="stat", width=6),
        Panel("Webhook attempts per second, by result",
              _q("sum by (result) (rate(kpsandbox_webhook_attempts_total[1m]))", "{{result}}"), "ops"),
        Panel("Webhook attempts failed (5 m)", _q("kpsandbox:webhook_attempts_failed:ratio_rate5m", "failed"),
              "percentunit"),
        Panel("Webhook deliveries finished (5 m)",
              _q("sum by (outcome) (increase(kpsandbox_webhook_deliveries_finished_total[5m]))", "{{outcome}}"),
              "short"),
        Panel("Webhook attempt time", _quantiles(
            "sum by (le) (rate(kpsandbox_webhook_attempt_duration_seconds_bucket[5m]))", 0.5, 0.99), "s"),
        Panel("Oldest due delivery, past its due time",
              _q("max(kpsandbox_webhook_oldest_due_age_seconds)", "oldest due"), "s"),
    ),
)  # fmt: skip

DASHBOARDS: Final = (OPERATOR, POLICY, LEDGER_BOARD, API_WEBHOOKS)


def _panel(panel: Panel, panel_id: int, x: int, y: int) -> dict[str, Any]:
    return {
        "id": panel_id,
        "type": panel.kind,
        "title": panel.title,
        "description": panel.description,
        "datasource": DATASOURCE,
        "gridPos": {"h": PANEL_HEIGHT, "w": panel.width, "x": x, "y": y},
        "fieldConfig": {"defaults": {"unit": panel.unit}, "overrides": []},
        "options": {},
        "targets": [
            {"refId": chr(ord("A") + k), "datasource": DATASOURCE, "expr": q.expr, "legendFormat": q.legend}
            for k, q in enumerate(panel.queries)
        ],
    }


def _variable(variable: Variable) -> dict[str, Any]:
    return {
        "type": "query",
        "name": variable.name,
        "label": variable.label,
        "datasource": DATASOURCE,
        "query": variable.query,
        "definition": variable.query,
        "refresh": 2,  # on time-range change: a new district or group shows up without a reload
        "sort": 1,
        "multi": True,
        "includeAll": True,
        "allValue": ALL_VALUE,
        "current": {"selected": True, "text": ["All"], "value": ["$__all"]},
        "options": [],
        "hide": 0,
    }


def dashboard_json(board: Dashboard) -> dict[str, Any]:
    """Grafana's JSON model of one dashboard (panels laid out left to right, top to bottom)."""
    panels, x, y = [], 0, 0
    for panel_id, panel in enumerate(board.panels, start=1):
        if x + panel.width > COLUMNS:
            x, y = 0, y + PANEL_HEIGHT
        panels.append(_panel(panel, panel_id, x, y))
        x += panel.width
    return {
        "uid": board.uid,
        "title": board.title,
        "description": board.description,
        "tags": ["kpsandbox"],
        "timezone": "utc",
        "schemaVersion": 39,
        "version": 1,
        "editable": False,
        "refresh": "10s",
        "time": {"from": "now-1h", "to": "now"},
        "templating": {"list": [_variable(v) for v in board.variables]},
        "panels": panels,
    }


def rendered() -> dict[str, str]:
    """File name -> JSON text of every dashboard, exactly as committed."""
    return {f"{b.uid}.json": json.dumps(dashboard_json(b), indent=2, ensure_ascii=False) + "\n" for b in DASHBOARDS}


def all_queries() -> list[tuple[str, str, str]]:
    """(dashboard uid, panel title, PromQL) of every query on every dashboard, with each template
    variable at its "All" value (`.*`), as Prometheus receives it when the dashboard opens."""
    return [(b.uid, p.title, b.substituted(q.expr)) for b in DASHBOARDS for p in b.panels for q in p.queries]


def all_variables() -> list[tuple[str, Variable]]:
    """(dashboard uid, variable) of every template variable on every dashboard."""
    return [(b.uid, v) for b in DASHBOARDS for v in b.variables]


def main(argv: list[str]) -> int:
    """Writes the dashboards; with --check, exits 1 when the committed files differ."""
    stale = []
    for name, text in rendered().items():
        path = DASHBOARD_DIR / name
        if "--check" in argv:
            if not path.exists() or path.read_text() != text:
                stale.append(name)
        else:
            path.write_text(text)
    if stale:
        print(f"stale dashboards: {', '.join(stale)} — run `python -m infra.grafana.build`")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
