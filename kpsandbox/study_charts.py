"""PNG charts of a policy study: each scenario/variant's mean over seeds with a min–max seed band."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Final

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from producers.sim.study import DAYS_PER_YEAR, RunResult
from producers.sim.study_summary import TARGET_INCLUSION, group_results, mean_series, ratio_gap

DPI: Final = 110
ROLLING_DAYS: Final = 30  # digital shares are noisy day by day: a trailing 30-day window


def _trailing_share(parts: Sequence[int], others: Sequence[int]) -> list[float]:
    """parts / (parts + others) over a trailing ROLLING_DAYS window, in percent."""
    out: list[float] = []
    part = other = 0
    for day, (p, o) in enumerate(zip(parts, others, strict=True)):
        part, other = part + p, other + o
        if day >= ROLLING_DAYS:
            part, other = part - parts[day - ROLLING_DAYS], other - others[day - ROLLING_DAYS]
        out.append(100 * part / (part + other) if part + other else 0.0)
    return out


def _band(axes: plt.Axes, results: Sequence[RunResult], series: Callable[[RunResult], list[float]], label: str) -> None:
    """The mean over seeds as a line, the seeds' min–max as a shaded band."""
    per_seed = [series(r) for r in results]
    years = [(day + 1) / DAYS_PER_YEAR for day in range(len(per_seed[0]))]
    line = axes.plot(years, mean_series(per_seed), label=label, linewidth=1.8)[0]
    low = [min(values) for values in zip(*per_seed, strict=True)]
    high = [max(values) for values in zip(*per_seed, strict=True)]
    axes.fill_between(years, low, high, color=line.get_color(), alpha=0.2, linewidth=0)


def _save(figure: plt.Figure, path: Path) -> Path:
    figure.tight_layout()
    temporary = path.with_name(f".{path.name}.tmp.png")
    figure.savefig(temporary, dpi=DPI)
    plt.close(figure)
    temporary.replace(path)
    return path


def study_charts(results: Sequence[RunResult], folder: Path) -> list[Path]:
    """inclusion.png, gender_gap.png and digital_share.png in `folder`."""
    groups = group_results(results)
    figure, axes = plt.subplots(figsize=(9, 4.8))
    for name, runs in groups.items():
        _band(axes, runs, lambda r: [100 * v for v in r.inclusion], name)
    axes.axhline(100 * TARGET_INCLUSION, color="black", linestyle="--", linewidth=1, label="50% target")
    axes.set(xlabel="years", ylabel="adults holding an account, %", title="Account ownership (band: seeds)")
    axes.set_ylim(0, 100)
    axes.legend(fontsize=8)
    axes.grid(alpha=0.3)
    paths = [_save(figure, folder / "inclusion.png")]

    figure, (points, relative) = plt.subplots(1, 2, figsize=(12, 4.8))
    for name, runs in groups.items():
        _band(
            points,
            runs,
            lambda r: [100 * (m - f) for m, f in zip(r.inclusion_male, r.inclusion_female, strict=True)],
            name,
        )
        _band(
            relative,
            runs,
            lambda r: [ratio_gap(f, m) for m, f in zip(r.inclusion_male, r.inclusion_female, strict=True)],
            name,
        )
    points.set(xlabel="years", ylabel="men's minus women's ownership, pp", title="Gender gap in points")
    relative.set(xlabel="years", ylabel="1 − women's ÷ men's ownership", title="Relative gender gap (GSMA)")
    relative.set_ylim(0, 1)
    for axes in (points, relative):
        axes.legend(fontsize=8)
        axes.grid(alpha=0.3)
    paths.append(_save(figure, folder / "gender_gap.png"))

    figure, (by_count, by_value) = plt.subplots(1, 2, figsize=(12, 4.8), sharey=True)
    for name, runs in groups.items():
        _band(by_count, runs, lambda r: _trailing_share(r.digital_count, r.cash_count), name)
        _band(by_value, runs, lambda r: _trailing_share(r.digital_value_paisa, r.cash_value_paisa), name)
    by_count.set(xlabel="years", ylabel="digital share of retail payments, % (30-day)", title="By count")
    by_value.set(xlabel="years", title="By value")
    for axes in (by_count, by_value):
        axes.legend(fontsize=8)
        axes.grid(alpha=0.3)
    paths.append(_save(figure, folder / "digital_share.png"))
    return paths
