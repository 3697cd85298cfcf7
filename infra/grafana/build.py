"""The Grafana dashboards, generated from code: `python -m infra.grafana.build` writes
infra/grafana/dashboards/*.json (committed; a unit test checks they match this generator).

Pure: panels are data (title, PromQL, unit); `dashboards()` turns them into Grafana's JSON model.
Every query here is also run against a real Prometheus by tests/integration/test_metrics_dashboards.py.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

DASHBOARD_DIR: Final = Path(__file__).resolve().parent / "dashboards"
DATASOURCE: Final = {"type": "prometheus", "uid": "kpsandbox-prometheus"}
COLUMNS: Final = 24
PANEL_HEIGHT: Final = 8


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
class Dashboard:
    """One dashboard: uid, title and panels in reading order."""

    uid: str
    title: str
    description: str
    panels: tuple[Panel, ...]


def _q(expr: str, legend: str = "") -> tuple[Query, ...]:
    return (Query(expr, legend),)


LATENCY = "sum by (le) (rate(kpsandbox_settlement_latency_seconds_bucket[5m]))"

OPERATOR: Final = Dashboard(
    uid="kpsandbox-operator",
    title="KP sandbox — operator",
    description="Throughput, settlement latency, consumer lag, rejections and dead letters.",
    panels=(
        Panel("Retail payments per second", _q("kpsandbox:payments:rate1m", "{{instrument}} {{outcome}}"), "ops"),
        Panel("Messages read per second (metrics consumer)",
              _q("sum by (topic) (rate(kpsandbox_metrics_events_total[1m]))", "{{topic}}"), "ops"),
        Panel("Settlement latency (request → outcome, Kafka timestamps)", (
            Query(f"histogram_quantile(0.5, {LATENCY})", "p50"),
            Query("kpsandbox:settlement_latency_seconds:p95_5m", "p95"),
            Query(f"histogram_quantile(0.99, {LATENCY})", "p99"),
        ), "s"),
        Panel("Consumer lag by group and topic",
              _q("sum by (group, topic) (kpsandbox_consumer_lag_messages)", "{{group}} {{topic}}"), "short"),
        Panel("Rejected share of digital payments (5 m)", _q("kpsandbox:payments_rejected:ratio_rate5m", "rejected"),
              "percentunit"),
        Panel("Rejected digital payments by district",
              _q('sum by (district) (kpsandbox_payments_total{outcome="rejected"})', "{{district}}"), "short",
              kind="bargauge"),
        Panel("Dead letters by reason", _q("sum by (reason) (kpsandbox_dead_letter_total)", "{{reason}}"), "short"),
        Panel("Exporter up", _q('up{job="kpsandbox"}', "{{instance}}"), "short", kind="stat", width=6),
        Panel("Simulated time", _q("kpsandbox_simulated_time_seconds * 1000", "simulated"), "dateTimeAsIso",
              kind="stat", width=6),
    ),
)  # fmt: skip

POLICY: Final = Dashboard(
    uid="kpsandbox-policy",
    title="KP sandbox — cash to digital",
    description="Digital share, financial inclusion, active users and merchant acceptance (30 simulated days).",
    panels=(
        Panel("Digital share of retail payments, province", _q("kpsandbox:digital_share:ratio", "by {{basis}}"),
              "percentunit", kind="stat"),
        Panel("Digital share by count, per district",
              _q('kpsandbox_digital_share_ratio{basis="count",district!="all"}', "{{district}}"), "percentunit",
              kind="bargauge"),
        Panel("Digital share by value, per district",
              _q('kpsandbox_digital_share_ratio{basis="value",district!="all"}', "{{district}}"), "percentunit",
              kind="bargauge"),
        Panel("Financial inclusion by gender, province",
              _q("kpsandbox:financial_inclusion:ratio_by_gender", "{{gender}}"), "percentunit"),
        Panel("Financial inclusion by district and gender",
              _q('kpsandbox_financial_inclusion_ratio{district!="all",gender=~"female|male"}',
                 "{{district}} {{gender}}"), "percentunit", kind="bargauge"),
        Panel("Active digital users by gender (30 simulated days)",
              _q("kpsandbox:active_digital_users:sum_by_gender", "{{gender}}"), "short"),
        Panel("Active digital users by district",
              _q("sum by (district) (kpsandbox_active_digital_users)", "{{district}}"), "short", kind="bargauge"),
        Panel("Merchant digital acceptance by category",
              _q("kpsandbox_merchant_digital_acceptance_ratio", "{{category}}"), "percentunit", kind="bargauge"),
        Panel("Cash-out leakage by district",
              _q('kpsandbox_cash_out_leakage_ratio{district!="all"}', "{{district}}"), "percentunit",
              kind="bargauge"),
        Panel("Cash-out leakage, province", _q('kpsandbox_cash_out_leakage_ratio{district="all"}', "province"),
              "percentunit", kind="stat"),
    ),
)  # fmt: skip

DASHBOARDS: Final = (OPERATOR, POLICY)


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
        "panels": panels,
    }


def rendered() -> dict[str, str]:
    """File name -> JSON text of every dashboard, exactly as committed."""
    return {f"{b.uid}.json": json.dumps(dashboard_json(b), indent=2, ensure_ascii=False) + "\n" for b in DASHBOARDS}


def all_queries() -> list[tuple[str, str, str]]:
    """(dashboard uid, panel title, PromQL) of every query on every dashboard."""
    return [(b.uid, p.title, q.expr) for b in DASHBOARDS for p in b.panels for q in p.queries]


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
