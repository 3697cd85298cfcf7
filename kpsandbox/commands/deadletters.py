"""`kpsandbox deadletters list|redrive`: look at what no consumer could process, and put it back."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path
from typing import Final

import typer
from rich.table import Table

from consumers.deadletters import (
    DEAD_LETTER_REASONS,
    DeadLetterRead,
    StoredLetter,
    count_by_reason,
    letter_filter,
    read_dead_letters,
    select,
)
from infra.errors import SandboxError
from kpsandbox.console import console, err_console, settings
from producers.redrive import REDRIVEN_FROM_HEADER, Redrive, Sent, load_fixed, plan_redrive, send_redrives

TABLE_ROWS_DEFAULT: Final = 50
DETAIL_CHARS_SHOWN: Final = 60
KEY_CHARS_SHOWN: Final = 24
PROBLEMS_SHOWN_MAX: Final = 5

REASON_HELP: Final = f"Only letters with this reason ({', '.join(DEAD_LETTER_REASONS)})."
SOURCE_HELP: Final = "Only letters read from this topic (with or without KPSANDBOX_TOPIC_PREFIX)."

deadletters_app = typer.Typer(
    help=(
        "Dead letters: messages a consumer set aside (kp.deadletter.v1) with the reason and the original "
        "key, headers and bytes. List them, fix them, and redrive them to the topic they came from."
    ),
    no_args_is_help=True,
)


def _shorten(text: str, limit: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _read() -> DeadLetterRead:
    """Reads the whole topic and reports on stderr (so JSON on stdout stays clean) what it skipped."""
    read = asyncio.run(read_dead_letters(settings()))
    if read.unparseable:
        shown = ", ".join(f"{u.partition}/{u.offset} ({u.problem})" for u in read.unparseable[:PROBLEMS_SHOWN_MAX])
        more = len(read.unparseable) - PROBLEMS_SHOWN_MAX
        err_console.print(
            f"[yellow]warning:[/] {len(read.unparseable)} record(s) on {read.topic} are not dead letters and are "
            f"skipped: {shown}" + (f" and {more} more" if more > 0 else "")
        )
    if not read.complete:
        err_console.print(
            f"[yellow]warning:[/] stopped reading {read.topic} before its end (record or time bound): "
            "what follows is partial"
        )
    return read


def _when(stored: StoredLetter) -> str:
    return stored.letter.dead_lettered_at.strftime("%Y-%m-%d %H:%M:%S")


def _print_letters(letters: list[StoredLetter], total: int) -> None:
    table = Table(title="dead letters", title_justify="left")
    for column in ("dlq p/offset", "reason", "source topic/partition/offset", "when (UTC)", "detail"):
        table.add_column(column)
    for stored in letters:
        letter = stored.letter
        table.add_row(
            f"{stored.partition}/{stored.offset}",
            letter.reason,
            stored.source,
            _when(stored),
            _shorten(letter.detail, DETAIL_CHARS_SHOWN),
        )
    console.print(table)
    if len(letters) < total:
        console.print(f"showing the newest {len(letters)} of {total}; --limit shows more, --json prints all")


def _print_counts(letters: list[StoredLetter]) -> None:
    table = Table(title="by reason", title_justify="left")
    table.add_column("reason")
    table.add_column("letters", justify="right")
    for reason, count in count_by_reason(letters).items():
        table.add_row(reason, f"{count:,}")
    table.add_row("[bold]total[/bold]", f"[bold]{len(letters):,}[/bold]")
    console.print(table)


LIST_HELP: Final = (
    "List dead letters (DLQ partition/offset, reason, source topic/partition/offset, when, detail) and count "
    "them by reason. Reads the dead-letter topic from its beginning to its end, committed records only; "
    "records that are not dead letters are reported on stderr and skipped."
)
REDRIVE_HELP: Final = (
    "Put dead letters back on the topic and partition they came from. Each message keeps its original key "
    f"and headers and gets the header {REDRIVEN_FROM_HEADER} = <dead-letter topic>/<partition>/<offset>; its "
    "value is the original bytes or, with --fixed, the corrected event. Everything is checked before the first "
    "message is sent; sending waits for acks=all. The letters stay on the dead-letter topic (it is a log), so "
    "redrive each one once."
)


@deadletters_app.command("list", help=LIST_HELP)
def list_letters(
    reason: str | None = typer.Option(None, "--reason", help=REASON_HELP),
    source_topic: str | None = typer.Option(None, "--source-topic", help=SOURCE_HELP),
    limit: int | None = typer.Option(
        None, "--limit", min=1, help=f"Show at most N letters, the newest (default {TABLE_ROWS_DEFAULT}; --json: all)."
    ),
    as_json: bool = typer.Option(
        False, "--json", help="Print one JSON object per letter (JSON Lines) with its dlq_partition and dlq_offset."
    ),
) -> None:
    """List dead letters and count them by reason (the full text is LIST_HELP)."""
    criteria = letter_filter(settings(), reason=reason, source_topic=source_topic)
    read = _read()
    chosen = select(read.letters, criteria)
    if not chosen:
        say = err_console if as_json else console
        say.print(f"no dead letters{' match' if reason or source_topic else ''} on {read.topic}")
        return
    if as_json:
        for stored in chosen[-limit:] if limit else chosen:
            document = {"dlq_partition": stored.partition, "dlq_offset": stored.offset}
            typer.echo(json.dumps(document | stored.letter.model_dump(mode="json")))
        return
    _print_letters(chosen[-(limit or TABLE_ROWS_DEFAULT) :], len(chosen))
    _print_counts(chosen)


def _print_plan(plan: list[Redrive]) -> None:
    table = Table(title=f"redrive plan: {len(plan)} message(s)", title_justify="left")
    for column in ("dlq p/offset", "reason", "to topic/partition", "key", "value", "headers"):
        table.add_column(column)
    for item in plan[-TABLE_ROWS_DEFAULT:]:
        key = "-" if item.key is None else _shorten(item.key.decode(errors="replace"), KEY_CHARS_SHOWN)
        table.add_row(
            f"{item.dlq_partition}/{item.dlq_offset}",
            item.reason,
            f"{item.topic}/{item.partition}",
            key,
            f"{'fixed' if item.fixed else 'original'}, {len(item.value):,} B",
            str(len(item.headers)),
        )
    console.print(table)
    if len(plan) > TABLE_ROWS_DEFAULT:
        console.print(f"(the last {TABLE_ROWS_DEFAULT} of {len(plan)} are shown; all are sent)")


def _confirmed(count: int) -> bool:
    if not sys.stdin.isatty():
        raise SandboxError(
            f"redrive of {count} message(s) needs a confirmation, and there is no terminal to ask",
            "pass --yes to send without asking, or --dry-run to only see the plan",
        )
    return typer.confirm(f"send {count} message(s)?", default=False)


def _print_sent(sent: list[Sent]) -> None:
    landed: dict[tuple[str, int], list[int]] = {}
    for item in sent:
        landed.setdefault((item.redrive.topic, item.redrive.partition), []).append(item.offset)
    for (topic, partition), offsets in sorted(landed.items()):
        console.print(f"  {topic}/{partition}: offsets {min(offsets)}–{max(offsets)} ({len(offsets)} message(s))")
    console.print(f"[green]sent {len(sent)} message(s), each acknowledged by all in-sync replicas[/green]")


@deadletters_app.command("redrive", help=REDRIVE_HELP)
def redrive(
    reason: str | None = typer.Option(None, "--reason", help=REASON_HELP),
    source_topic: str | None = typer.Option(None, "--source-topic", help=SOURCE_HELP),
    offsets: list[int] | None = typer.Option(
        None, "--offset", min=0, help="Only the letter at this dead-letter offset (repeat for several)."
    ),
    fixed: Path | None = typer.Option(
        None,
        "--fixed",
        help=(
            'Corrected values, JSON Lines: {"dlq_offset": N, "value": <the corrected event as JSON>}. Each value '
            "is checked against the event contract first; one still-invalid line refuses the whole file. "
            "Without --offset, only the letters the file names are redriven."
        ),
    ),
    dry_run: bool = typer.Option(False, "--dry-run", help="Show what would be sent, send nothing."),
    yes: bool = typer.Option(False, "--yes", help="Send without asking for confirmation."),
) -> None:
    """Redrive dead letters to their source topic, original or fixed (the full text is REDRIVE_HELP)."""
    config = settings()
    fixes = load_fixed(fixed) if fixed is not None else {}  # a bad file fails before Kafka is asked
    chosen_offsets = offsets or sorted(fixes)
    criteria = letter_filter(config, reason=reason, source_topic=source_topic, offsets=chosen_offsets)
    read = _read()
    plan = plan_redrive(config, select(read.letters, criteria), fixes)
    if not plan:
        console.print(f"nothing to redrive: no dead letter on {read.topic} matches")
        return
    _print_plan(plan)
    console.print(f"each message gets the header {REDRIVEN_FROM_HEADER} = {read.topic}/<partition>/<offset>")
    if dry_run:
        console.print("dry run: nothing sent")
        return
    if not yes and not _confirmed(len(plan)):
        console.print("nothing sent")
        return
    _print_sent(asyncio.run(send_redrives(config, plan)))


def register(app: typer.Typer) -> None:
    """Adds the `deadletters` group."""
    app.add_typer(deadletters_app, name="deadletters")
