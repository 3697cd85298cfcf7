"""`kpsandbox settle` and `kpsandbox ledger check|digest`: run the ledger and audit it."""

from __future__ import annotations

import asyncio

import asyncpg
import typer
from rich.table import Table

from consumers.ledger.check import Finding, check_ledger
from consumers.ledger.consumer import GROUP_DEFAULT, Settler, settle_until_signalled
from consumers.ledger.digest import Digest, ledger_digest
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
) -> None:
    """Run the ledger consumer: settle payment requests into PostgreSQL, publish outcomes.

    While it runs, its own Prometheus metrics are at KPSANDBOX_METRICS_HOST:KPSANDBOX_LEDGER_METRICS_PORT/metrics.

    With --until-idle it returns once every partition assigned to it is settled up to its end offset.
    """
    settler = Settler(settings(), group=group, serve_metrics=True)
    summary = asyncio.run(settle_until_signalled(settler, until_idle=until_idle))
    console.print(summary.line())


def register(app: typer.Typer) -> None:
    """Adds `settle` and the `ledger` group."""
    app.command("settle")(settle)
    app.add_typer(ledger_app, name="ledger")
