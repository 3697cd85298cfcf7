"""A study's results summarised per scenario/variant over its seeds: `summary.json` and `summary.md`.

Every "final" figure is read at the end of the run: account ownership on the last day, digital
shares over the last FINAL_WINDOW_DAYS days (a single day of a small population is noisy). Means are
over seeds, with the spread (min, max, sd) beside them. Pure: no I/O.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from typing import Any, Final

from producers.sim.study import DAYS_PER_YEAR, RunResult, RunSpec

TARGET_INCLUSION: Final = 0.5  # the Digital KP policy's account-ownership target
FINAL_WINDOW_DAYS: Final = 30
SUMMARY_VERSION: Final = 1
DIGITS: Final = 4


def group_results(results: Sequence[RunResult]) -> dict[str, list[RunResult]]:
    """Results by scenario/variant, in the order of first appearance, each sorted by seed."""
    groups: dict[str, list[RunResult]] = {}
    for result in results:
        groups.setdefault(result.spec.group, []).append(result)
    return {name: sorted(runs, key=lambda r: r.spec.seed) for name, runs in groups.items()}


def mean_series(series: Sequence[Sequence[float]]) -> list[float]:
    """The day-by-day mean of several equally long series."""
    return [statistics.fmean(values) for values in zip(*series, strict=True)]


def years_to(target: float, series: Sequence[float]) -> float | None:
    """Years (day count / 365, 2 decimals) until the series first reaches `target`; None if never."""
    for day, value in enumerate(series):
        if value >= target:
            return round((day + 1) / DAYS_PER_YEAR, 2)
    return None


def final_share(parts: Sequence[int], others: Sequence[int]) -> float:
    """parts / (parts + others) over the last FINAL_WINDOW_DAYS days (0 if nothing was paid)."""
    part, other = sum(parts[-FINAL_WINDOW_DAYS:]), sum(others[-FINAL_WINDOW_DAYS:])
    return part / (part + other) if part + other else 0.0


def ratio_gap(female: float, male: float) -> float:
    """The relative gender gap, 1 − women's ownership ÷ men's (GSMA's definition); 0 when no man
    holds an account (nothing to compare with)."""
    return 1.0 - female / male if male else 0.0


def spread(values: Sequence[float]) -> dict[str, float]:
    """Min, max and sample standard deviation over seeds (sd 0 for a single seed)."""
    sd = statistics.stdev(values) if len(values) > 1 else 0.0
    return {"min": round(min(values), DIGITS), "max": round(max(values), DIGITS), "sd": round(sd, DIGITS)}


def _figure(key: str, values: Sequence[float]) -> dict[str, Any]:
    return {key: round(statistics.fmean(values), DIGITS), f"{key}_spread": spread(values)}


def summarise_group(runs: Sequence[RunResult]) -> dict[str, Any]:
    """One scenario/variant's entry of summary.json."""
    spec = runs[0].spec
    mean_inclusion = mean_series([r.inclusion for r in runs])
    entry: dict[str, Any] = {
        "group": spec.group,
        "scenario": spec.scenario,
        "variant": None if spec.variant is None else {"path": spec.variant.path, "value": spec.variant.value},
        "seeds": [r.spec.seed for r in runs],
        "inclusion_start": round(mean_inclusion[0], DIGITS),
    }
    entry |= _figure("inclusion_final", [r.inclusion[-1] for r in runs])
    entry |= _figure("inclusion_female_final", [r.inclusion_female[-1] for r in runs])
    entry |= _figure("inclusion_male_final", [r.inclusion_male[-1] for r in runs])
    entry["years_to_50pct"] = years_to(TARGET_INCLUSION, mean_inclusion)
    entry["years_to_50pct_by_seed"] = [years_to(TARGET_INCLUSION, r.inclusion) for r in runs]
    entry["gender_gap_start"] = round(
        statistics.fmean(r.inclusion_male[0] - r.inclusion_female[0] for r in runs), DIGITS
    )
    entry |= _figure("gender_gap_final", [r.inclusion_male[-1] - r.inclusion_female[-1] for r in runs])
    entry["gender_ratio_gap_start"] = round(
        statistics.fmean(ratio_gap(r.inclusion_female[0], r.inclusion_male[0]) for r in runs), DIGITS
    )
    entry |= _figure("gender_ratio_gap_final", [ratio_gap(r.inclusion_female[-1], r.inclusion_male[-1]) for r in runs])
    entry |= _figure("digital_share_count_final", [final_share(r.digital_count, r.cash_count) for r in runs])
    entry |= _figure(
        "digital_share_value_final", [final_share(r.digital_value_paisa, r.cash_value_paisa) for r in runs]
    )
    return entry


def reproduce_command(runs: Sequence[RunSpec], vary: str | None) -> str:
    """The `kpsandbox study` command line that repeats this study exactly (but for --out)."""
    first = runs[0]
    names = list(dict.fromkeys(r.scenario for r in runs))
    seeds = sorted({r.seed for r in runs})
    parts = [
        "kpsandbox study",
        f"--scenarios {','.join(names)}",
        f"--days {first.days}",
        f"--seeds {len(seeds)} --first-seed {seeds[0]}",
        f"--citizens {first.citizens} --merchants {first.merchants}",
    ]
    if vary is not None:
        parts.append(f"--vary {vary}")
    return " ".join(parts) + " --out DIR"


def summarise(results: Sequence[RunResult], runs: Sequence[RunSpec], vary: str | None) -> dict[str, Any]:
    """summary.json: the study's parameters, one entry per scenario/variant, and every run's panel.
    Wall-clock timings are left out so that the same study gives the same file."""
    first = runs[0]
    groups = group_results(results)
    return {
        "summary_version": SUMMARY_VERSION,
        "study": {
            "scenarios": list(dict.fromkeys(r.scenario for r in runs)),
            "vary": vary,
            "seeds": sorted({r.seed for r in runs}),
            "days": first.days,
            "years": round(first.days / DAYS_PER_YEAR, 2),
            "citizens": first.citizens,
            "merchants": first.merchants,
            "target_inclusion": TARGET_INCLUSION,
            "final_window_days": FINAL_WINDOW_DAYS,
            "reproduce": reproduce_command(runs, vary),
        },
        "results": [summarise_group(group) for group in groups.values()],
        "runs": [
            {"group": r.spec.group, "seed": r.spec.seed, "panel": f"panels/{r.spec.panel_name}"}
            for group in groups.values()
            for r in group
        ],
    }


def summary_markdown(summary: dict[str, Any]) -> str:
    """summary.md: the study's parameters and one table row per scenario/variant."""
    study = summary["study"]
    lines = [
        "# Policy study",
        "",
        f"{study['years']:g} years ({study['days']} days), {study['citizens']:,} citizens, "
        f"{study['merchants']:,} merchants, seeds {', '.join(str(s) for s in study['seeds'])}.",
        f"Reproduce: `{study['reproduce']}`",
        "",
        "Means over seeds, [min–max] across seeds. Ownership on the last day; digital shares over the "
        f"last {study['final_window_days']} days. Gender gap, first day → last: in points, men's minus "
        "women's ownership; relative, 1 − women's ÷ men's (GSMA's definition). The two can move apart: "
        "points widen when men's ownership grows faster in absolute terms while women's grows faster "
        "relative to where it started.",
        "",
        "| scenario | ownership start | ownership end | women | men | gap (pp) | gap (relative) | years to 50% "
        "| digital share (count) | digital share (value) |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in summary["results"]:
        years = "never" if r["years_to_50pct"] is None else f"{r['years_to_50pct']:.2f}"
        lines.append(
            f"| {r['group']} | {_pct(r['inclusion_start'])} | {_ranged(r, 'inclusion_final')} "
            f"| {_pct(r['inclusion_female_final'])} | {_pct(r['inclusion_male_final'])} "
            f"| {100 * r['gender_gap_start']:.1f} → {100 * r['gender_gap_final']:.1f} "
            f"| {r['gender_ratio_gap_start']:.2f} → {r['gender_ratio_gap_final']:.2f} "
            f"| {years} | {_ranged(r, 'digital_share_count_final')} "
            f"| {_ranged(r, 'digital_share_value_final')} |"
        )
    lines += [
        "",
        "![account ownership](inclusion.png)",
        "![gender gap](gender_gap.png)",
        "![digital share](digital_share.png)",
        "",
        "Per-day panels: `panels/*.parquet` (columns in docs/studies.md).",
    ]
    return "\n".join(lines) + "\n"


def _pct(share: float) -> str:
    return f"{100 * share:.1f}%"


def _ranged(entry: dict[str, Any], key: str) -> str:
    low, high = entry[f"{key}_spread"]["min"], entry[f"{key}_spread"]["max"]
    return f"{_pct(entry[key])} [{100 * low:.1f}–{100 * high:.1f}]"
