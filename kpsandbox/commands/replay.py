"""`kpsandbox replay`: an archive, or another prefix's topics, into a new prefix (docs/archive.md)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import TYPE_CHECKING

import typer
from pydantic import ValidationError

from infra.errors import SandboxError
from infra.settings import Settings, with_overrides
from kpsandbox.console import console, records_bar, settings
from producers.replay.filters import ReplayFilter, parse_time, parse_types

if TYPE_CHECKING:
    from producers.replay.sources import ArchiveSource, PrefixSource


def _prefixed(config: Settings, prefix: str, option: str) -> Settings:
    try:
        return with_overrides(config, topic_prefix=prefix)
    except ValidationError as error:
        raise SandboxError(f"{option} {prefix!r} is not a topic prefix", "use a-z, 0-9, '.', '_', '-' only") from error


def replay(
    from_archive: Path | None = typer.Option(None, "--from-archive", help="Archive folder to replay."),
    from_prefix: str | None = typer.Option(None, "--from-prefix", help="Topic prefix of a run still on Kafka."),
    into_prefix: str = typer.Option(..., "--into-prefix", help="New topic prefix to replay into (must hold no data)."),
    start: str | None = typer.Option(None, "--from", help="Only events with occurred_at at or after this UTC time."),
    end: str | None = typer.Option(None, "--to", help="Only events with occurred_at before this UTC time."),
    speed: float = typer.Option(0.0, "--speed", help="0: as fast as possible; 10: ten times the original pace."),
    only: str | None = typer.Option(None, "--only", help="Comma-separated event types, e.g. payment.requested."),
) -> None:
    """Replay a run into a new prefix: same partitions and order, original timestamp/offset in headers."""
    if (from_archive is None) == (from_prefix is None):
        raise SandboxError("choose exactly one source", "pass either --from-archive DIR or --from-prefix P")
    filt = ReplayFilter(
        start=parse_time(start, "--from") if start else None,
        end=parse_time(end, "--to") if end else None,
        only=parse_types(only) if only is not None else None,
    )
    from producers.replay.replayer import replay as run_replay  # pyarrow: not at CLI start
    from producers.replay.sources import ArchiveSource, PrefixSource

    config = settings()
    target = _prefixed(config, into_prefix, "--into-prefix")
    source: ArchiveSource | PrefixSource
    if from_archive is not None:
        source = ArchiveSource(from_archive)
    else:
        source = PrefixSource(_prefixed(config, from_prefix or "", "--from-prefix"))
    with records_bar("replaying") as report:
        summary = asyncio.run(run_replay(source, target, filt, speed, report))
    per_topic = ", ".join(f"{topic} {count:,}" for topic, count in summary.by_topic.items())
    console.print(
        f"replayed {summary.sent:,} records into prefix {into_prefix!r} in {summary.seconds:.1f} s ({per_topic or '-'})"
    )


def register(app: typer.Typer) -> None:
    """Adds the `replay` command."""
    app.command("replay")(replay)
