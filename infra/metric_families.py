"""Empty Prometheus metric families built from the metric catalogue (schemas/metrics.py).

Every exporter builds its families here, so the name, type, label names and HELP text a scrape
shows are the catalogue's, and a renamed or re-labelled metric changes in one place. schemas/
stays free of prometheus_client; this is the one module that joins the two.
"""

from __future__ import annotations

from collections.abc import Sequence

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily

from schemas.metrics import Kind, MetricSpec, spec

Family = CounterMetricFamily | GaugeMetricFamily | HistogramMetricFamily


def family(entry: MetricSpec) -> Family:
    """An empty family for a catalogue entry: its name, help text and label names."""
    labels = list(entry.labels)
    if entry.kind == "counter":
        return CounterMetricFamily(entry.name, entry.help, labels=labels)
    if entry.kind == "histogram":
        return HistogramMetricFamily(entry.name, entry.help, labels=labels)
    return GaugeMetricFamily(entry.name, entry.help, labels=labels)


def _checked(name: str, kind: Kind) -> MetricSpec:
    entry = spec(name)
    if entry.kind != kind:
        raise ValueError(f"{entry.name} is a {entry.kind} in schemas/metrics.py, not a {kind}: use its kind")
    return entry


def counter(name: str) -> CounterMetricFamily:
    """The catalogue's counter `name` (with or without the `kpsandbox_` prefix), empty."""
    built = family(_checked(name, "counter"))
    assert isinstance(built, CounterMetricFamily)
    return built


def gauge(name: str) -> GaugeMetricFamily:
    """The catalogue's gauge `name`, empty."""
    built = family(_checked(name, "gauge"))
    assert isinstance(built, GaugeMetricFamily)
    return built


def histogram(name: str) -> HistogramMetricFamily:
    """The catalogue's histogram `name`, empty."""
    built = family(_checked(name, "histogram"))
    assert isinstance(built, HistogramMetricFamily)
    return built


def cumulative_buckets(bounds: Sequence[float], counts: Sequence[int]) -> list[tuple[str, float]]:
    """Per-bucket counts (the last one +Inf) as the cumulative (le, count) pairs a histogram sample takes."""
    pairs, running = [], 0
    for bound, count in zip((*map(str, bounds), "+Inf"), counts, strict=True):
        running += count
        pairs.append((bound, float(running)))
    return pairs
