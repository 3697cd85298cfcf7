"""The webhook dispatcher's Prometheus metrics (job `kpsandbox-webhooks`), served while it runs.

`WebhookMetrics` is written only by the dispatcher (consumers/webhooks/dispatcher.py): `attempted`
after each attempt is recorded, `set_backlog` from one SQL query (BACKLOG) every
BACKLOG_INTERVAL_S. The methods update plain numbers; the exposition text is built from them at
scrape time, on the dispatcher's own event loop (infra/metrics_http.py), with a private
CollectorRegistry. Names, labels and help texts come from the catalogue (schemas/metrics.py).

Every label value is bounded and exported from the first scrape (zero until something happens).
"""

from __future__ import annotations

import asyncio
from bisect import bisect_left
from collections.abc import Iterator
from typing import Any, Final, Literal, get_args

import asyncpg
from prometheus_client import CollectorRegistry
from prometheus_client.core import Metric
from prometheus_client.registry import Collector

from infra.metric_families import counter, cumulative_buckets, gauge, histogram
from infra.metrics_http import serve_metrics
from schemas.metrics import WEBHOOK_ATTEMPT_BUCKETS_S

# An attempt that could not even be sent (no secret could be opened) counts as a connection error.
AttemptResult = Literal["delivered", "http_error", "timeout", "connection_error", "gone"]
ATTEMPT_RESULTS: Final[tuple[AttemptResult, ...]] = get_args(AttemptResult)
FINISHED_OUTCOMES: Final = ("delivered", "failed")
GONE_STATUS: Final = 410
# One process's counts: "attempts" and "finished" by label, "duration_buckets" (per bucket, not cumulative),
# "duration_sum_s". A JSON object when a worker process reports it.
Snapshot = dict[str, Any]
BACKLOG_INTERVAL_S: Final = 5.0  # one backlog query per Prometheus scrape interval
BACKLOG_TIMEOUT_S: Final = 5.0

# Deliveries of enabled endpoints still to be attempted (the ones CLAIM_DUE can ever claim; leased
# ones count too, due again when their lease lapses), and how long the oldest due one has waited.
BACKLOG: Final = """
SELECT count(*) AS pending,
       coalesce(extract(epoch FROM now() - min(d.next_attempt_at) FILTER (WHERE d.next_attempt_at <= now())), 0)
           AS oldest_due_age_s
FROM api_webhook_deliveries AS d
JOIN api_webhook_endpoints AS e ON e.id = d.endpoint_id AND e.status = 'enabled'
WHERE d.status = 'pending'
"""


def attempt_result(*, status: int | None, timed_out: bool) -> AttemptResult:
    """The `result` label of one attempt: its HTTP status (None: no answer), and whether it timed out."""
    if status is None:
        return "timeout" if timed_out else "connection_error"
    if 200 <= status <= 299:
        return "delivered"
    return "gone" if status == GONE_STATUS else "http_error"


class WebhookMetrics:
    """Attempts, their durations, finished deliveries and the backlog of one dispatcher process, and
    the last snapshot of each of its worker processes (`peers`, consumers/webhooks/workers.py: the
    exposition adds them to this process's own counts)."""

    def __init__(self) -> None:
        self.attempts: dict[AttemptResult, int] = dict.fromkeys(ATTEMPT_RESULTS, 0)
        self.duration_buckets = [0] * (len(WEBHOOK_ATTEMPT_BUCKETS_S) + 1)  # the last is +Inf
        self.duration_sum_s = 0.0
        self.finished = dict.fromkeys(FINISHED_OUTCOMES, 0)
        self.pending = 0
        self.oldest_due_age_s = 0.0
        self.peers: dict[int, Snapshot] = {}  # running worker number -> its counts (written by `Workers` only)
        self.retired: Snapshot = self.snapshot()  # the counts of workers that have stopped, added up
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(_WebhookCollector(self))

    def attempted(self, *, result: AttemptResult, seconds: float, delivery_status: str) -> None:
        """One recorded attempt: its result, how long it took, and the delivery's status after it."""
        self.attempts[result] += 1
        self.duration_buckets[bisect_left(WEBHOOK_ATTEMPT_BUCKETS_S, seconds)] += 1
        self.duration_sum_s += seconds
        if delivery_status in self.finished:
            self.finished[delivery_status] += 1

    def snapshot(self) -> Snapshot:
        """This process's own counts (not its peers'), as a worker reports them to the first process."""
        return {
            "attempts": dict(self.attempts),
            "duration_buckets": list(self.duration_buckets),
            "duration_sum_s": self.duration_sum_s,
            "finished": dict(self.finished),
        }

    def retire(self, number: int) -> None:
        """A worker stopped: its last counts join `retired`, so the sums never go down when it restarts."""
        peer = self.peers.pop(number, None)
        if peer is not None:
            self.retired = _added(self.retired, [peer])

    def totals(self) -> Snapshot:
        """This process's counts plus every running peer's last snapshot and the retired ones'."""
        return _added(self.snapshot(), [self.retired, *self.peers.values()])

    def set_backlog(self, *, pending: int, oldest_due_age_s: float) -> None:
        """The deliveries still to be attempted, and how long the oldest due one has waited."""
        self.pending = pending
        self.oldest_due_age_s = max(0.0, oldest_due_age_s)


