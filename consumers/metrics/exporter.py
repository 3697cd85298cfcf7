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
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector

from consumers.metrics.aggregate import LATENCY_BUCKETS_S, Aggregator
from consumers.metrics.figures import figures
from infra.metrics_http import serve_metrics

Lag = dict[tuple[str, str, int], int]  # (group, topic, partition) -> messages behind


class MetricsCollector(Collector):
    """Yields every kpsandbox_ metric family from the current state and consumer lag."""

    def __init__(self, state: Callable[[], Aggregator | None], lag: Callable[[], Lag]) -> None:
        self._state = state
        self._lag = lag

    def collect(self) -> Iterator[Metric]:
        """One family per catalogue entry (docs/metrics.md), all label combinations present; nothing
        while the state is still being loaded (absent, rather than a misleading zero)."""
        state = self._state()
        if state is None:
            return
        f = figures(state)
        label = ["instrument", "rail", "district", "outcome"]
        count = CounterMetricFamily("kpsandbox_payments", "Retail payments (digital outcomes and cash).", labels=label)
        value = CounterMetricFamily("kpsandbox_payments_value_paisa", "Value of retail payments, paisa.", labels=label)
        for labels, (c, v) in f.payments.items():
            count.add_metric(list(labels), c)
            value.add_metric(list(labels), v)
        yield count
        yield value
        yield _gauge("kpsandbox_digital_share_ratio", "Digital share of retail payments over the last 30 simulated "
                     "days.", ["basis", "district"], f.digital_share)  # fmt: skip
        yield _gauge("kpsandbox_window_payments", "Settled retail payments over the last 30 simulated days.",
                     ["instrument", "district"], {k: c for k, (c, _) in f.window_payments.items()})  # fmt: skip
        yield _gauge("kpsandbox_window_payments_value_paisa", "Value of settled retail payments over the last 30 "
                     "simulated days, paisa.", ["instrument", "district"],
                     {k: v for k, (_, v) in f.window_payments.items()})  # fmt: skip
        yield _gauge("kpsandbox_financial_inclusion_ratio", "Adults with an account ÷ adults seen.",
                     ["district", "gender"], f.inclusion)  # fmt: skip
        yield _gauge("kpsandbox_adults_with_account", "Citizen holders with at least one account.",
                     ["district", "gender"], f.adults_with_account)  # fmt: skip
        yield _gauge("kpsandbox_adults", "Adults seen (holders + cash-only payers; cash-only split by gender "
                     "with the calibration's female share).", ["district", "gender"], f.adults)  # fmt: skip
        yield _gauge("kpsandbox_active_digital_users", "Citizens with ≥ 1 settled digital retail payment in the last "
                     "30 simulated days.", ["district", "gender"], f.active_users)  # fmt: skip
        yield _gauge("kpsandbox_merchant_digital_acceptance_ratio", "Share of purchases made where the merchant "
                     "accepts a digital instrument (last 30 simulated days).", ["category"],
                     {(k,): v for k, v in f.acceptance.items()})  # fmt: skip
        yield _gauge("kpsandbox_cash_out_leakage_ratio", "Cash-out value ÷ (cash-in + digital inflow value), last "
                     "30 simulated days.", ["district"], {(k,): v for k, v in f.leakage.items()})  # fmt: skip
        for name, values, meaning in (
            ("kpsandbox_cash_in_value_paisa", f.cash_in, "Settled agent cash-in value, paisa."),
            ("kpsandbox_cash_out_value_paisa", f.cash_out, "Settled agent cash-out value, paisa."),
            ("kpsandbox_digital_inflow_value_paisa", f.inflow, "Settled digital payments received by citizens, "
             "paisa."),
        ):  # fmt: skip
            family = CounterMetricFamily(name, meaning, labels=["district"])
            for district, amount in values.items():
                family.add_metric([district], amount)
            yield family
        yield _latency(f.latency_buckets, f.latency_sum_s)
        dead = CounterMetricFamily("kpsandbox_dead_letter", "Records on the dead-letter topic.", labels=["reason"])
        for reason, n in f.dead_letters.items():
            dead.add_metric([reason], n)
        yield dead
        events = CounterMetricFamily("kpsandbox_metrics_events", "Messages read by the metrics consumer.",
                                     labels=["topic", "result"])  # fmt: skip
        for (topic, result), n in sorted(f.events.items()):
            events.add_metric([topic, result], n)
        yield events
        lag = GaugeMetricFamily("kpsandbox_consumer_lag_messages", "Messages not yet consumed (log end − committed "
                                "or current position).", labels=["group", "topic", "partition"])  # fmt: skip
        for (group, topic, partition), n in sorted(self._lag().items()):
            lag.add_metric([group, topic, str(partition)], n)
        yield lag
        yield GaugeMetricFamily("kpsandbox_simulated_time_seconds", "Latest simulated time seen (Unix seconds).",
                                value=f.simulated_time_s)  # fmt: skip


def _gauge(name: str, meaning: str, labels: list[str], values: dict) -> GaugeMetricFamily:  # type: ignore[type-arg]
    family = GaugeMetricFamily(name, meaning, labels=labels)
    for key, number in values.items():
        family.add_metric(list(key), number)
    return family


def _latency(buckets: list[int], total_s: float) -> HistogramMetricFamily:
    cumulative, running = [], 0
    for bound, n in zip((*[str(b) for b in LATENCY_BUCKETS_S], "+Inf"), buckets, strict=True):
        running += n
        cumulative.append((bound, running))
    meaning = "Wall-clock time from a payment request's Kafka timestamp to its outcome's."
    return HistogramMetricFamily("kpsandbox_settlement_latency_seconds", meaning, buckets=cumulative, sum_value=total_s)


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
