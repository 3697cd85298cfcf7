"""`settle --processes N`'s supervisor: ports, summaries, and how it stops its children (fake ledgers)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import socket
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Final

import pytest

from consumers.ledger import processes
from consumers.ledger.processes import (
    PORT_SETTING,
    LedgerProcesses,
    check_ports_free,
    metrics_ports,
    parse_summary,
    summary_json,
    total,
)
from consumers.ledger.summary import RunSummary
from infra.errors import SandboxError
from infra.local.procs import free_ports_base, port_is_free
from infra.local.prometheus import ledger_targets_file
from infra.settings import Settings

# A stand-in for `python -m consumers.ledger --summary-json`: fails at once when its port is
# FAKE_FAIL_PORT, else prints its summary once SIGTERM came (as the settler does after its batch).
FAKE_LEDGER = textwrap.dedent(
    """
    import json, os, signal, sys, time
    port = int(os.environ["KPSANDBOX_LEDGER_METRICS_PORT"])
    if str(port) == os.environ.get("FAKE_FAIL_PORT"):
        print("error: PostgreSQL refused the ledger", file=sys.stderr)
        print("what to do: make the database writable", file=sys.stderr)
        sys.exit(2)
    stopped = []
    signal.signal(signal.SIGTERM, lambda *_: stopped.append(True))
    print("ready", os.environ["KPSANDBOX_LEDGER_GROUP"], file=sys.stderr, flush=True)
    deadline = time.monotonic() + 20
    while not stopped and time.monotonic() < deadline:
        time.sleep(0.02)
    summary = {"batches": 2, "requests": 10, "transfers": 9, "dead_lettered": 1, "fenced": 0, "expired": 0,
               "partitions": [port % 3]}
    print(json.dumps(summary))
    """
)
WAIT_S: Final = 20.0
PORT_TRIES_MAX: Final = 20


@pytest.fixture(autouse=True)
def _own_state_folder(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Settings() of these tests keep their state (Prometheus's targets file) out of the working tree's."""
    monkeypatch.setenv("KPSANDBOX_STATE_DIR", str(tmp_path))


class FakeBacklog:
    """The group's backlog as a scripted sequence of answers (None: Kafka or PostgreSQL did not answer)."""

    def __init__(self, answers: list[int | None]) -> None:
        self.answers = answers
        self.asked = 0
        self.closed = False

    async def count(self) -> int | None:
        self.asked += 1
        return self.answers.pop(0) if self.answers else 0

    async def close(self) -> None:
        self.closed = True


def _supervisor(
    settings: Settings, lines: list[str], *, until_idle: bool, backlog: FakeBacklog | None = None
) -> LedgerProcesses:
    argv = [sys.executable, "-c", FAKE_LEDGER]
    return LedgerProcesses(
        settings, group="g-test", until_idle=until_idle, say=lines.append, argv=argv, backlog=backlog or FakeBacklog([])
    )


def test_ports_go_upward_skipping_the_other_settings_ports() -> None:
    """Process i gets the i-th port from the ledger's upward that no other setting names (9466 is the dispatcher's)."""
    assert metrics_ports(Settings(), 3) == [9465, 9467, 9468]
    assert metrics_ports(Settings(ledger_metrics_port=20_000), 2) == [20_000, 20_001]
    with pytest.raises(SandboxError, match="past 65535"):
        metrics_ports(Settings(ledger_metrics_port=65_534), 3)
    with pytest.raises(SandboxError, match="outside 1–8"):
        metrics_ports(Settings(), 9)


@contextlib.contextmanager
def _held_with_a_free_port_below() -> Iterator[socket.socket]:
    """A listening socket whose port's lower neighbour is free (another process may hold a random one)."""
    for _ in range(PORT_TRIES_MAX):
        holder = socket.socket()
        holder.bind(("127.0.0.1", 0))
        if port_is_free(holder.getsockname()[1] - 1):
            break
        holder.close()
    else:
        raise AssertionError(f"no port with a free one below it in {PORT_TRIES_MAX} tries")
    try:
        holder.listen()
        yield holder
    finally:
        holder.close()


def test_a_busy_port_names_the_process_and_the_setting() -> None:
    """A port someone else listens on is refused before anything starts, naming the setting that moves it."""
    with _held_with_a_free_port_below() as holder:
        busy = holder.getsockname()[1]
        with pytest.raises(SandboxError) as raised:
            check_ports_free([busy - 1, busy])
    assert f"port {busy}" in raised.value.message and "ledger process 2 of 2" in raised.value.message
    assert PORT_SETTING in raised.value.hint


def test_summaries_round_trip_and_add_up() -> None:
    """A child's JSON summary reads back as printed; the run's total adds counts and joins partitions."""
    one, two = RunSummary(), RunSummary()
    one.requests, one.transfers, one.partitions = 5, 4, [0, 2]
    two.requests, two.batches, two.expired, two.partitions = 7, 3, 1, [1, 2]
    assert vars(parse_summary(summary_json(one))) == vars(one)  # type: ignore[arg-type]
    assert parse_summary("settled 5 requests") is None and parse_summary("[1, 2]") is None
    whole = total([one, two])
    assert (whole.requests, whole.transfers, whole.batches, whole.expired) == (12, 4, 3, 1)
    assert whole.partitions == [0, 1, 2]


