"""PNG charts of a demo run over simulated days (matplotlib, no display needed)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Final

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from producers.sim.stats import DayStats, Moments

ROLLING_DAYS: Final = 30
DISTRICTS_SHOWN_MAX: Final = 6
DPI: Final = 110


def _rolling(values: Sequence[float], window: int) -> list[float]:
    """Trailing mean over at most `window` values (shorter at the start)."""
    out: list[float] = []
    total = 0.0
    for i, value in enumerate(values):
        total += value
        if i >= window:
            total -= values[i - window]
        out.append(total / min(i + 1, window))
    return out


def _save(figure: plt.Figure, path: Path) -> Path:
    figure.tight_layout()
    figure.savefig(path, dpi=DPI)
    plt.close(figure)
    return path


def digital_share_by_district(days: Sequence[DayStats], path: Path, populations: dict[str, int]) -> Path:
    """Digital share of retail payments by count, per district (30-day trailing mean)."""
    figure, axes = plt.subplots(figsize=(9, 4.8))
    x = list(range(1, len(days) + 1))
    biggest = sorted(populations, key=lambda d: -populations[d])[:DISTRICTS_SHOWN_MAX]
    for district in biggest:
        series = [100 * day.digital_share_by_district.get(district, 0.0) for day in days]
        axes.plot(x, _rolling(series, ROLLING_DAYS), label=district, linewidth=1.4)
    overall = [100 * day.digital_share_by_count for day in days]
    axes.plot(x, _rolling(overall, ROLLING_DAYS), label="all KP", color="black", linewidth=2.4)
    axes.set(xlabel="simulated day", ylabel="digital share by count, %", title="Cash-to-digital shift by district")
    axes.legend(fontsize=8, ncol=2)
    axes.grid(alpha=0.3)
    return _save(figure, path)


def inclusion_by_gender(days: Sequence[DayStats], path: Path) -> Path:
    """Share of adults holding an account, women vs men vs all, per simulated day."""
    figure, axes = plt.subplots(figsize=(9, 4.8))
    x = list(range(1, len(days) + 1))
    styles = {"female": ("tab:purple", "women"), "male": ("tab:green", "men"), "all": ("black", "all adults")}
    for key, (colour, label) in styles.items():
        axes.plot(x, [100 * day.inclusion_by_gender.get(key, 0.0) for day in days], color=colour, label=label)
    axes.axhline(50, color="grey", linestyle="--", linewidth=1)
    axes.text(x[0], 51, "Digital KP target: 50%", fontsize=8, color="grey")
    axes.set(xlabel="simulated day", ylabel="adults with an account, %", title="Financial inclusion by gender")
    axes.set_ylim(0, 60)
    axes.legend()
    axes.grid(alpha=0.3)
    return _save(figure, path)


def ticket_sizes(tickets: dict[str, Moments], path: Path) -> Path:
    """Mean ticket per flow (PKR, log scale) with one standard deviation."""
    figure, axes = plt.subplots(figsize=(9, 4.8))
    names = sorted(tickets, key=lambda n: tickets[n].mean)
    means = [tickets[n].mean for n in names]
    stds = [tickets[n].std for n in names]
    axes.barh(names, means, xerr=[[min(s, m * 0.9) for s, m in zip(stds, means, strict=True)], stds], color="tab:blue")
    axes.set_xscale("log")
    axes.set(xlabel="PKR per payment (mean ± 1 sd, log scale)", title="Ticket sizes by flow")
    axes.grid(alpha=0.3, axis="x")
    return _save(figure, path)


def settlement_latency(latencies_ms: Sequence[float], path: Path) -> Path:
    """Histogram of request-produced → outcome-published latency, log-spaced buckets."""
    figure, axes = plt.subplots(figsize=(9, 4.8))
    edges = [1.0 * 10 ** (k / 4) for k in range(0, 21)]  # 1 ms … 100 s
    axes.hist([max(1.0, v) for v in latencies_ms], bins=edges, color="tab:orange")
    axes.set_xscale("log")
    p50, p99 = _percentile(latencies_ms, 50), _percentile(latencies_ms, 99)
    for value, label, style in ((p50, "p50", "--"), (p99, "p99", ":")):
        axes.axvline(max(1.0, value), color="black", linestyle=style, linewidth=1.2, label=f"{label} {value:,.0f} ms")
    axes.legend()
    axes.set(xlabel="milliseconds (log scale)", ylabel="payments", title="Settlement latency (wall clock)")
    axes.grid(alpha=0.3)
    return _save(figure, path)


def _percentile(values: Sequence[float], q: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]
