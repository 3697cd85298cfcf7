"""`kpsandbox settle --processes N`: N ledger processes of one consumer group, supervised together;
and how one ledger process stops on a signal (`settle_until_signalled`).

Kafka shares the requests topic's partitions among the group's members, and each member keeps
its offsets in PostgreSQL (consumer.py), so N processes settle one stream exactly once. This
module only starts them, watches them and stops them; `LedgerProcesses` is the only owner of
the children and moves them through these states:

    running ──SIGINT / SIGTERM to us──▶ stopping: SIGTERM to each (it finishes its batch),
       │                                 STOP_WAIT_S, then SIGKILL; a second signal kills at once
       ├─ --until-idle: the group's backlog is 0 twice in a row ──▶ stopping (the same way)
       ├─ one exits non-zero ──▶ failed: the others are stopped the same way, its error is raised
       └─ every one exits 0 (someone else stopped them) ──▶ done

With --until-idle the children are not told so: one that is between a revoke and its next
assignment would think itself drained and leave, and the group rebalances whenever a member
joins or leaves. The supervisor watches the group's backlog (backlog.py) instead.

A child is `python -m consumers.ledger --summary-json` in its own session (a Ctrl-C in the
terminal reaches only us, so the stop is ours to order) and dies with us should we be killed
(PR_SET_PDEATHSIG: a SIGTERM, so it still finishes its batch). Child i serves /metrics on the
i-th port from KPSANDBOX_LEDGER_METRICS_PORT upward that no other sandbox setting names; the
ports of processes 2..N are listed for the local Prometheus while they run (its ledger job reads
them from a targets file in its state folder, infra/local/prometheus.py). Its
stderr is forwarded line by line as `[ledger i] …`, and its last lines are kept to quote if it fails.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import sys
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Final, Protocol

from consumers.ledger.backlog import GroupBacklog
from consumers.ledger.summary import RunSummary
from infra.errors import SandboxError
from infra.local.apps import describe_exit
from infra.local.procs import die_with_parent, port_is_free
from infra.local.prometheus import write_ledger_targets
from infra.settings import Settings, settings_env

PROCESSES_MAX: Final = 8
PORT_MAX: Final = 65_535
STOP_WAIT_S: Final = 30.0  # each child commits its batch in flight first (like `kpsandbox down`)
KILL_WAIT_S: Final = 5.0
OUTPUT_WAIT_S: Final = 5.0  # for a finished child's last output lines
TAIL_LINES: Final = 4  # of a failed child's stderr, quoted in the error
SUMMARY_FLAG: Final = "--summary-json"
PORT_SETTING: Final = "KPSANDBOX_LEDGER_METRICS_PORT"
IDLE_POLL_S: Final = 1.0  # how often --until-idle asks the group's backlog
IDLE_CHECKS: Final = 2  # backlog 0 this many times in a row: idle (accounts are caught up meanwhile)
UNKNOWN_WARN_AFTER: Final = 30  # polls in a row without an answer before saying so

Say = Callable[[str], None]


def metrics_ports(settings: Settings, count: int) -> list[int]:
    """Each process's /metrics port: KPSANDBOX_LEDGER_METRICS_PORT, then the next ports upward that
    no other port setting names (the default 9465 is followed by the webhook dispatcher's 9466)."""
    if not 1 <= count <= PROCESSES_MAX:
        raise SandboxError(f"--processes {count} is outside 1–{PROCESSES_MAX}", "pick a count from 1 to 8")
    others = {
        settings.metrics_port,
        settings.webhooks_metrics_port,
        settings.api_port,
        settings.kafka_port,
        settings.kafka_controller_port,
        settings.postgres_port,
        settings.prometheus_port,
    }
    ports = [settings.ledger_metrics_port]
    for candidate in range(settings.ledger_metrics_port + 1, PORT_MAX + 1):
        if len(ports) == count:
            break
        if candidate not in others:
            ports.append(candidate)
    if len(ports) < count:
        raise SandboxError(
            f"{count} ledger processes need {count} ports from {PORT_SETTING}={settings.ledger_metrics_port} "
            f"upward, past {PORT_MAX}",
            f"set {PORT_SETTING} to a lower port",
        )
    return ports


def check_ports_free(ports: Sequence[int]) -> None:
    """A SandboxError naming the first busy port, which process needs it, and the setting to change."""
    for number, port in enumerate(ports, 1):
        if not port_is_free(port):
            raise SandboxError(
                f"port {port}, the /metrics port of ledger process {number} of {len(ports)}, is already in use "
                f"(process i serves on the i-th port from {PORT_SETTING}={ports[0]} upward)",
                f"stop the process that holds it, or set {PORT_SETTING} to a port with {len(ports)} free ports "
                "from it upward",
            )


def total(summaries: Sequence[RunSummary]) -> RunSummary:
    """One summary for the whole run: counts added up, partitions joined."""
    whole = RunSummary()
    for part in summaries:
        whole.batches += part.batches
        whole.requests += part.requests
        whole.transfers += part.transfers
        whole.dead_lettered += part.dead_lettered
        whole.fenced += part.fenced
        whole.expired += part.expired
        whole.partitions = sorted({*whole.partitions, *part.partitions})
    return whole


def summary_json(summary: RunSummary) -> str:
    """What a child prints last on stdout with --summary-json (read back by `parse_summary`)."""
    return json.dumps(vars(summary), sort_keys=True)


def parse_summary(line: str) -> RunSummary | None:
    """A child's summary line, or None for any other line."""
    with contextlib.suppress(ValueError):
        fields = json.loads(line)
        if isinstance(fields, dict) and "requests" in fields:
            summary = RunSummary()
            for name in vars(summary):
                setattr(summary, name, fields[name])
            return summary
    return None


@dataclass
class Child:
    """One ledger process: its number (from 1), port, process, stderr tail and summary."""

    number: int
    port: int
    process: asyncio.subprocess.Process
    tail: deque[str] = field(default_factory=lambda: deque(maxlen=TAIL_LINES))
    summary: RunSummary | None = None
    readers: list[asyncio.Task[None]] = field(default_factory=list)


class Stoppable(Protocol):
    """One ledger process's settler (consumer.Settler), as its signal handling sees it."""

    def stop(self) -> None: ...
    async def run(self, *, until_idle: bool) -> RunSummary: ...


async def settle_until_signalled(settler: Stoppable, *, until_idle: bool) -> RunSummary:
    """Runs one process's settler; SIGTERM and SIGINT let the current batch finish, then stop."""
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, settler.stop)
    return await settler.run(until_idle=until_idle)


