"""`kpsandbox simulate`: run the seeded KP economy into a JSON Lines file or onto Kafka."""

from __future__ import annotations

import asyncio
from pathlib import Path

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from infra.errors import SandboxError
from kpsandbox.console import console, settings
from producers.sim.engine import Simulation, SimulationConfig, check_parameters
from producers.sim.fit import fit_report
from producers.sim.scenario import load_scenario
from producers.sinks import KafkaSink, open_output, produce_kafka, write_file
from schemas.money import format_paisa


def simulate(
    seed: int = typer.Option(42, "--seed", help="Random seed: same seed, scenario and sizes, same events."),
    days: int = typer.Option(30, "--days", help="Simulated days, starting 2026-01-01 UTC."),
    citizens: int = typer.Option(10_000, "--citizens", help="Adult citizens to simulate."),
    merchants: int = typer.Option(1_000, "--merchants", help="Merchants to simulate."),
    scenario: str = typer.Option("baseline", "--scenario", help="Scenario name (baseline, digital-kp) or .toml path."),
    out: Path | None = typer.Option(None, "--out", help="Write events as JSON Lines to this file."),
    to_kafka: bool = typer.Option(False, "--to-kafka", help="Produce events to Kafka (KPSANDBOX_* settings)."),
    rate: float | None = typer.Option(None, "--rate", help="Events per second (default: as fast as possible)."),
    fit: Path | None = typer.Option(None, "--fit-report", help="Write the fit report to PATH.json and PATH.txt."),
    panel: Path | None = typer.Option(
        None, "--panel", help="Write the per-day panel (day × district × gender) to PATH.parquet; alone: no events."
    ),
) -> None:
    """Simulate KP's citizens and merchants and emit their payment events."""
    if (out is not None and to_kafka) or (out is None and not to_kafka and panel is None):
        raise SandboxError(
            "choose one destination for the events", "pass either --out FILE.jsonl or --to-kafka (or only --panel)"
        )
    if panel is not None and panel.suffix != ".parquet":
        raise SandboxError(f"--panel must name a .parquet file, got {panel}", "e.g. --panel panel.parquet")
    if rate is not None and rate <= 0:
        raise SandboxError(f"--rate must be positive, got {rate}", "omit --rate to run as fast as possible")
    check_parameters(days, citizens, merchants)
    config = SimulationConfig(
        seed=seed, days=days, citizens=citizens, merchants=merchants, scenario=load_scenario(scenario)
    )
    handle = open_output(out) if out is not None else None
    sim = Simulation(config, emit_events=handle is not None or to_kafka)
    columns = (
        TextColumn("simulating"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("days {task.fields[events]:,} events"),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=console, transient=False) as progress:
        task = progress.add_task("days", total=days, events=0)

        def report(events: int, days_done: int) -> None:
            progress.update(task, completed=days_done, events=events)

        interrupted = False
        try:
            if handle is not None:
                with handle:
                    write_file(sim, handle, rate, report)
            elif to_kafka:
                asyncio.run(_to_kafka(sim, rate, report))
            else:
                sim.run_aggregates(report)
        except KeyboardInterrupt:
            interrupted = True
    if panel is not None and not interrupted:
        from producers.sim.panel import panel_table, write_panel  # pyarrow: only with --panel, not at CLI start

        write_panel(panel_table(sim.stats.panel, config.scenario.name, seed), panel)
        console.print(f"panel: {panel} ({len(sim.stats.panel):,} rows)")
    if fit is not None:
        _write_fit(sim, fit)
    _summary(sim, interrupted)
    if interrupted:
        raise KeyboardInterrupt


async def _to_kafka(sim: Simulation, rate: float | None, report) -> None:
    sink = KafkaSink(settings())
    await sink.start()
    try:
        await produce_kafka(sim, sink, rate, report)
    finally:
        await sink.close()  # flushes, also on Ctrl-C (asyncio.run cancels us and we still close)


def _write_fit(sim: Simulation, path: Path) -> None:
    report = fit_report(sim.config.calibration, sim.stats, sim.config.scenario.name)
    try:
        path.with_suffix(".json").write_text(report.to_json())
        path.with_suffix(".txt").write_text(report.to_text() + "\n")
    except OSError as exc:
        raise SandboxError(f"cannot write the fit report to {path}: {exc.strerror}", "choose a writable path") from exc
    verdict = "within tolerance" if report.within else "[red]some series OUTSIDE tolerance[/]"
    console.print(f"fit report: {path.with_suffix('.txt')} ({verdict})")


def _summary(sim: Simulation, interrupted: bool) -> None:
    stats = sim.stats
    events = Table(title="events by type" + (" (interrupted)" if interrupted else ""), title_justify="left")
    events.add_column("event type")
    events.add_column("count", justify="right")
    for name, count in sorted(stats.events_by_type.items()):
        events.add_row(name, f"{count:,}")
    events.add_row("total", f"{stats.total_events:,}")
    console.print(events)
    paid = Table(title="retail payments: digital vs cash", title_justify="left")
    for column in ("", "count", "value", "share by count", "share by value"):
        paid.add_column(column, justify="right")
    count_all = stats.digital_count + stats.cash_count
    value_all = stats.digital_value_paisa + stats.cash_value_paisa
    for label, count, value in (
        ("digital", stats.digital_count, stats.digital_value_paisa),
        ("cash", stats.cash_count, stats.cash_value_paisa),
    ):
        paid.add_row(label, f"{count:,}", format_paisa(value), _pct(count, count_all), _pct(value, value_all))
    console.print(paid)
    if sim.days:
        first, last = sim.days[0], sim.days[-1]
        incl = Table(title="account ownership by gender", title_justify="left")
        for column in ("", first.date, last.date):
            incl.add_column(column, justify="right")
        for gender in ("female", "male", "all"):
            incl.add_row(gender, _pct(first.inclusion_by_gender[gender], 1), _pct(last.inclusion_by_gender[gender], 1))
        console.print(incl)


def _pct(part: float, whole: float) -> str:
    return f"{100 * part / whole:.1f}%" if whole else "-"


def register(app: typer.Typer) -> None:
    """Adds the `simulate` command."""
    app.command("simulate")(simulate)
