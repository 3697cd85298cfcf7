"""Long commands show a progress bar of records once records move, and none when they fail first."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from consumers.archive.archiver import Archiver
from infra.errors import SandboxError
from kpsandbox import console as console_module
from kpsandbox.cli import app


def test_an_archive_that_fails_before_any_record_shows_no_empty_bar(tmp_path: Path, monkeypatch) -> None:
    """A wrong --prefix printed "archiving ━━━ 0/? records" above its two-line error."""

    async def no_topics(self: Archiver, progress: object = None) -> None:
        raise SandboxError("no catalog topic with prefix 'nosuch.'", "pass the run's --prefix")

    monkeypatch.setattr(Archiver, "run", no_topics)
    result = CliRunner().invoke(app, ["archive", "--out", str(tmp_path / "a"), "--prefix", "nosuch."])
    assert isinstance(result.exception, SandboxError)
    assert "archiving" not in result.output and "records" not in result.output, result.output


def test_the_bar_appears_with_the_first_report(capsys: pytest.CaptureFixture[str]) -> None:
    """Once records move, the bar shows how many of how many."""
    with console_module.records_bar("archiving") as report:
        report(1_500, 3_000)
        report(3_000, 3_000)
    shown = capsys.readouterr().out
    assert "archiving" in shown and "3000/3000" in shown, shown
