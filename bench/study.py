"""Policy-study speed (issue 11): wall and CPU of a whole study, beside a raw baseline.

    .venv/bin/python bench/study.py [--scenarios baseline,digital-kp --seeds 5 --years 10 --citizens 5000]

The study is the issue's by default (2 scenarios × 5 seeds × 10 years × 5,000 citizens); --years and
--citizens shrink it. Its runs are made as `kpsandbox study` makes them (`plan_runs`, then `run_one` on
one process per core, at most one per run; aggregate-only mode, panels written to a temporary folder)
and summarised with `summarise`; the charts and the progress bar are left out.

The raw baseline travels between machines: the CPU seconds of N calls of `random.random()` in a plain
loop, N being the random numbers one simulated year of one run draws (counted on a year of the first
run: baseline scenario if the study has it, else the first scenario). It is measured before and after
the study, and the mean is used. Prints one JSON object: wall and CPU seconds of the study, CPU per
run, the baseline and the ratios study CPU / baseline and run-year CPU / baseline.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import random
import resource
import statistics
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from unittest import mock

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from producers.sim.engine import Simulation, SimulationConfig
from producers.sim.scenario import load_scenario
from producers.sim.study import DAYS_PER_YEAR, RunFailure, RunResult, RunSpec, plan_runs, run_one
from producers.sim.study_summary import summarise


class CountingRandom(random.Random):
    """A Random that counts the numbers it draws (`random()` and `getrandbits()`, which every other
    method is built on). Overriding both keeps the stream exactly that of random.Random."""

    draws = 0  # over every instance: a run seeds several streams

    def random(self) -> float:
        CountingRandom.draws += 1
        return super().random()

    def getrandbits(self, k: int) -> int:
        CountingRandom.draws += 1
        return super().getrandbits(k)


def draws_per_year(spec: RunSpec) -> int:
    """Random numbers drawn by one simulated year (or the run, if shorter) of `spec`, population
    included (building it is a small share)."""
    days = min(spec.days, DAYS_PER_YEAR)
    config = SimulationConfig(
        seed=spec.seed,
        days=days,
        citizens=spec.citizens,
        merchants=spec.merchants,
        scenario=load_scenario(spec.scenario),
    )
    CountingRandom.draws = 0
    with mock.patch("random.Random", CountingRandom):  # the engine seeds its streams as random.Random(...)
        Simulation(config, emit_events=False).run_aggregates()
    return round(CountingRandom.draws * DAYS_PER_YEAR / days)


def baseline_cpu_s(draws: int) -> float:
    """CPU seconds of `draws` calls of random.random() in a plain loop."""
    draw = random.Random(0).random
    started = time.process_time()
    for _ in range(draws):
        draw()
    return time.process_time() - started


def children_cpu_s() -> float:
    """CPU seconds (user + system) of the child processes waited for so far."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run_study(runs: list[RunSpec], workers: int) -> list[RunResult]:
    """Every run on `workers` processes (spawned, as the study command does)."""
    with tempfile.TemporaryDirectory(prefix="kpsandbox-bench-study-") as folder:
        context = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(workers, mp_context=context) as pool:
            outcomes = list(pool.map(run_one, runs, [Path(folder)] * len(runs)))
    failures = [o for o in outcomes if isinstance(o, RunFailure)]
    if failures:
        raise SystemExit(f"run {failures[0].spec.panel_name} failed: {failures[0].message}")
    return [o for o in outcomes if isinstance(o, RunResult)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scenarios", default="baseline,digital-kp")
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--years", type=int, default=10)
    parser.add_argument("--citizens", type=int, default=5_000)
    args = parser.parse_args()
    names = args.scenarios.split(",")
    runs = plan_runs(
        names,
        seeds=args.seeds,
        first_seed=1,
        days=args.years * DAYS_PER_YEAR,
        citizens=args.citizens,
        merchants=max(1, args.citizens // 10),
    )
    workers = min(os.cpu_count() or 1, len(runs))
    counted = next((spec for spec in runs if spec.scenario == "baseline"), runs[0])
    draws = draws_per_year(counted)
    baseline_before = baseline_cpu_s(draws)

    cpu_started, started = children_cpu_s(), time.perf_counter()
    results = run_study(runs, workers)
    wall_s, cpu_s = time.perf_counter() - started, children_cpu_s() - cpu_started

    baseline_after = baseline_cpu_s(draws)
    baseline = (baseline_before + baseline_after) / 2
    run_cpu = [r.cpu_seconds for r in results]
    summary = summarise(results, runs, None)
    print(
        json.dumps(
            {
                "scenarios": names,
                "seeds": args.seeds,
                "years": args.years,
                "citizens": args.citizens,
                "runs": len(runs),
                "workers": workers,
                "wall_s": round(wall_s, 1),
                "cpu_s": round(cpu_s, 1),
                "run_cpu_s": {
                    "mean": round(statistics.fmean(run_cpu), 1),
                    "min": round(min(run_cpu), 1),
                    "max": round(max(run_cpu), 1),
                },
                "draws_per_run_year": draws,
                "draws_counted_on": counted.panel_name,
                "baseline_cpu_s": {"before": round(baseline_before, 3), "after": round(baseline_after, 3)},
                "ratio_study_to_baseline": round(cpu_s / baseline, 1),
                "ratio_run_year_to_baseline": round(statistics.fmean(run_cpu) / args.years / baseline, 2),
                "results": [
                    {
                        "group": entry["group"],
                        "inclusion_final": entry["inclusion_final"],
                        "inclusion_final_spread": entry["inclusion_final_spread"],
                        "years_to_50pct": entry["years_to_50pct"],
                    }
                    for entry in summary["results"]
                ],
            }
        )
    )


if __name__ == "__main__":
    main()