async def test_until_idle_stops_them_once_the_group_backlog_stays_empty(monkeypatch: pytest.MonkeyPatch) -> None:
    """--until-idle: the processes run until the group's backlog is 0 twice in a row (a 0 between two
    non-zero answers, a rebalance's moment, is not idle), then stop; the run returns the sum of theirs."""
    monkeypatch.setattr(processes, "IDLE_POLL_S", 0.05)
    lines: list[str] = []
    backlog = FakeBacklog([120, 0, None, 0, 40, 0, 0])
    settings = Settings(ledger_metrics_port=free_ports_base(3))
    summary = await asyncio.wait_for(_supervisor(settings, lines, until_idle=True, backlog=backlog).run(3), WAIT_S)
    assert backlog.asked == 7 and backlog.closed
    assert (summary.requests, summary.batches, summary.dead_lettered) == (30, 6, 3)
    assert [line.split(" (")[0] for line in lines if line.startswith("ledger ")] == ["ledger 1", "ledger 2", "ledger 3"]


async def test_one_failing_stops_the_others_and_its_error_is_quoted(monkeypatch: pytest.MonkeyPatch) -> None:
    """Process 2 exits with status 2: the others are stopped (they still report) and the error quotes it."""
    base = free_ports_base(3)
    monkeypatch.setenv("FAKE_FAIL_PORT", str(base + 1))
    lines: list[str] = []
    supervisor = _supervisor(Settings(ledger_metrics_port=base), lines, until_idle=False)
    with pytest.raises(SandboxError) as raised:
        await asyncio.wait_for(supervisor.run(3), WAIT_S)
    message = raised.value.message
    assert "ledger process 2 of 3" in message and "exited with status 2" in message
    assert "PostgreSQL refused the ledger" in message and "make the database writable" in message
    assert all(child.process.returncode is not None for child in supervisor.children)


async def test_a_signal_stops_every_process_after_its_batch() -> None:
    """SIGTERM to the supervisor: each child gets SIGTERM, finishes, reports; the run returns their sum."""
    lines: list[str] = []
    supervisor = _supervisor(Settings(ledger_metrics_port=free_ports_base(2)), lines, until_idle=False)
    running = asyncio.create_task(supervisor.run(2))
    for _ in range(int(WAIT_S / 0.05)):  # both children started (the handler is installed by then)
        if len(supervisor.children) == 2:
            break
        await asyncio.sleep(0.05)
    await asyncio.sleep(0.5)  # let them install their own SIGTERM handler
    supervisor._on_signal(signal.SIGTERM)
    summary = await asyncio.wait_for(running, WAIT_S)
    assert summary.requests == 20
    assert [child.process.returncode for child in supervisor.children] == [0, 0]
    assert any(line.startswith("SIGTERM: stopping") for line in lines)


async def test_prometheus_is_told_of_every_process_while_they_run(tmp_path: Path) -> None:
    """With a local Prometheus, the ports of processes 2..N are listed in its ledger targets file
    while they run (the first is on the config's own port), and none once they stopped."""
    settings = Settings(state_dir=tmp_path, ledger_metrics_port=free_ports_base(3))
    (tmp_path / "prometheus").mkdir()
    targets = ledger_targets_file(settings)
    supervisor = _supervisor(settings, [], until_idle=False)
    running = asyncio.create_task(supervisor.run(3))
    listed: list[dict] = []
    for _ in range(int(WAIT_S / 0.05)):  # listed once all started; stopped only once each can take SIGTERM
        listed = json.loads(targets.read_text()) if targets.exists() else []
        ready = len(supervisor.children) == 3 and all(any("ready" in t for t in c.tail) for c in supervisor.children)
        if listed and ready:
            break
        await asyncio.sleep(0.05)
    ports = [child.port for child in supervisor.children]
    assert listed == [{"targets": [f"127.0.0.1:{port}" for port in ports[1:]], "labels": {}}]
    supervisor._on_signal(signal.SIGTERM)
    await asyncio.wait_for(running, WAIT_S)
    assert json.loads(targets.read_text()) == []


async def test_a_targets_file_that_cannot_be_written_costs_only_the_scrape(tmp_path: Path) -> None:
    """An unwritable targets file (here a folder in its place) is said once per attempt; the run goes on."""
    settings = Settings(state_dir=tmp_path, ledger_metrics_port=free_ports_base(2))
    ledger_targets_file(settings).mkdir(parents=True)
    lines: list[str] = []
    supervisor = _supervisor(settings, lines, until_idle=True, backlog=FakeBacklog([0, 0]))
    summary = await asyncio.wait_for(supervisor.run(2), WAIT_S)
    assert summary.requests == 20
    assert sum("will not scrape ledger processes" in line for line in lines) == 2
