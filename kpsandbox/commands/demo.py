"""`kpsandbox demo`: the main job — simulate, settle, measure, report — on the local services."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from infra.errors import SandboxError
from infra.local import apps, procs, stack
from infra.local.prometheus import console_url
from infra.settings import Settings
from kpsandbox.commands.services import console_line
from kpsandbox.console import console, settings
from kpsandbox.demo.report import district_shifts, window_share, write_report
from kpsandbox.demo.run import DemoRun, prepare_run, run_pipeline
from kpsandbox.demo.traffic import api_traffic, describe
from producers.sim.engine import Simulation, SimulationConfig, check_parameters
from producers.sim.scenario import load_scenario


def demo(
    citizens: int = typer.Option(1_500, help="Adult citizens to simulate."),
    merchants: int = typer.Option(150, help="Merchants to simulate."),
    days: int = typer.Option(180, help="Simulated days, starting 2026-01-01 UTC."),
    seed: int = typer.Option(42, help="Random seed: same seed and sizes, same events."),
    scenario: str = typer.Option("digital-kp", help="Policy scenario: baseline, digital-kp, or a .toml path."),
    reports: Path = typer.Option(Path("reports"), help="Folder under which the run's report folder is made."),
    keep_up: bool = typer.Option(
        False,
        "--keep-up",
        help="Leave the services running afterwards, and this run's apps (ledger, metrics, API, views, "
        "webhooks) in the background after a few real API flows, so every URL printed keeps answering and "
        "the operator console has data on every page (`kpsandbox down` stops them all).",
    ),
) -> None:
    """Run the main job: services up, simulate KP into Kafka, settle the ledger, report with charts.

    Each run gets its own topic prefix and database, so reruns never mix. The report folder holds
    summary.md, the fit report and PNG charts over simulated days.
    """
    check_parameters(days, citizens, merchants)
    config = SimulationConfig(seed=seed, days=days, citizens=citizens, merchants=merchants,
                              scenario=load_scenario(scenario))  # fmt: skip
    base = settings()
    # This run's consumers need the ports of any background ledger and metrics (`up --apps`, an
    # earlier `demo --keep-up`): those are ours, so they are stopped rather than reported busy.
    replaced = apps.stop_apps(base)
    if replaced:
        console.print(f"stopped the background {', '.join(replaced)}: this demo runs its own")
    # The exporter's port first: a busy port must fail before anything is started or produced.
    procs.check_ports_free([procs.PortClaim(base.metrics_port, "the metrics exporter", "KPSANDBOX_METRICS_PORT")])
    with console.status("bringing services up…"):
        started = stack.up(base).started
    run_id = datetime.now(UTC).strftime("%Y%m%d%H%M%S")
    run_settings = asyncio.run(prepare_run(base, run_id))
    folder = reports / f"demo-{run_id}"
    folder.mkdir(parents=True, exist_ok=True)
    try:
        run = _run_with_progress(run_settings, Simulation(config), folder)
        written = write_report(run, folder)
        traffic = resume_in_background(run_settings) if keep_up else None
        _print_summary(run)
        console.print(f"report: {folder / 'summary.md'} ({len(written)} files, charts as PNG)")
        if traffic is not None:
            console.print(traffic)
            console.print(f"{console_line(base.prometheus)}   Prometheus: {base.prometheus}")
            console.print(
                f"still running for this run: ledger {apps.LEDGER.url(base)}, metrics {apps.METRICS.url(base)}, "
                "the API, its views and webhooks — `kpsandbox status` lists them, `kpsandbox down` stops them"
            )
        console.print(f"inspect this run: KPSANDBOX_TOPIC_PREFIX={run_settings.topic_prefix} "
                      f"KPSANDBOX_DATABASE_URL={run_settings.dsn} kpsandbox ledger check")  # fmt: skip
        if not all(f.holds for f in run.findings):
            raise typer.Exit(1)
    finally:
        if not keep_up:
            _say_stopped(base, started)


def resume_in_background(run_settings: Settings) -> str:
    """The run's consumers have stopped: the apps resume in the background on the run's topics and
    database, and a few real API flows give the console's API and webhook graphs data
    (kpsandbox/demo/traffic.py). The line to print about that traffic."""
    with console.status("starting the ledger, metrics, API, views and webhooks in the background…") as status:
        apps.start_apps(run_settings)
        try:
            traffic = asyncio.run(api_traffic(run_settings, say=lambda what: status.update(f"{what}…")))
        except SandboxError as error:  # the run itself is done and reported; say what the console lacks
            return f"[yellow]API traffic for the console failed: {error}[/]"
    return describe(traffic)


def _say_stopped(base: Settings, started: list[str]) -> None:
    """Without --keep-up the run's consumers have exited: say so, and stop the services this demo
    started, rather than print URLs that no longer answer."""
    if started:
        stack.down(base)
        console.print(f"stopped: this run's ledger and metrics consumers, and the services this demo started "
                      f"({', '.join(started)}) — `kpsandbox demo --keep-up` leaves them running with a live "
                      "operator console")  # fmt: skip
        return
    console.print("this run's ledger and metrics consumers have stopped (`--keep-up` keeps them running); "
                  f"the services were already running: its figures stay at {console_url(base.prometheus)}")  # fmt: skip


def _run_with_progress(run_settings: Settings, sim: Simulation, folder: Path) -> DemoRun:
    columns = (TextColumn("{task.description:>10}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=console) as progress:
        tasks = {
            "simulate": progress.add_task("simulate", total=sim.config.days),
            "ledger": progress.add_task("ledger", total=None),
            "metrics": progress.add_task("metrics", total=None),
        }

        def report(stage: str, done: int, total: int) -> None:
            progress.update(tasks[stage], completed=done, total=total)

        return asyncio.run(run_pipeline(run_settings, sim, folder, report))


def _print_summary(run: DemoRun) -> None:
    tally, days = run.outcomes, run.sim.days
    head = Table(title="demo summary", title_justify="left")
    head.add_column("figure")
    head.add_column("value", justify="right")
    head.add_row("events produced", f"{run.produced:,}")
    head.add_row("settled", f"{tally.settled:,}")
    head.add_row("rejected", f"{tally.rejected:,}")
    head.add_row("  by result", ", ".join(f"{k} {v:,}" for k, v in tally.rejected_by_result.most_common()) or "-")
    head.add_row("authorisations expired", f"{tally.expired:,}")
    dead = next((f.detail for f in run.findings if "exactly one outcome" in f.name), "-")
    head.add_row("consumed / outcomes / dead-lettered", dead)
    for label, by_value in (("digital share by count", False), ("digital share by value", True)):
        start = window_share(days, last=False, by_value=by_value)
        end = window_share(days, last=True, by_value=by_value)
        head.add_row(f"{label} (first → last 30 days)", f"{start:.1%} → {end:.1%}")
    for gender in ("female", "male", "all"):
        head.add_row(
            f"inclusion, {gender} (first → last day)",
            f"{days[0].inclusion_by_gender.get(gender, 0):.1%} → {days[-1].inclusion_by_gender.get(gender, 0):.1%}",
        )
    holds = all(f.holds for f in run.findings)
    head.add_row("ledger check", "[green]all invariants hold[/]" if holds else "[red]VIOLATED[/]")
    head.add_row("ledger digest (live run)", run.digest[:16] + "…")
    console.print(head)
    districts = Table(title="digital share by count, per district", title_justify="left")
    for column in ("district", "first 30 days", "last 30 days"):
        districts.add_column(column, justify="right")
    for shift in district_shifts(days):
        districts.add_row(shift.district, f"{shift.start:.1%}", f"{shift.end:.1%}")
    console.print(districts)


def register(app: typer.Typer) -> None:
    """Adds `demo`."""
    app.command()(demo)
