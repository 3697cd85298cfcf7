"""`kpsandbox up | status | down`: the local Kafka, PostgreSQL and Prometheus."""

from __future__ import annotations

import time

import typer
from rich.table import Table

from infra.local import stack
from infra.local.base import ServiceStatus
from infra.local.kafka import check_java, fetch_jars
from kpsandbox.console import console, human_bytes, settings


def status_table(statuses: list[ServiceStatus]) -> Table:
    """A table with one row per service."""
    table = Table(title="kpsandbox services", title_justify="left")
    for column in ("service", "mode", "endpoint", "version", "health", "pid", "rss"):
        table.add_column(column)
    for s in statuses:
        health = "[green]healthy[/]" if s.healthy else "[red]down[/]"
        rss = human_bytes(s.rss_bytes) if s.rss_bytes else "-"
        table.add_row(s.name, s.mode, s.endpoint, s.version, health, str(s.pid or "-"), rss)
    return table


def up() -> None:
    """Start real Apache Kafka (KRaft), PostgreSQL and Prometheus locally, create topics, migrate.

    Idempotent: services already running are reported, not started twice. Services pointed
    elsewhere by KPSANDBOX_KAFKA_BOOTSTRAP_SERVERS / KPSANDBOX_DATABASE_URL /
    KPSANDBOX_PROMETHEUS_URL are not started; they are only checked.
    """
    config = settings()
    began = time.monotonic()
    with console.status("starting services…") as spinner:
        report = stack.up(config, say=lambda text: spinner.update(f"{text}…"))
    console.print(status_table(report.statuses))
    if report.started:
        console.print(f"started: {', '.join(report.started)}")
    if report.already_running:
        console.print(f"already running (left as they were): {', '.join(report.already_running)}")
    if report.external:
        console.print(f"external (not started here): {', '.join(report.external)}")
    console.print(
        f"topics created: {len(report.topics_created)}, migrations applied: "
        f"{len(report.migrations_applied)}, ready in {time.monotonic() - began:.1f} s"
    )
    console.print(f"state folder: {config.state_dir}")


def status() -> None:
    """Show each service's endpoint, version and health; exit 1 if any is down."""
    statuses = stack.status(settings())
    console.print(status_table(statuses))
    if not all(s.healthy for s in statuses):
        console.print("[red]some services are down[/] — run `kpsandbox up`")
        raise typer.Exit(1)


def down() -> None:
    """Stop exactly the services `kpsandbox up` started (by their PID files). Data is kept."""
    stopped = stack.down(settings())
    if stopped:
        console.print(f"stopped: {', '.join(stopped)}")
    else:
        console.print("nothing was running — no service started by `kpsandbox up` was found")


def fetch_kafka() -> None:
    """Download the pinned Apache Kafka and its runtime jars from Maven Central into the cache (once)."""
    config = settings()
    check_java()
    with console.status(f"fetching Kafka {config.kafka_version} from Maven Central…"):
        libs = fetch_jars(config)
    console.print(f"Kafka {config.kafka_version}: {len(list(libs.glob('*.jar')))} jars in {libs}")


def register(app: typer.Typer) -> None:
    """Adds up, status, down and fetch-kafka."""
    app.command("fetch-kafka")(fetch_kafka)
    app.command()(up)
    app.command()(status)
    app.command()(down)