class Backlog(Protocol):
    """What --until-idle asks (GroupBacklog; a stand-in in unit tests)."""

    async def count(self) -> int | None: ...
    async def close(self) -> None: ...


class LedgerProcesses:
    """Starts N ledger processes of one group, waits for them, stops them all on a signal or a failure."""

    def __init__(
        self,
        settings: Settings,
        *,
        group: str,
        until_idle: bool,
        say: Say,
        argv: Sequence[str] | None = None,
        backlog: Backlog | None = None,
    ) -> None:
        self.settings = settings
        self.group = group
        self.until_idle = until_idle
        self.say = say
        self.argv = list(argv or [sys.executable, "-m", "consumers.ledger", SUMMARY_FLAG])
        self.backlog = backlog or GroupBacklog(settings, group)
        self.children: list[Child] = []
        self._stop = asyncio.Event()
        self.signal_name = ""

    async def run(self, count: int) -> RunSummary:
        """Runs `count` processes until they finish, one fails (SandboxError quoting it) or a signal comes."""
        ports = metrics_ports(self.settings, count)
        check_ports_free(ports)
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, self._on_signal, signum)
        try:
            for number, port in enumerate(ports, 1):
                self.children.append(await self._start(number, port))
            self._list_for_prometheus(ports[1:])  # the local Prometheus scrapes them all
            failed = await self._watch()
        finally:
            for signum in (signal.SIGINT, signal.SIGTERM):
                loop.remove_signal_handler(signum)
            await self._stop_all()
            self._list_for_prometheus([])
        for child in self.children:
            outcome = child.summary.line() if child.summary else describe_exit(child.process.returncode)
            self.say(f"ledger {child.number} (pid {child.process.pid}, /metrics port {child.port}): {outcome}")
        # A child that did not exit 0 once asked to stop (or was killed after STOP_WAIT_S) fails the run too.
        failed = failed or next((c for c in self.children if c.process.returncode != 0), None)
        if failed is not None:
            raise self._failure(failed)
        return total([child.summary for child in self.children if child.summary is not None])

    def _list_for_prometheus(self, ports: Sequence[int]) -> None:
        """Best effort: a targets file that cannot be written costs the scrape of processes 2..N, not the run."""
        try:
            write_ledger_targets(self.settings, ports)
        except OSError as error:
            self.say(f"the local Prometheus will not scrape ledger processes 2..N: {error}")

    def _on_signal(self, signum: int) -> None:
        if self._stop.is_set():  # a second Ctrl-C: do not wait for the batches
            self._signal_all(signal.SIGKILL)
            return
        self.signal_name = signal.Signals(signum).name
        self._stop.set()

    async def _start(self, number: int, port: int) -> Child:
        env = {k: v for k, v in os.environ.items() if not k.startswith("KPSANDBOX_")} | settings_env(self.settings)
        env |= {PORT_SETTING: str(port), "KPSANDBOX_LEDGER_GROUP": self.group}
        process = await asyncio.create_subprocess_exec(
            *self.argv,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env=env,
            start_new_session=True,
            preexec_fn=die_with_parent,
        )
        child = Child(number, port, process)
        assert process.stdout is not None and process.stderr is not None
        child.readers = [
            asyncio.create_task(self._read_stdout(child, process.stdout)),
            asyncio.create_task(self._read_stderr(child, process.stderr)),
        ]
        return child

    async def _read_stdout(self, child: Child, stream: asyncio.StreamReader) -> None:
        async for raw in stream:
            line = raw.decode(errors="replace").rstrip()
            summary = parse_summary(line)
            if summary is not None:
                child.summary = summary
            elif line:
                self.say(f"[ledger {child.number}] {line}")

    async def _read_stderr(self, child: Child, stream: asyncio.StreamReader) -> None:
        async for raw in stream:
            line = raw.decode(errors="replace").rstrip()
            child.tail.append(line)
            print(f"[ledger {child.number}] {line}", file=sys.stderr, flush=True)

    async def _watch(self) -> Child | None:
        """Waits until every child exited 0, a signal came or (--until-idle) the group is drained:
        None; or until one exited otherwise: that child."""
        waiting = {asyncio.create_task(child.process.wait()): child for child in self.children}
        stopping = asyncio.create_task(self._stop.wait())
        idle = asyncio.create_task(self._until_drained())
        try:
            while waiting:  # each round removes at least one exited child
                done, _ = await asyncio.wait({*waiting, stopping, idle}, return_when=asyncio.FIRST_COMPLETED)
                if stopping in done:
                    self.say(f"{self.signal_name}: stopping the ledger processes (each finishes its batch first)")
                    return None
                if idle in done:
                    idle.result()  # a failure of the watcher itself is raised, not taken for idle
                    self.say("the group is idle (every partition settled to its end): stopping the processes")
                    return None
                exited = [waiting.pop(task) for task in list(waiting) if task in done]
                failed = next((child for child in exited if child.process.returncode != 0), None)
                if failed is not None:
                    return failed
            return None
        finally:
            for task in (stopping, idle, *waiting):
                task.cancel()
            await self.backlog.close()

    async def _until_drained(self) -> None:
        """Returns once the group's backlog was 0 at IDLE_CHECKS polls in a row. Runs as long as the
        children do (like a single `settle --until-idle`); `_watch` cancels it when they stop.
        Without --until-idle it never returns."""
        if not self.until_idle:
            await asyncio.Event().wait()
        zero_in_a_row = unknown_in_a_row = 0
        while zero_in_a_row < IDLE_CHECKS:
            await asyncio.sleep(IDLE_POLL_S)
            backlog = await self.backlog.count()
            zero_in_a_row = zero_in_a_row + 1 if backlog == 0 else 0
            unknown_in_a_row = unknown_in_a_row + 1 if backlog is None else 0
            if unknown_in_a_row == UNKNOWN_WARN_AFTER:
                self.say("cannot tell the group's backlog (Kafka or PostgreSQL does not answer); still waiting")

    async def _stop_all(self) -> None:
        """SIGTERM to every child still running, STOP_WAIT_S for them to finish, then SIGKILL."""
        self._signal_all(signal.SIGTERM)
        exits = [child.process.wait() for child in self.children]
        try:
            await asyncio.wait_for(asyncio.gather(*exits), STOP_WAIT_S)
        except TimeoutError:
            self._signal_all(signal.SIGKILL)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.gather(*(c.process.wait() for c in self.children)), KILL_WAIT_S)
        readers = [reader for child in self.children for reader in child.readers]
        if readers:
            await asyncio.wait(readers, timeout=OUTPUT_WAIT_S)

    def _signal_all(self, signum: int) -> None:
        for child in self.children:
            if child.process.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    child.process.send_signal(signum)

    def _failure(self, child: Child) -> SandboxError:
        tail = " / ".join(line for line in child.tail if line) or "(no output)"
        return SandboxError(
            f"ledger process {child.number} of {len(self.children)} (pid {child.process.pid}) "
            f"{describe_exit(child.process.returncode)}: {tail}",
            "the others were stopped after their batch (what they settled stays settled); fix the cause "
            "above, then run `kpsandbox settle` again",
        )


async def settle_processes(settings: Settings, *, count: int, group: str, until_idle: bool, say: Say) -> RunSummary:
    """Runs `count` ledger processes of `group` under one supervisor; their summaries added up."""
    return await LedgerProcesses(settings, group=group, until_idle=until_idle, say=say).run(count)
