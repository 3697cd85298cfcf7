"""`kpsandbox --help` and every group's `--help` read as prose: one line per sentence where it fits."""

from __future__ import annotations

import inspect

import pytest
import typer
from typer.testing import CliRunner

from kpsandbox.cli import app

WIDE = 1_000  # columns: wide enough that nothing wraps, so every line break left is the docstring's


def _groups() -> list[list[str]]:
    """The command line of every group's help: [] for the top level, [name] for each sub-group."""
    root = typer.main.get_command(app)
    return [[], *([name] for name, command in root.commands.items() if hasattr(command, "commands"))]  # type: ignore[attr-defined]


@pytest.mark.parametrize("path", _groups(), ids=lambda path: " ".join(path) or "kpsandbox")
def test_each_command_summary_is_one_line_in_a_wide_terminal(path: list[str]) -> None:
    """Typer's rich markup mode kept the docstrings' own line breaks in the command lists, so a
    summary such as `status`'s broke after "and the" whatever the terminal's width. The first
    paragraph of every command's help must appear on one line."""
    result = CliRunner().invoke(app, [*path, "--help"], terminal_width=WIDE, env={"COLUMNS": str(WIDE)})
    assert result.exit_code == 0, result.output
    root = typer.main.get_command(app)
    group = root.commands[path[0]] if path else root  # type: ignore[attr-defined]
    shown = [" ".join(line.strip(" │").split()) for line in result.output.splitlines()]
    for name, command in group.commands.items():  # type: ignore[attr-defined]
        summary = " ".join(inspect.cleandoc(command.short_help or command.help or "").split("\n\n")[0].split())
        assert any(line.endswith(summary) and line.startswith(name) for line in shown), (name, summary)
