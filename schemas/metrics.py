"""The metric catalogue: every series the sandbox exports — name, type, labels, help — in one place.

The exporters build their families from it (`family()`), and the recording/alert rules, the
console templates, the Grafana dashboards and the tables in README.md, docs/metrics.md and
docs/ledger_metrics.md are generated from it or tested against it (tests/unit/test_metric_catalogue.py),
so a name lives here once. Depends on nothing of ours.

Four exporters, each a Prometheus job of the local Prometheus (infra/local/prometheus.py):

    kpsandbox           the metrics consumer (consumers/metrics), KPSANDBOX_METRICS_PORT
    kpsandbox-ledger    the ledger (consumers/ledger/observe.py), KPSANDBOX_LEDGER_METRICS_PORT
    kpsandbox-api       the HTTP API's /metrics (producers/api), KPSANDBOX_API_PORT
    kpsandbox-webhooks  the webhook dispatcher (consumers/webhooks), KPSANDBOX_WEBHOOKS_METRICS_PORT

Names are given without the `_total` suffix that Prometheus adds to counters on the wire
(`exposed_names` lists what a scrape shows). No label ever carries an account, payment, tenant or
person id: every label has a bounded set of values.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, Literal

Kind = Literal["counter", "gauge", "histogram"]
Job = Literal["kpsandbox", "kpsandbox-ledger", "kpsandbox-api", "kpsandbox-webhooks"]

JOBS: Final[tuple[Job, ...]] = ("kpsandbox", "kpsandbox-ledger", "kpsandbox-api", "kpsandbox-webhooks")
PREFIX: Final = "kpsandbox_"

# Histogram buckets, seconds: one tuple per histogram, shared by its exporter and its docs.
SETTLEMENT_LATENCY_BUCKETS_S: Final = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
LEDGER_BATCH_BUCKETS_S: Final = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
API_REQUEST_BUCKETS_S: Final = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
WEBHOOK_ATTEMPT_BUCKETS_S: Final = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


@dataclass(frozen=True)
class MetricSpec:
    """One metric family: its name (no `_total`), type, label names in order, help text and job."""

    name: str
    kind: Kind
    labels: tuple[str, ...]
    help: str
    job: Job

    @property
    def exposed_names(self) -> tuple[str, ...]:
        """The sample names a scrape shows for this family."""
        if self.kind == "counter":
            return (f"{self.name}_total",)
        if self.kind == "histogram":
            return (f"{self.name}_bucket", f"{self.name}_sum", f"{self.name}_count")
        return (self.name,)

    @property
    def table_name(self) -> str:
        """The name as the docs' tables show it (counters with `_total`)."""
        return f"{self.name}_total" if self.kind == "counter" else self.name


def _m(name: str, kind: Kind, labels: tuple[str, ...], help: str, job: Job) -> MetricSpec:
    return MetricSpec(PREFIX + name, kind, labels, help, job)


_PAYMENT_LABELS: Final = ("instrument", "rail", "district", "outcome")