def _added(first: Snapshot, others: list[Snapshot]) -> Snapshot:
    """The sum of `first` and `others`, label by label and bucket by bucket (a new snapshot)."""
    total: Snapshot = {
        "attempts": dict(first["attempts"]),
        "duration_buckets": list(first["duration_buckets"]),
        "duration_sum_s": first["duration_sum_s"],
        "finished": dict(first["finished"]),
    }
    for peer in others:
        for result, count in peer["attempts"].items():
            total["attempts"][result] = total["attempts"].get(result, 0) + count
        pairs = zip(total["duration_buckets"], peer["duration_buckets"], strict=True)
        total["duration_buckets"] = [mine + theirs for mine, theirs in pairs]
        total["duration_sum_s"] += peer["duration_sum_s"]
        for outcome, count in peer["finished"].items():
            total["finished"][outcome] = total["finished"].get(outcome, 0) + count
    return total


class _WebhookCollector(Collector):
    """Builds the kpsandbox_webhook_* families from a WebhookMetrics at scrape time."""

    def __init__(self, metrics: WebhookMetrics) -> None:
        self._m = metrics

    def collect(self) -> Iterator[Metric]:
        """One family per catalogue entry of job `kpsandbox-webhooks`."""
        m = self._m
        total = m.totals()
        attempts = counter("webhook_attempts")
        for result in ATTEMPT_RESULTS:
            attempts.add_metric([result], total["attempts"].get(result, 0))
        yield attempts
        durations = histogram("webhook_attempt_duration_seconds")
        buckets = cumulative_buckets(WEBHOOK_ATTEMPT_BUCKETS_S, total["duration_buckets"])
        durations.add_metric([], buckets, total["duration_sum_s"])
        yield durations
        finished = counter("webhook_deliveries_finished")
        for outcome in FINISHED_OUTCOMES:
            count = total["finished"].get(outcome, 0)
            finished.add_metric([outcome], count)
        yield finished
        pending = gauge("webhook_deliveries_pending")
        pending.add_metric([], m.pending)
        yield pending
        oldest = gauge("webhook_oldest_due_age_seconds")
        oldest.add_metric([], m.oldest_due_age_s)
        yield oldest


async def read_backlog(pool: asyncpg.Pool, metrics: WebhookMetrics) -> None:
    """Runs BACKLOG once (within BACKLOG_TIMEOUT_S) and stores its answer in `metrics`."""
    async with pool.acquire() as db:
        row = await db.fetchrow(BACKLOG, timeout=BACKLOG_TIMEOUT_S)
    metrics.set_backlog(pending=int(row["pending"]), oldest_due_age_s=float(row["oldest_due_age_s"]))


async def start_metrics_server(metrics: WebhookMetrics, *, host: str, port: int) -> asyncio.Server:
    """Serves `metrics` at http://host:port/metrics (settings.metrics_host, settings.webhooks_metrics_port)
    on the running event loop; SandboxError naming the port and KPSANDBOX_WEBHOOKS_METRICS_PORT when it
    is taken. Start it before connecting to anything: a busy port needs no other service."""
    return await serve_metrics(
        metrics.registry,
        host=host,
        port=port,
        what="the webhook dispatcher's metrics port",
        port_setting="KPSANDBOX_WEBHOOKS_METRICS_PORT",
        holder="another `python -m consumers.webhooks`?",
    )
