"""`kpsandbox archive`: every topic of a run to Parquet, incrementally (docs/archive.md)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import typer
from pydantic import ValidationError

from infra.errors import SandboxError
from infra.settings import with_overrides
from kpsandbox.console import console, records_bar, settings


def archive(
    out: Path = typer.Option(..., "--out", help="Archive folder (created; an existing archive is updated)."),
    prefix: str | None = typer.Option(
        None, "--prefix", help="Topic prefix of the run (default: KPSANDBOX_TOPIC_PREFIX)."
    ),
) -> None:
    """Archive every topic of a run to Parquet (zstd) with a manifest; re-running appends only what is new."""
    config = settings()
    if prefix is not None:
        try:
            config = with_overrides(config, topic_prefix=prefix)
        except ValidationError as error:
            raise SandboxError(
                f"--prefix {prefix!r} is not a topic prefix", "use a-z, 0-9, '.', '_', '-' only"
            ) from error
    from consumers.archive.archiver import Archiver  # pyarrow, librdkafka: not at CLI start

    archiver = Archiver(config, out)
    with records_bar("archiving") as report:
        summary = asyncio.run(archiver.run(report))
    for where in summary.truncated:
        console.print(f"[yellow]warning:[/] {where}: earlier records were already deleted by retention")
    console.print(
        f"archived {summary.rows_new:,} new records in {summary.files_new} file(s) into {out}"
        f" ({summary.rows_total:,} in total; see {out / 'manifest.json'})"
    )


def register(app: typer.Typer) -> None:
    """Adds the `archive` command."""
    app.command("archive")(archive)
