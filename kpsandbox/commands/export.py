"""`kpsandbox export`: run the simulation in-process and write a dataset with ground-truth labels."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from kpsandbox.console import console
from producers.datasets.formats import FORMATS, MANIFEST
from producers.sim.engine import Simulation, SimulationConfig, check_parameters
from producers.sim.scenario import load_scenario

if TYPE_CHECKING:
    from producers.datasets.export import ExportResult


def export(
    fmt: str = typer.Option(..., "--format", help=f"Dataset format: {', '.join(FORMATS)}."),
    out: Path = typer.Option(..., "--out", help="Folder to write the files into (created if missing)."),
    seed: int = typer.Option(42, "--seed", help="Random seed: same seed, scenario and sizes, same files."),
    days: int = typer.Option(30, "--days", help="Simulated days, starting 2026-01-01 UTC."),
    citizens: int = typer.Option(10_000, "--citizens", help="Adult citizens to simulate."),
    merchants: int = typer.Option(1_000, "--merchants", help="Merchants to simulate."),
    scenario: str = typer.Option("baseline", "--scenario", help="Scenario name (baseline, digital-kp) or .toml path."),
) -> None:
    """Simulate (no services needed) and write a PaySim, AMLSim or Parquet dataset with labels."""
    from producers.datasets.export import check_format, export_dataset, prepare_out_dir  # pyarrow: not at CLI start

    check_format(fmt)
    check_parameters(days, citizens, merchants)
    config = SimulationConfig(
        seed=seed, days=days, citizens=citizens, merchants=merchants, scenario=load_scenario(scenario)
    )
    prepare_out_dir(out)
    sim = Simulation(config)
    columns = (TextColumn("exporting"), BarColumn(), MofNCompleteColumn(), TextColumn("days"), TimeElapsedColumn())
    with Progress(*columns, console=console, transient=False) as progress:
        task = progress.add_task("days", total=days)
        result = export_dataset(sim, fmt, out, lambda done: progress.update(task, completed=done))
    _summary(result)


def _summary(result: ExportResult) -> None:
    console.print(f"written to {result.out_dir} (manifest: {MANIFEST})")
    files = Table(title="files", title_justify="left")
    files.add_column("file")
    files.add_column("rows", justify="right")
    for name, rows in result.rows.items():
        files.add_row(name, f"{rows:,}")
    console.print(files)
    labels = Table(title="payment requests by ground-truth label", title_justify="left")
    labels.add_column("label")
    labels.add_column("requests", justify="right")
    for label, count in result.labels.items():
        labels.add_row(label, f"{count:,}")
    labels.add_row("total", f"{sum(result.labels.values()):,}")
    console.print(labels)


def register(app: typer.Typer) -> None:
    """Adds the `export` command."""
    app.command("export")(export)
