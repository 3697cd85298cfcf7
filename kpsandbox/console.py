"""The shared rich console and the tiny helpers every command uses to talk to a person."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable, Iterator

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeElapsedColumn

from infra.settings import Settings, load_settings

# Piped output (CI logs, `| less`) gets a fixed, wide layout instead of rich's 80 columns.
_WIDTH = None if sys.stdout.isatty() else 140
console = Console(highlight=False, width=_WIDTH)
err_console = Console(stderr=True, highlight=False, width=None if sys.stderr.isatty() else 140)


def settings() -> Settings:
    """Settings from the environment (a bad value is turned into a clear error by cli.main)."""
    return load_settings()


def human_bytes(count: int) -> str:
    """1536 -> '1.5 KiB'."""
    size = float(count)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} GiB"


@contextlib.contextmanager
def records_bar(label: str) -> Iterator[Callable[[int, int], None]]:
    """A progress bar of (records done, records to do) that appears with the first report, so an
    error found before any record moves (a wrong prefix, Kafka away) is not printed under an empty bar."""
    columns = (TextColumn(label), BarColumn(), MofNCompleteColumn(), TextColumn("records"), TimeElapsedColumn())
    progress = Progress(*columns, console=console)
    task: TaskID | None = None

    def report(done: int, total: int) -> None:
        nonlocal task
        if task is None:
            progress.start()
            task = progress.add_task("records", total=total)
        progress.update(task, completed=done, total=total)

    try:
        yield report
    finally:
        if task is not None:
            progress.stop()
