"""The metric catalogue (schemas/metrics.py) is what every exporter exposes, and every metric name
that rules, consoles and dashboards use is in it."""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from prometheus_client.core import Metric
from prometheus_client.parser import text_string_to_metric_families

from consumers.ledger.observe import LedgerMetrics
from consumers.metrics.aggregate import Aggregator
from consumers.metrics.exporter import new_registry
from consumers.webhooks.metrics import WebhookMetrics
from infra.metric_families import counter, family, gauge
from infra.settings import Settings
from producers.api.app import create_app
from producers.api.metrics import METRICS_PATH
from schemas.metrics import (
    API_REQUEST_BUCKETS_S,
    BY_NAME,
    CATALOGUE,
    JOBS,
    LEDGER_BATCH_BUCKETS_S,
    PREFIX,
    SETTLEMENT_LATENCY_BUCKETS_S,
    WEBHOOK_ATTEMPT_BUCKETS_S,
    Job,
    exposed_name_index,
    for_job,
)
from tests.conftest import REPO_ROOT

# What a family looks like on the wire: type, label names in order, HELP text.
Shape = tuple[str, tuple[str, ...], str]
BUCKETS = {
    "kpsandbox_settlement_latency_seconds": SETTLEMENT_LATENCY_BUCKETS_S,
    "kpsandbox_ledger_batch_seconds": LEDGER_BATCH_BUCKETS_S,
    "kpsandbox_api_request_duration_seconds": API_REQUEST_BUCKETS_S,
    "kpsandbox_webhook_attempt_duration_seconds": WEBHOOK_ATTEMPT_BUCKETS_S,
}
# Where metric names are written by hand: rules, the console templates and the dashboards' generator.
USERS = ("infra/prometheus/*.yml", "infra/prometheus/consoles/**/*", "infra/prometheus/console_libraries/**/*",
         "infra/grafana/build.py")  # fmt: skip
# A kpsandbox_ word that is a metric name, not a file name such as kpsandbox_rules.yml.
METRIC_WORD = re.compile(r"\bkpsandbox_[a-z0-9_]+\b(?!\.(?:yml|yaml|py|html|lib|json)\b)")


def _labels(samples: Iterable[object]) -> tuple[str, ...]:
    names: list[str] = []
    for sample in samples:
        for name in sample.labels:  # type: ignore[attr-defined]
            if name != "le" and name not in names:
                names.append(name)
    return tuple(names)


def _shapes(families: Iterable[Metric]) -> dict[str, Shape]:
    return {f.name: (f.type, _labels(f.samples), f.documentation) for f in families}


def _catalogue(job: Job) -> dict[str, Shape]:
    return {s.name: (s.kind, s.labels, s.help) for s in for_job(job)}


def _bounds(families: Iterable[Metric]) -> dict[str, tuple[float, ...]]:
    out: dict[str, tuple[float, ...]] = {}
    for f in families:
        if f.type == "histogram":
            buckets = [s for s in f.samples if s.name.endswith("_bucket")]
            series = {k: v for k, v in buckets[0].labels.items() if k != "le"}  # the first series' buckets
            out[f.name] = tuple(
                float(s.labels["le"]) for s in buckets
                if s.labels["le"] != "+Inf" and {k: v for k, v in s.labels.items() if k != "le"} == series
            )  # fmt: skip
    return out


def _metrics_consumer() -> list[Metric]:
    lag = {("kp-metrics", "kp.cash.v1", 0): 3, ("kp-ledger", "kp.payments.requested.v1", 1): 0}
    return list(new_registry(Aggregator, lambda: lag).collect())


def _ledger() -> list[Metric]:
    m = LedgerMetrics(group="kp-ledger", now=lambda: 1_000.0)
    m.set_assigned([0])
    m.set_partition(0, lag=2, clock=datetime(2026, 3, 1, tzinfo=UTC))
    m.batch_settled(results={"created": 1}, requests=1, transfers=1, seconds=0.02)
    return list(m.registry.collect())


def _api(tmp_path: Path) -> list[Metric]:
    client = TestClient(create_app(Settings(state_dir=tmp_path)), raise_server_exceptions=False)
    assert client.get("/no/such/path").status_code == 404
    scrape = client.get(METRICS_PATH)
    assert scrape.status_code == 200 and scrape.headers["content-type"].startswith("text/plain")
    return list(text_string_to_metric_families(scrape.text))


