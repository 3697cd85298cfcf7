"""`kpsandbox study`: many seeded runs of several scenarios (and lever values) on every core, in
file mode with no services; per-run panels, `summary.json`, `summary.md` and charts."""

from __future__ import annotations

import json
import multiprocessing
import os
import signal
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from pathlib import Path
from typing import Final

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from infra.errors import SandboxError
from kpsandbox.console import console
from producers.sim.study import DAYS_PER_YEAR, RunFailure, RunResult, RunSpec, plan_runs, run_one
from producers.sim.study_summary import summarise, summary_markdown

YEARS_MAX: Final = 100
WAIT_S: Final = 1.0  # how often the progress bar checks on the workers


def study(
    scenarios: str = typer.Option(..., "--scenarios", help="Comma-separated scenario names or .toml paths."),
    out: Path = typer.Option(..., "--out", help="Folder for panels/, summary.json, summary.md and charts."),
    years: int = typer.Option(10, "--years", help="Simulated years per run (365 days each)."),
    days: int | None = typer.Option(None, "--days", help="Simulated days per run (instead of --years)."),
    seeds: int = typer.Option(5, "--seeds", help="Seeds per scenario/variant."),
    first_seed: int = typer.Option(1, "--first-seed", help="Seeds are first-seed, first-seed+1, ..."),
    citizens: int = typer.Option(5_000, "--citizens", help="Adult citizens per run."),
    merchants: int | None = typer.Option(None, "--merchants", help="Merchants per run (default citizens/10)."),
    vary: str | None = typer.Option(None, "--vary", help="A lever and its values, e.g. levers.women_onboarding=1,2,3."),
) -> None:
    """Compare policy scenarios over many seeds: account ownership, gender gap, digital share."""
    if days is None:
        if not 1 <= years <= YEARS_MAX:
            raise SandboxError(f"--years must be between 1 and {YEARS_MAX}, got {years}", "e.g. --years 10")
        days = years * DAYS_PER_YEAR
    runs = plan_runs(
        scenarios.split(","),
        seeds=seeds,
        first_seed=first_seed,
        days=days,
        citizens=citizens,
        merchants=merchants if merchants is not None else max(1, citizens // 10),
        vary=vary,
    )
    if (out / "summary.json").exists():
        raise SandboxError(f"{out} already holds a study (summary.json)", "choose a new --out folder or delete it")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise SandboxError(f"cannot create {out}: {exc.strerror}", "choose a writable --out folder") from exc
    workers = min(os.cpu_count() or 1, len(runs))
    console.print(f"study: {len(runs)} runs of {days:,} days × {citizens:,} citizens on {workers} processes")
    results = _run_all(runs, out, workers)
    _write_outputs(results, runs, vary, out)


def _run_all(runs: list[RunSpec], out: Path, workers: int) -> list[RunResult]:
    """Runs every spec on `workers` processes, with a progress bar over runs."""
    columns = (TextColumn("runs"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    results: list[RunResult] = []
    # spawn, not fork: the progress bar's refresh thread must not be copied into the workers.
    context = multiprocessing.get_context("spawn")
    pool = ProcessPoolExecutor(workers, mp_context=context, initializer=_ignore_interrupts)
    with Progress(*columns, console=console) as progress:
        task = progress.add_task("runs", total=len(runs))
        pending: set[Future[RunResult | RunFailure]] = {pool.submit(run_one, spec, out) for spec in runs}
        try:
            while pending:
                done, pending = wait(pending, timeout=WAIT_S, return_when=FIRST_COMPLETED)
                for future in done:
                    outcome = future.result()
                    if isinstance(outcome, RunFailure):
                        raise SandboxError(f"run {outcome.spec.panel_name}: {outcome.message}", outcome.hint)
                    results.append(outcome)
                    progress.advance(task)
        except BaseException:
            # Ctrl-C or a failed run: stop now rather than after the runs in flight (minutes each).
            # The executor has no public way to stop busy workers before Python 3.14.
            for process in list(getattr(pool, "_processes", {}).values()):
                process.terminate()
            pool.shutdown(wait=True, cancel_futures=True)
            raise
    pool.shutdown(wait=True)
    return results


def _ignore_interrupts() -> None:
    """Workers leave Ctrl-C to the parent, which stops them (a worker would only skip one run)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _write_outputs(results: list[RunResult], runs: list[RunSpec], vary: str | None, out: Path) -> None:
    """summary.json, summary.md and the charts, each written whole (temporary file, then rename)."""
    from kpsandbox.study_charts import study_charts  # matplotlib is slow to import: only when needed

    order = {spec: k for k, spec in enumerate(runs)}
    results.sort(key=lambda r: order[r.spec])
    summary = summarise(results, runs, vary)
    try:
        study_charts(results, out)
        _write_text(out / "summary.md", summary_markdown(summary))
        _write_text(out / "summary.json", json.dumps(summary, indent=2) + "\n")
    except OSError as exc:
        raise SandboxError(
            f"cannot write the study to {out}: {exc.strerror}", "free some space or choose --out"
        ) from exc
    for entry in summary["results"]:
        years = "never" if entry["years_to_50pct"] is None else f"{entry['years_to_50pct']:.1f} years"
        console.print(
            f"{entry['group']}: ownership {entry['inclusion_final']:.1%} at the end "
            f"(seeds {entry['inclusion_final_spread']['min']:.1%}–{entry['inclusion_final_spread']['max']:.1%}), "
            f"50% reached: {years}, gender gap {100 * entry['gender_gap_start']:.1f} → "
            f"{100 * entry['gender_gap_final']:.1f} pp (relative {entry['gender_ratio_gap_start']:.2f} → "
            f"{entry['gender_ratio_gap_final']:.2f})"
        )
    runs_n = max(1, len(results))
    wall, cpu = sum(r.seconds for r in results) / runs_n, sum(r.cpu_seconds for r in results) / runs_n
    console.print(f"wrote {out / 'summary.json'}, summary.md, charts and {len(results)} panels")
    console.print(f"per run: {wall:.1f} s wall, {cpu:.1f} s CPU (mean of {len(results)})")


def _write_text(path: Path, text: str) -> None:
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.write_text(text)
    temporary.replace(path)


def register(app: typer.Typer) -> None:
    """Adds the `study` command."""
    app.command("study")(study)
