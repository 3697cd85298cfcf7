"""`kpsandbox settle` and `kpsandbox ledger check|digest`: run the ledger and audit it."""

from __future__ import annotations

import asyncio
from functools import partial

import asyncpg
import typer
from rich.table import Table

from consumers.ledger.check import Finding, check_ledger
from consumers.ledger.consumer import GROUP_DEFAULT, Settler
from consumers.ledger.digest import Digest, ledger_digest
from consumers.ledger.processes import PROCESSES_MAX, settle_processes, settle_until_signalled
from infra.db import CONNECT_TIMEOUT_S, database_unreachable, require_table
from infra.errors import SandboxError
from infra.settings import Settings
from kpsandbox.console import console, settings
from schemas.topics import PAYMENT_REQUESTS

ledger_app = typer.Typer(help="Audit the ledger: reconciliation report and reproducible digest.", no_args_is_help=True)


async def _connect(config: Settings) -> asyncpg.Connection:
    try:
        connection = await asyncpg.connect(config.dsn, timeout=CONNECT_TIMEOUT_S)
    except (OSError, TimeoutError, asyncpg.PostgresError) as error:
        raise database_unreachable(config.dsn) from error
    try:
        await require_table(connection, "ledger_transfers")
    except SandboxError:
        await connection.close()
        raise
    return connection


async def _check(config: Settings, group: str) -> list[Finding]:
    connection = await _connect(config)
    try:
        return await check_ledger(connection, requests_topic=config.topic(PAYMENT_REQUESTS), group=group)
    finally:
        await connection.close()


async def _digest(config: Settings) -> Digest:
    connection = await _connect(config)
    try:
        return await ledger_digest(connection)
    finally:
        await connection.close()


@ledger_app.command("check")
def check(
    group: str = typer.Option(
        GROUP_DEFAULT, help="The ledger's consumer group: only its offsets count in 'one outcome per request'."
    ),
) -> None:
    """Verify the ledger's invariants and print a report; exit status 1 on any violation."""
    findings = asyncio.run(_check(settings(), group))
    table = Table(title="ledger reconciliation", title_justify="left")
    for column in ("", "invariant", "measured"):
        table.add_column(column)
    for finding in findings:
        mark = "[green]✓[/green]" if finding.holds else "[red]✗[/red]"
        table.add_row(mark, finding.name, finding.detail)
    console.print(table)
    broken = [f for f in findings if not f.holds]
    if broken:
        console.print(f"[red]{len(broken)} invariant(s) violated[/red] — the ledger must not be trusted as is")
        raise typer.Exit(1)
    console.print("[green]all invariants hold[/green]")


@ledger_app.command("digest")
def digest() -> None:
    """Print a SHA-256 over every transfer in id order (same stream → same digest)."""
    result = asyncio.run(_digest(settings()))
    console.print(f"{result.sha256}  ({result.transfers} transfers)")


def settle(
    until_idle: bool = typer.Option(False, "--until-idle", help="Stop once every partition is drained."),
    group: str = typer.Option(GROUP_DEFAULT, help="Kafka consumer group (one ledger per group)."),
    processes: int = typer.Option(
        1, "--processes", min=1, max=PROCESSES_MAX, help="Ledger processes of the group sharing the partitions (1–8)."
    ),
) -> None:
    """Run the ledger consumer: settle payment requests into PostgreSQL, publish outcomes.

    While it runs, its own Prometheus metrics are at KPSANDBOX_METRICS_HOST:KPSANDBOX_LEDGER_METRICS_PORT/metrics.
    With --processes N it runs N processes of the group (Kafka shares the partitions among them), each
    on its own /metrics port from that port upward; one failing stops the others.

    With --until-idle it returns once every partition assigned to it is settled up to its end offset.
    """
    config = settings()
    if processes == 1:  # in this process, as before --processes existed
        settler = Settler(config, group=group, serve_metrics=True)
        console.print(asyncio.run(settle_until_signalled(settler, until_idle=until_idle)).line())
        return
    say = partial(console.print, markup=False, soft_wrap=True)  # one line each; they may hold brackets
    summary = asyncio.run(settle_processes(config, count=processes, group=group, until_idle=until_idle, say=say))
    say(f"all {processes} processes: {summary.line()}")


def register(app: typer.Typer) -> None:
    """Adds `settle` and the `ledger` group."""
    app.command("settle")(settle)
    app.add_typer(ledger_app, name="ledger")