def _webhooks() -> list[Metric]:
    m = WebhookMetrics()
    m.attempted(result="delivered", seconds=0.03, delivery_status="delivered")
    return list(m.registry.collect())


def _exposed(job: Job, tmp_path: Path) -> list[Metric]:
    if job == "kpsandbox":
        return _metrics_consumer()
    if job == "kpsandbox-ledger":
        return _ledger()
    if job == "kpsandbox-api":
        return _api(tmp_path)
    return _webhooks()


@pytest.mark.parametrize("job", JOBS)
def test_each_exporter_exposes_exactly_its_catalogue_entries(job: Job, tmp_path: Path) -> None:
    """Names, types, label names (in order) and HELP texts of a scrape equal the catalogue's for the job."""
    exposed = _exposed(job, tmp_path)
    assert _shapes(exposed) == _catalogue(job)
    assert set(_bounds(exposed)) == {s.name for s in for_job(job) if s.kind == "histogram"}
    for name, bounds in _bounds(exposed).items():
        assert bounds == BUCKETS[name], name


def test_the_api_route_label_is_a_template_never_a_raw_path(tmp_path: Path) -> None:
    """Requests are counted under the matched route template, an unknown path under `other`."""
    client = TestClient(create_app(Settings(state_dir=tmp_path)), raise_server_exceptions=False)
    client.get("/v1/payments/pay_0123456789")
    client.get("/v1/nothing/here/7")
    samples = [
        s for f in text_string_to_metric_families(client.get(METRICS_PATH).text) for s in f.samples
        if s.name == "kpsandbox_api_requests_total"
    ]  # fmt: skip
    routes = {s.labels["route"] for s in samples}
    assert "/v1/payments/{payment_id}" in routes and "other" in routes
    assert not any("pay_0123456789" in route or "/7" in route for route in routes)


def test_the_catalogue_follows_prometheus_conventions() -> None:
    """kpsandbox_ prefix; names without `_total` (the client adds it); base units; one entry per name."""
    assert len(BY_NAME) == len(CATALOGUE)
    for spec in CATALOGUE:
        assert spec.name.startswith(PREFIX) and not spec.name.endswith("_total"), spec.name
        assert not re.search(r"_(ms|milliseconds|minutes|rupees|percent)\b", spec.name), spec.name
        assert spec.help and spec.job in JOBS
        assert "le" not in spec.labels
    for bounds in BUCKETS.values():
        assert tuple(sorted(bounds)) == bounds


def test_family_builds_the_catalogue_entry_and_refuses_the_wrong_kind() -> None:
    """family() copies name, help and labels; the typed helpers name the entry's real kind."""
    spec = BY_NAME["kpsandbox_ledger_requests"]
    built = family(spec)
    built.add_metric(["kp-ledger", "created"], 1)
    assert (built.name, built.type, built.documentation) == (spec.name, "counter", spec.help)
    assert counter("ledger_requests").name == spec.name
    with pytest.raises(ValueError, match="is a counter"):
        gauge("ledger_requests")


def _used_names() -> dict[str, set[str]]:
    used: dict[str, set[str]] = {}
    for pattern in USERS:
        for path in sorted(REPO_ROOT.glob(pattern)):
            if path.is_file():
                for name in METRIC_WORD.findall(path.read_text(errors="replace")):
                    used.setdefault(name, set()).add(str(path.relative_to(REPO_ROOT)))
    return used


def test_every_metric_name_in_rules_consoles_and_dashboards_is_in_the_catalogue() -> None:
    """Each kpsandbox_… name (counters with _total, histograms with _bucket/_sum/_count) is a catalogue
    entry; recording rules (`kpsandbox:…`) are not metric names and are not matched."""
    used = _used_names()
    assert "kpsandbox_payments_total" in used  # the scan reads the files at all
    known = set(exposed_name_index()) | set(BY_NAME)
    unknown = {name: sorted(files) for name, files in used.items() if name not in known}
    assert not unknown, f"not in schemas/metrics.py: {unknown}"
