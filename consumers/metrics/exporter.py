"""The Prometheus exporter: a custom collector over the metrics state, served by asyncio.

The collector reads the state only when scraped, so the consumer never pays prometheus-client's
per-observation cost. The HTTP server runs on the consumer's event loop (not a thread), so a
scrape never sees the state half-updated (infra/metrics_http.py). It uses its own
CollectorRegistry, never the global one.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator

from prometheus_client import CollectorRegistry
from prometheus_client.core import GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector

from consumers.metrics.aggregate import Aggregator
from consumers.metrics.figures import figures
from infra.metric_families import counter, cumulative_buckets, gauge, histogram
from infra.metrics_http import serve_metrics
from schemas.metrics import SETTLEMENT_LATENCY_BUCKETS_S

Lag = dict[tuple[str, str, int], int]  # (group, topic, partition) -> messages behind


class MetricsCollector(Collector):
    """Yields every family of job `kpsandbox` in schemas/metrics.py from the current state and consumer lag."""

    def __init__(self, state: Callable[[], Aggregator | None], lag: Callable[[], Lag]) -> None:
        self._state = state
        self._lag = lag

    def collect(self) -> Iterator[Metric]:
        """One family per catalogue entry, in catalogue order, all label combinations present; nothing
        while the state is still being loaded (absent, rather than a misleading zero)."""
        state = self._state()
        if state is None:
            return
        f = figures(state)
        count, value = counter("payments"), counter("payments_value_paisa")
        for labels, (c, v) in f.payments.items():
            count.add_metric(list(labels), c)
            value.add_metric(list(labels), v)
        yield count
        yield value
        yield _gauge("digital_share_ratio", f.digital_share)
        yield _gauge("window_payments", {k: c for k, (c, _) in f.window_payments.items()})
        yield _gauge("window_payments_value_paisa", {k: v for k, (_, v) in f.window_payments.items()})
        yield _gauge("financial_inclusion_ratio", f.inclusion)
        yield _gauge("adults_with_account", f.adults_with_account)
        yield _gauge("adults", f.adults)
        yield _gauge("active_digital_users", f.active_users)
        yield _gauge("merchant_digital_acceptance_ratio", {(k,): v for k, v in f.acceptance.items()})
        yield _gauge("cash_out_leakage_ratio", {(k,): v for k, v in f.leakage.items()})
        for name, values in (
            ("cash_in_value_paisa", f.cash_in),
            ("cash_out_value_paisa", f.cash_out),
            ("digital_inflow_value_paisa", f.inflow),
        ):
            family = counter(name)
            for district, amount in values.items():
                family.add_metric([district], amount)
            yield family
        yield _latency(f.latency_buckets, f.latency_sum_s)
        dead = counter("dead_letter")
        for reason, n in f.dead_letters.items():
            dead.add_metric([reason], n)
        yield dead
        events = counter("metrics_events")
        for (topic, result), n in sorted(f.events.items()):
            events.add_metric([topic, result], n)
        yield events
        lag = gauge("consumer_lag_messages")
        for (group, topic, partition), n in sorted(self._lag().items()):
            lag.add_metric([group, topic, str(partition)], n)
        yield lag
        simulated = gauge("simulated_time_seconds")
        simulated.add_metric([], f.simulated_time_s)
        yield simulated


def _gauge(name: str, values: dict) -> GaugeMetricFamily:  # type: ignore[type-arg]
    family = gauge(name)
    for key, number in values.items():
        family.add_metric(list(key), number)
    return family


def _latency(buckets: list[int], total_s: float) -> HistogramMetricFamily:
    family = histogram("settlement_latency_seconds")
    family.add_metric([], cumulative_buckets(SETTLEMENT_LATENCY_BUCKETS_S, buckets), total_s)
    return family


def new_registry(state: Callable[[], Aggregator | None], lag: Callable[[], Lag]) -> CollectorRegistry:
    """A private registry holding only the sandbox collector."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(MetricsCollector(state, lag))
    return registry


async def serve(registry: CollectorRegistry, port: int, host: str = "127.0.0.1") -> asyncio.Server:
    """Starts serving GET /metrics on host:port (settings.metrics_host, settings.metrics_port);
    SandboxError naming the port and KPSANDBOX_METRICS_PORT when the port is taken."""
    return await serve_metrics(
        registry,
        host=host,
        port=port,
        what="the metrics port",
        port_setting="KPSANDBOX_METRICS_PORT",
        holder="another `kpsandbox metrics serve`?",
    )
