"""The ledger's own Prometheus metrics (`kpsandbox_ledger_*`), served while `kpsandbox settle` runs.

`LedgerMetrics` is written only by the consumer loop, through the methods below, and read only
when Prometheus scrapes. The methods update plain integers and dicts (no locks, no
prometheus-client objects), so calling them once per batch costs a few microseconds; the
exposition text is built from them at scrape time. The HTTP server runs on the consumer's event
loop (infra/metrics_http.py), so a scrape never sees a batch half-recorded.

Every label value set is bounded and exported from the first scrape (zero until something
happens), except the per-partition series, which exist exactly for the assigned partitions.
Names, label names and help texts come from the catalogue (schemas/metrics.py), which also generates
docs/ledger_metrics.md's table; tests/unit/test_metric_catalogue.py keeps a scrape equal to it.

How the consumer loop calls it:
- `set_assigned(partitions)` on every assignment change (including revocation, with what is left),
  before `set_partition` for those partitions: updates for an unassigned partition are ignored,
  which keeps the `partition` label bounded and drops series of partitions another member now owns.
- `set_partition(p, lag=…, clock=…)` on every poll, idle ones too, so a loop that still polls but
  cannot settle shows its lag (the LedgerStalled alert needs it).
- `batch_settled(…)` once per committed batch, even one that settled no request, since it marks
  progress; `batch_fenced`, `retried`, `dead_lettered`, `expired`, `set_outbox` as they happen.
"""

from __future__ import annotations

import asyncio
import time
from bisect import bisect_left
from collections.abc import Callable, Collection, Iterator, Mapping
from datetime import datetime
from typing import Final, get_args

from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector

from infra.metric_families import counter, cumulative_buckets, gauge, histogram
from infra.metrics_http import serve_metrics
from schemas.deadletter import DeadLetterReason
from schemas.metrics import LEDGER_BATCH_BUCKETS_S
from schemas.payments import RejectedResult, SettledResult

# Anything outside a bounded set is counted under this value rather than minting a new series.
OTHER: Final = "other"
RESULTS: Final[tuple[str, ...]] = (*get_args(SettledResult), *get_args(RejectedResult), OTHER)
DEAD_LETTER_REASONS: Final[tuple[str, ...]] = (*get_args(DeadLetterReason), OTHER)
RETRY_KINDS: Final[tuple[str, ...]] = (
    "db_unavailable",
    "kafka_unavailable",
    "batch_refused",
    "relay",
    "assignment",
    OTHER,
)
# A batch takes ~20 ms to ~1 s; the catalogue's tail buckets catch database stalls and retries.
BATCH_SECONDS_BUCKETS: Final[tuple[float, ...]] = LEDGER_BATCH_BUCKETS_S


class LedgerMetrics:
    """Counters and gauges of one ledger consumer process (one consumer group), with their own
    CollectorRegistry (`registry`), never the global one. `now` is the wall clock (Unix seconds)."""

    def __init__(self, *, group: str, now: Callable[[], float] = time.time) -> None:
        self.group = group
        self.registry = CollectorRegistry(auto_describe=False)
        self._now = now
        self.batches = 0
        self.batch_buckets = [0] * (len(BATCH_SECONDS_BUCKETS) + 1)  # per bucket, the last is +Inf
        self.batch_seconds_sum = 0.0
        self.requests = dict.fromkeys(RESULTS, 0)
        self.transfers = 0
        # Starts at construction: a ledger that never settles a batch has made no progress since then.
        self.last_progress_s = now()
        self.fenced = 0
        self.retries = dict.fromkeys(RETRY_KINDS, 0)
        self.dead_letters = dict.fromkeys(DEAD_LETTER_REASONS, 0)
        self.expired_transfers = 0
        self.assigned: frozenset[int] = frozenset()
        self.lag: dict[int, int] = {}  # partition -> messages not yet settled
        self.clock_s: dict[int, float] = {}  # partition -> the ledger's simulated clock (Unix seconds)
        self.outbox_rows = 0
        self.outbox_oldest_age_s = 0.0
        self.registry.register(_LedgerCollector(self))

    def batch_settled(self, *, results: Mapping[str, int], requests: int, transfers: int, seconds: float) -> None:
        """One committed batch: `requests` settled with these result codes, `transfers` written,
        `seconds` to decide, write and commit it. Marks progress (the LedgerStalled alert's clock)."""
        self.batches += 1
        self.batch_buckets[bisect_left(BATCH_SECONDS_BUCKETS, seconds)] += 1
        self.batch_seconds_sum += seconds
        for result, count in results.items():
            key = result if result in self.requests else OTHER
            self.requests[key] += count
        self.transfers += transfers
        self.last_progress_s = self._now()

    def batch_fenced(self) -> None:
        """A batch was discarded because the partitions it read were reassigned meanwhile."""
        self.fenced += 1

    def retried(self, kind: str) -> None:
        """One retry of `kind`: db_unavailable, batch_refused, relay or assignment (else `other`)."""
        key = kind if kind in self.retries else OTHER
        self.retries[key] += 1

    def dead_lettered(self, reason: str, count: int = 1) -> None:
        """`count` messages sent to the dead-letter topic for `reason` (a DeadLetterReason)."""
        key = reason if reason in self.dead_letters else OTHER
        self.dead_letters[key] += count

    def expired(self, count: int) -> None:
        """`count` pending transfers expired."""
        self.expired_transfers += count

    def set_assigned(self, partitions: Collection[int]) -> None:
        """The partitions this process now owns; series of any other partition are dropped."""
        self.assigned = frozenset(partitions)
        for partition in [p for p in self.lag if p not in self.assigned]:
            del self.lag[partition]
        for partition in [p for p in self.clock_s if p not in self.assigned]:
            del self.clock_s[partition]

    def set_partition(self, partition: int, *, lag: int, clock: datetime | None) -> None:
        """An assigned partition's lag (log end − position, in messages) and simulated clock
        (None: no clock yet, so no series). Ignored for a partition not assigned."""
        if partition not in self.assigned:
            return
        self.lag[partition] = lag
        if clock is None:
            self.clock_s.pop(partition, None)
        else:
            self.clock_s[partition] = clock.timestamp()

    def set_outbox(self, *, rows: int, oldest_age_s: float) -> None:
        """Outcomes committed but not yet published, and how long the oldest has waited."""
        self.outbox_rows = rows
        self.outbox_oldest_age_s = oldest_age_s


