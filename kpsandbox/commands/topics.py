"""`kpsandbox topics …`: the topic catalog, and creating it on any cluster."""

from __future__ import annotations

import asyncio

import typer
from rich.table import Table

from infra.kafka_admin import ensure_topics
from kpsandbox.console import console, settings
from schemas.topics import CATALOG

topics_app = typer.Typer(help="The topic catalog: list it, or create it on a cluster.", no_args_is_help=True)


@topics_app.command("list")
def list_topics() -> None:
    """Print the catalog: name, partitions, key, retention and event types of every topic."""
    config = settings()
    table = Table(title="topic catalog", title_justify="left")
    for column in ("topic", "partitions", "key", "retention", "event types"):
        table.add_column(column)
    for spec in CATALOG:
        retention = "forever" if spec.retention_ms < 0 else f"{spec.retention_ms // 86_400_000} d"
        types = ", ".join(spec.event_type_names) or "dead letters"
        table.add_row(config.topic(spec), str(spec.partitions), spec.key, retention, types)
    console.print(table)


@topics_app.command("create")
def create() -> None:
    """Create every catalog topic that is missing (idempotent; for external clusters too)."""
    config = settings()
    created = asyncio.run(ensure_topics(config))
    console.print(f"created {len(created)} topic(s) on {config.bootstrap_servers}: {', '.join(created) or '-'}")


def register(app: typer.Typer) -> None:
    """Adds the `topics` group."""
    app.add_typer(topics_app, name="topics")
