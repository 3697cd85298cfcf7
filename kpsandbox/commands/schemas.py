"""`kpsandbox schemas export DIR`: JSON Schemas of every event type and the AsyncAPI document."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from infra.errors import SandboxError
from infra.settings import Settings
from kpsandbox.console import console
from schemas.export import json_schemas

schemas_app = typer.Typer(help="The event contract as JSON Schema and AsyncAPI.", no_args_is_help=True)


def write_schemas(directory: Path) -> list[Path]:
    """Writes <event_type>.json for each event, deadletter.json and asyncapi.json; returns the paths."""
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise SandboxError(f"cannot create {directory}: {error.strerror}", "choose a writable folder") from error
    documents = dict(json_schemas())
    from infra.asyncapi import asyncapi_document  # faststream: not at CLI start

    # The AsyncAPI document names topics without a deployment prefix: it describes the contract.
    documents["asyncapi"] = asyncapi_document(Settings(topic_prefix="", kafka_bootstrap_servers="kafka:9092"))
    written: list[Path] = []
    for stem, document in documents.items():
        path = directory / f"{stem}.json"
        path.write_text(json.dumps(document, indent=2, sort_keys=True) + "\n")
        written.append(path)
    return written


@schemas_app.command("export")
def export(directory: Path = typer.Argument(..., help="Folder to write into, e.g. docs/schemas")) -> None:
    """Write one JSON Schema per event type plus the AsyncAPI document (from the FastStream app)."""
    written = write_schemas(directory)
    console.print(f"wrote {len(written)} files to {directory}")


def register(app: typer.Typer) -> None:
    """Adds the `schemas` group."""
    app.add_typer(schemas_app, name="schemas")