class _LedgerCollector(Collector):
    """Builds every kpsandbox_ledger_* family from a LedgerMetrics at scrape time."""

    def __init__(self, metrics: LedgerMetrics) -> None:
        self._m = metrics

    def collect(self) -> Iterator[Metric]:
        """One family per catalogue entry of job `kpsandbox-ledger`; `group` on every sample."""
        m, group = self._m, [self._m.group]
        yield _counter("ledger_batches", group, m.batches)
        yield _histogram(m)
        requests = counter("ledger_requests")
        for result, count in m.requests.items():
            requests.add_metric([m.group, result], count)
        yield requests
        yield _counter("ledger_transfers", group, m.transfers)
        yield _gauge("ledger_last_progress_timestamp_seconds", group, m.last_progress_s)
        yield _counter("ledger_fenced_batches", group, m.fenced)
        retries = counter("ledger_retries")
        for kind, count in m.retries.items():
            retries.add_metric([m.group, kind], count)
        yield retries
        dead = counter("ledger_dead_letters")
        for reason, count in m.dead_letters.items():
            dead.add_metric([m.group, reason], count)
        yield dead
        yield _counter("ledger_expired_transfers", group, m.expired_transfers)
        yield _gauge("ledger_assigned_partitions", group, len(m.assigned))
        lag = gauge("ledger_lag_messages")
        for partition, behind in sorted(m.lag.items()):
            lag.add_metric([m.group, str(partition)], behind)
        yield lag
        clock = gauge("ledger_clock_seconds")
        for partition, seconds in sorted(m.clock_s.items()):
            clock.add_metric([m.group, str(partition)], seconds)
        yield clock
        yield _gauge("ledger_outbox_rows", group, m.outbox_rows)
        yield _gauge("ledger_outbox_oldest_age_seconds", group, m.outbox_oldest_age_s)


def _counter(name: str, group: list[str], value: float) -> CounterMetricFamily:
    family = counter(name)
    family.add_metric(group, value)
    return family


def _gauge(name: str, group: list[str], value: float) -> GaugeMetricFamily:
    family = gauge(name)
    family.add_metric(group, value)
    return family


def _histogram(m: LedgerMetrics) -> HistogramMetricFamily:
    family = histogram("ledger_batch_seconds")
    family.add_metric([m.group], cumulative_buckets(BATCH_SECONDS_BUCKETS, m.batch_buckets), m.batch_seconds_sum)
    return family


async def start_metrics_server(metrics: LedgerMetrics, *, host: str, port: int) -> asyncio.Server:
    """Serves `metrics` at http://host:port/metrics (settings.metrics_host, settings.ledger_metrics_port)
    on the running event loop. SandboxError naming the port and KPSANDBOX_LEDGER_METRICS_PORT when the
    port is taken. Start it before connecting to anything: a busy port needs no other service."""
    return await serve_metrics(
        metrics.registry,
        host=host,
        port=port,
        what="the ledger's metrics port",
        port_setting="KPSANDBOX_LEDGER_METRICS_PORT",
        holder="another `kpsandbox settle`?",
    )


async def stop_metrics_server(server: asyncio.Server) -> None:
    """Stops serving and waits until the listening socket is closed."""
    server.close()
    await server.wait_closed()
