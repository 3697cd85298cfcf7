"""`kpsandbox simulate`: bad input gives one-line errors; Ctrl-C leaves a valid file."""

from __future__ import annotations

import asyncio
import time

import pytest
import typer
from typer.testing import CliRunner

from infra.errors import SandboxError
from infra.settings import Settings
from kpsandbox.commands.simulate import register
from producers.sim.engine import Simulation, SimulationConfig
from producers.sinks import KafkaSink, write_file
from schemas.events import parse_event

app = typer.Typer()
register(app)


@app.callback()
def _root() -> None:
    """Test root, so `simulate` stays a subcommand."""


def _error(args: list[str]) -> SandboxError:
    result = CliRunner().invoke(app, ["simulate", *args])
    assert isinstance(result.exception, SandboxError), result.output
    return result.exception


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--citizens", "0", "--out", "x.jsonl"], "--citizens"),
        (["--days", "-1", "--out", "x.jsonl"], "--days"),
        (["--merchants", "0", "--out", "x.jsonl"], "--merchants"),
        (["--scenario", "nowhere", "--out", "x.jsonl"], "unknown scenario"),
        (["--rate", "0", "--out", "x.jsonl"], "--rate"),
        ([], "destination"),
        (["--to-kafka", "--out", "x.jsonl"], "destination"),
    ],
)
def test_bad_input_is_a_sandbox_error(args: list[str], message: str) -> None:
    """Each impossible request is refused with a message naming the problem and a hint."""
    error = _error(args)
    assert message in error.message and error.hint


def test_unwritable_output_is_a_sandbox_error(tmp_path) -> None:
    """A path in a missing folder is refused before simulating."""
    error = _error(["--out", str(tmp_path / "missing" / "x.jsonl")])
    assert "cannot write" in error.message


def test_file_run_writes_valid_jsonl_and_a_fit_report(tmp_path) -> None:
    """A small run writes parseable lines and the JSON + text fit report."""
    out = tmp_path / "e.jsonl"
    result = CliRunner().invoke(
        app,
        [
            "simulate",
            "--days",
            "3",
            "--citizens",
            "500",
            "--merchants",
            "50",
            "--out",
            str(out),
            "--fit-report",
            str(tmp_path / "fit"),
        ],
    )
    assert result.exit_code == 0, result.output
    lines = out.read_text().splitlines()
    assert len(lines) > 1_000
    parse_event(lines[-1])
    assert (tmp_path / "fit.json").exists() and "NRMSE" in (tmp_path / "fit.txt").read_text()
    assert "events by type" in result.output and "female" in result.output


def test_interrupted_file_run_is_valid_up_to_the_last_line(tmp_path) -> None:
    """Ctrl-C mid-run leaves only whole, valid lines in the file."""
    sim = Simulation(SimulationConfig(seed=1, days=30, citizens=3_000, merchants=300))
    calls = 0

    def interrupt(events: int, days: int) -> None:
        nonlocal calls
        calls += 1
        if calls == 3:
            raise KeyboardInterrupt

    path = tmp_path / "cut.jsonl"
    with pytest.raises(KeyboardInterrupt), path.open("wb") as handle:
        write_file(sim, handle, None, interrupt)
    text = path.read_text()
    assert text.endswith("\n")
    lines = text.splitlines()
    assert 10_000 <= len(lines) < sim.stats.total_events + 1
    for line in lines[-50:]:
        parse_event(line)


def test_unreachable_kafka_fails_fast_naming_the_setting() -> None:
    """With nothing listening, starting the Kafka sink raises SandboxError within about 10 s."""
    settings = Settings(kafka_bootstrap_servers="127.0.0.1:1", topic_prefix="nowhere.")
    started = time.monotonic()
    with pytest.raises(SandboxError) as info:
        asyncio.run(KafkaSink(settings).start())
    assert time.monotonic() - started < 15
    assert "127.0.0.1:1" in info.value.message
    assert "KPSANDBOX_KAFKA_BOOTSTRAP_SERVERS" in info.value.hint