CATALOGUE: Final[tuple[MetricSpec, ...]] = (
    # --- the metrics consumer: cash-to-digital figures (docs/metrics.md) ---
    _m("payments", "counter", _PAYMENT_LABELS,
       "Retail payments: digital outcomes of `payment.requested` (settled or rejected) and cash purchases / "
       "cash-on-delivery orders (outcome `cash`, rail `cash`). District is the payer's.", "kpsandbox"),
    _m("payments_value_paisa", "counter", _PAYMENT_LABELS, "Value of the same payments, in paisa.", "kpsandbox"),
    _m("digital_share_ratio", "gauge", ("basis", "district"),
       "Settled digital ÷ (settled digital + cash) retail payments over the last 30 simulated days, by `count` "
       "or `value`.", "kpsandbox"),
    _m("window_payments", "gauge", ("instrument", "district"),
       "Numerator/denominator of the share: settled retail payments in the window.", "kpsandbox"),
    _m("window_payments_value_paisa", "gauge", ("instrument", "district"),
       "The same, value in paisa.", "kpsandbox"),
    _m("financial_inclusion_ratio", "gauge", ("district", "gender"),
       "Adults with an account ÷ adults seen (see definitions).", "kpsandbox"),
    _m("adults_with_account", "gauge", ("district", "gender"),
       "Citizen holders with at least one `citizen_wallet`/`citizen_bank` account.", "kpsandbox"),
    _m("adults", "gauge", ("district", "gender"),
       "Adults seen: holders plus cash-only adults (split by gender with the calibration's female share).",
       "kpsandbox"),
    _m("active_digital_users", "gauge", ("district", "gender"),
       "Citizens who initiated at least one settled digital retail payment in the last 30 simulated days.",
       "kpsandbox"),
    _m("merchant_digital_acceptance_ratio", "gauge", ("category",),
       "Share of purchases (count, last 30 simulated days) made where the merchant accepts a digital instrument.",
       "kpsandbox"),
    _m("cash_out_leakage_ratio", "gauge", ("district",),
       "Cash-out value ÷ (cash-in value + digital value received by citizens), last 30 simulated days.",
       "kpsandbox"),
    _m("cash_in_value_paisa", "counter", ("district",),
       "Settled agent cash-in value (customer's district).", "kpsandbox"),
    _m("cash_out_value_paisa", "counter", ("district",),
       "Settled agent cash-out value (customer's district).", "kpsandbox"),
    _m("digital_inflow_value_paisa", "counter", ("district",),
       "Settled digital payments received by citizens (P2P, wages, G2P, ...), payee's district.", "kpsandbox"),
    _m("settlement_latency_seconds", "histogram", (),
       "Outcome's Kafka timestamp − its request's Kafka timestamp (buckets 1 ms … 10 s).", "kpsandbox"),
    _m("dead_letter", "counter", ("reason",), "Records on the dead-letter topic.", "kpsandbox"),
    _m("metrics_events", "counter", ("topic", "result"),
       "Messages the metrics consumer read: counted, duplicate (outcome seen before, or an answer to a "
       "duplicate request) or unreadable.", "kpsandbox"),
    _m("consumer_lag_messages", "gauge", ("group", "topic", "partition"),
       "Messages behind the log end: `kp-metrics` (its own position) and `kp-ledger` (committed offsets, "
       "every 5 s).", "kpsandbox"),
    _m("simulated_time_seconds", "gauge", (), "Latest simulated time seen (Unix seconds).", "kpsandbox"),
    # --- the ledger's own /metrics (docs/ledger_metrics.md) ---
    _m("ledger_batches", "counter", ("group",), "Batches committed.", "kpsandbox-ledger"),
    _m("ledger_batch_seconds", "histogram", ("group",),
       "Time to settle a batch: decide, write and commit (buckets 5 ms … 10 s).", "kpsandbox-ledger"),
    _m("ledger_requests", "counter", ("group", "result"), "Requests decided, by result code.", "kpsandbox-ledger"),
    _m("ledger_transfers", "counter", ("group",), "Transfers written to the ledger.", "kpsandbox-ledger"),
    _m("ledger_last_progress_timestamp_seconds", "gauge", ("group",),
       "Wall-clock time of the last committed batch (Unix seconds); the process start until the first.",
       "kpsandbox-ledger"),
    _m("ledger_fenced_batches", "counter", ("group",),
       "Batches discarded because their partitions were reassigned while they ran.", "kpsandbox-ledger"),
    _m("ledger_retries", "counter", ("group", "kind"), "Retries, by kind (see above).", "kpsandbox-ledger"),
    _m("ledger_dead_letters", "counter", ("group", "reason"),
       "Messages sent to the dead-letter topic, by reason.", "kpsandbox-ledger"),
    _m("ledger_expired_transfers", "counter", ("group",), "Pending transfers expired.", "kpsandbox-ledger"),
    _m("ledger_assigned_partitions", "gauge", ("group",),
       "Partitions of the requests topic this process owns.", "kpsandbox-ledger"),
    _m("ledger_lag_messages", "gauge", ("group", "partition"),
       "Messages not yet settled on an assigned partition (log end − position).", "kpsandbox-ledger"),
    _m("ledger_clock_seconds", "gauge", ("group", "partition"),
       "The ledger's simulated clock on an assigned partition (Unix seconds); absent until the partition has one.",
       "kpsandbox-ledger"),
    _m("ledger_outbox_rows", "gauge", ("group",), "Outcomes committed but not yet published.", "kpsandbox-ledger"),
    _m("ledger_outbox_oldest_age_seconds", "gauge", ("group",),
       "How long the oldest unpublished outcome has waited.", "kpsandbox-ledger"),
    # --- the HTTP API (docs/api/README or README "For startups") ---
    _m("api_requests", "counter", ("method", "route", "status"),
       "HTTP requests answered, by method, route template (e.g. `/v1/payments/{payment_id}`; `other` for "
       "unknown paths) and status code.", "kpsandbox-api"),
    _m("api_request_duration_seconds", "histogram", ("method", "route"),
       "Time from a request's first byte to its last response byte (buckets 1 ms … 2.5 s).", "kpsandbox-api"),
    _m("api_requests_in_flight", "gauge", (), "Requests being handled right now.", "kpsandbox-api"),
    # --- the webhook dispatcher (docs/webhooks.md) ---
    _m("webhook_attempts", "counter", ("result",),
       "Delivery attempts, by result: `delivered` (2xx), `http_error` (other status), `timeout`, "
       "`connection_error`, `gone` (410: the endpoint is disabled).", "kpsandbox-webhooks"),
    _m("webhook_attempt_duration_seconds", "histogram", (),
       "Time from sending an attempt to its answer or failure (buckets 5 ms … 10 s).", "kpsandbox-webhooks"),
    _m("webhook_deliveries_finished", "counter", ("outcome",),
       "Deliveries that reached a final state: `delivered` or `failed` (retry schedule exhausted or endpoint "
       "disabled).", "kpsandbox-webhooks"),
    _m("webhook_deliveries_pending", "gauge", (),
       "Deliveries waiting for their next attempt (due now or later).", "kpsandbox-webhooks"),
    _m("webhook_oldest_due_age_seconds", "gauge", (),
       "How long the oldest delivery that is due has waited past its due time (0 when none is due).",
       "kpsandbox-webhooks"),
)  # fmt: skip

BY_NAME: Final[dict[str, MetricSpec]] = {spec.name: spec for spec in CATALOGUE}


def spec(name: str) -> MetricSpec:
    """The catalogue entry for `name` (with or without the `kpsandbox_` prefix); KeyError if unknown."""
    return BY_NAME[name if name.startswith(PREFIX) else PREFIX + name]


def for_job(job: Job) -> tuple[MetricSpec, ...]:
    """The families one exporter serves, in catalogue order."""
    return tuple(s for s in CATALOGUE if s.job == job)


def exposed_name_index() -> dict[str, MetricSpec]:
    """Every sample name a scrape can show (`…_total`, `…_bucket`, …) → its family."""
    return {exposed: s for s in CATALOGUE for exposed in s.exposed_names}


def markdown_table(job: Job) -> str:
    """The docs' table of one exporter's families: name, type, labels, meaning."""
    rows = ["| name | type | labels | meaning |", "|---|---|---|---|"]
    for s in for_job(job):
        labels = ", ".join(f"`{label}`" for label in s.labels)
        rows.append(f"| `{s.table_name}` | {s.kind} | {labels} | {s.help} |")
    return "\n".join(rows)
