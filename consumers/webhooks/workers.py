"""The webhook dispatcher's worker processes (KPSANDBOX_WEBHOOK_PROCESSES, default 2: the most that claim).

One dispatcher process is bound by its own CPU and its chain of claims and group commits; a second one on
the same two cores drains a backlog about a third faster (bench/RESULTS.md, "Webhooks"), but while events
arrive no faster than one process delivers them, a second only takes CPU that the API, the views consumer
and PostgreSQL need. So process 0 (`python -m consumers.webhooks`, which serves /metrics and reads the
backlog) claims alone, and `scale` keeps processes 1..N-1 (`python -m consumers.webhooks --worker I`)
started but paused: it tells them to RUN (a line on their stdin) once every claim of every lane has filled
every free slot for SCALE_UP_AFTER_S and the rows claimed had been due for SCALE_UP_WAITED_S (one process
is behind, not catching up on a burst: a second process set to work on a short burst, while events kept
arriving at half of what one process delivers, made every later delivery's p99 4–5 × longer; bench/RESULTS.md,
"Webhooks"), and to PAUSE once no claim has filled every free slot for SCALE_DOWN_AFTER_S. A worker started
at that moment would spend its first second importing; a paused one claims within milliseconds.
The claims use `FOR UPDATE SKIP LOCKED`, so processes never claim the same delivery, and `process_bounds`
gives each process its share of the per-endpoint and in-all bounds: process 0 lowers its share before the
workers run (and only once its attempts in flight fit it), and takes the whole bounds back only once they
have said they paused, so the bounds hold for the whole dispatcher at every moment.

`Workers` is the only owner of the children, which move through these states:

    paused ──backlog──▶ running ──calm──▶ paused            (each change reported on stdout)
       └──────────────────┴── process 0 stops ──▶ stopping: SIGTERM to each (attempts in flight finish and are
                          │                                 recorded), STOP_WAIT_S, SIGKILL
                          └── one exits unasked ──▶ the others are stopped the same way; an error is logged
                                                    naming it, process 0 goes on alone with the whole bounds
                                                    and starts none again for FAILED_PAUSE_S

A child runs in its own session (a Ctrl-C in the terminal reaches process 0 only, which orders the stop),
dies with process 0 should that be killed (PR_SET_PDEATHSIG: a SIGTERM, so it still records what it sent;
its stdin ending says the same), and shares process 0's stderr. It writes its counts and state to stdout as
one JSON line every REPORT_INTERVAL_S, at once when it has paused, and once more with its summary when it
ends; process 0 keeps each running child's last counts in `metrics.peers` and folds a stopped child's into
`metrics.retired`, so its /metrics counters only grow.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import sys
import time
from collections.abc import Callable, Coroutine
from dataclasses import asdict, dataclass, field
from typing import Any, Final, NamedTuple, Protocol, TextIO

from consumers.webhooks.dispatcher import STOP_TIMEOUT_S, DispatchSummary
from consumers.webhooks.metrics import ATTEMPT_RESULTS, FINISHED_OUTCOMES, Snapshot, WebhookMetrics
from infra.local.procs import die_with_parent
from infra.settings import Settings
from schemas.metrics import WEBHOOK_ATTEMPT_BUCKETS_S

log = logging.getLogger(__name__)

WORKER_FLAG: Final = "--worker"
REPORT_INTERVAL_S: Final = 1.0  # a worker's counts reach process 0's /metrics at most this late
STOP_WAIT_S: Final = STOP_TIMEOUT_S + 5.0  # a stopping worker's attempts in flight finish first
KILL_WAIT_S: Final = 5.0
REPORT_LINE_BYTES_MAX: Final = 64 * 1024  # one report; a longer line is a broken worker
SCALE_POLL_S: Final = 0.05  # how often process 0 looks at its lanes' backlog (a few numbers)
SCALE_UP_AFTER_S: Final = 0.2  # every claim filled every free slot this long: the workers are told to RUN…
SCALE_UP_WAITED_S: Final = 0.5  # …if the rows claimed had also been due this long (see the module)
SCALE_DOWN_AFTER_S: Final = 30.0  # no claim filled every free slot this long: they are told to PAUSE
PAUSE_POLL_S: Final = 0.05
RUN: Final = b"run"  # process 0 → worker, one line on its stdin
PAUSE: Final = b"pause"
COMMAND_BYTES_MAX: Final = 1024  # a worker's stdin line
FAILED_PAUSE_S: Final = 60.0  # after a worker exited unasked, none is started again for this long
FIT_WAIT_S: Final = STOP_TIMEOUT_S  # process 0's attempts in flight fit its lowered share within this
FIT_POLL_S: Final = 0.05

Dispatch = Callable[[asyncio.Event, WebhookMetrics], Coroutine[Any, Any, DispatchSummary]]


class Report(NamedTuple):
    """One line a worker writes to process 0: its counts, whether it is claiming, its summary at the end."""

    counts: Snapshot
    running: bool
    summary: DispatchSummary | None


def read_report(line: bytes) -> Report:
    """A worker's report line; ValueError when the line is not one (a worker printing anything else on
    stdout is a bug worth an error, not a guess)."""
    report = json.loads(line)
    counts = report["counts"]
    attempts, finished = counts["attempts"], counts["finished"]
    buckets, total_s = counts["duration_buckets"], counts["duration_sum_s"]
    if (
        set(attempts) != set(ATTEMPT_RESULTS)
        or set(finished) != set(FINISHED_OUTCOMES)
        or len(buckets) != len(WEBHOOK_ATTEMPT_BUCKETS_S) + 1
        or not all(type(n) is int and n >= 0 for n in [*attempts.values(), *finished.values(), *buckets])
        or not isinstance(total_s, int | float)
        or type(report["running"]) is not bool
    ):
        raise ValueError(f"not a worker report: {line[:200]!r}")
    summary = report.get("summary")
    return Report(counts, report["running"], None if summary is None else DispatchSummary(**summary))


def report_line(metrics: WebhookMetrics, *, running: bool, summary: DispatchSummary | None = None) -> str:
    """One report of a worker's own counts (and its summary when it ends), as `read_report` reads it."""
    report: dict[str, Any] = {"counts": metrics.snapshot(), "running": running}
    if summary is not None:
        report["summary"] = asdict(summary)
    return json.dumps(report, separators=(",", ":"))


async def run_worker(
    dispatch: Dispatch, stop: asyncio.Event, commands: asyncio.StreamReader, out: TextIO = sys.stdout
) -> DispatchSummary:
    """A worker: waits for RUN on `commands` (process 0's pipe), runs `dispatch` until PAUSE, waits again, …
    until `stop` is set or the pipe ends (process 0 is gone). Reports its counts to `out` every
    REPORT_INTERVAL_S, at once when it has paused, and once more, with its summary, at the end."""
    metrics, total = WebhookMetrics(), DispatchSummary()
    running = False

    async def report() -> None:
        while not stop.is_set():  # bounded by `stop`
            print(report_line(metrics, running=running), file=out, flush=True)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), REPORT_INTERVAL_S)

    async def next_command() -> bytes | None:
        """Process 0's next command; None once `stop` is set or the pipe has ended (process 0 is gone)."""
        reading, stopped = asyncio.ensure_future(commands.readline()), asyncio.ensure_future(stop.wait())
        await asyncio.wait([reading, stopped], return_when=asyncio.FIRST_COMPLETED)
        stopped.cancel()
        if not reading.done():
            reading.cancel()
            return None
        line = reading.result()
        if not line:
            stop.set()
            return None
        return line.strip()

    async def run_until_paused() -> DispatchSummary:
        paused = asyncio.Event()
        task = asyncio.create_task(dispatch(paused, metrics))
        command = asyncio.ensure_future(next_command())
        while True:  # bounded: each pass takes one of process 0's commands, and a None ends it
            await asyncio.wait([command, task], return_when=asyncio.FIRST_COMPLETED)
            if task.done() or command.result() in (None, PAUSE):
                break
            command = asyncio.ensure_future(next_command())  # another RUN: it runs already
        command.cancel()
        paused.set()
        return await task

    reporter = asyncio.create_task(report(), name="webhooks-report")
    try:
        while not stop.is_set():  # bounded by `stop`: one pass per RUN … PAUSE
            if await next_command() != RUN:
                continue
            running = True
            summary = await run_until_paused()
            running = False
            total.add(summary)
            print(report_line(metrics, running=False), file=out, flush=True)
    finally:
        stop.set()
        await reporter
    print(report_line(metrics, running=False, summary=total), file=out, flush=True)
    return total


@dataclass
class _Child:
    number: int
    process: asyncio.subprocess.Process
    reader: asyncio.Task[None] | None = None
    running: bool = False  # as it last reported
    summary: DispatchSummary | None = None


@dataclass
class Workers:
    """Processes 1..N-1 of the dispatcher: started paused with process 0, told to RUN while a backlog lasts and
    to PAUSE after it (see the module's states). Their summaries add up in `summary`."""

    settings: Settings
    metrics: WebhookMetrics  # process 0's: a running child's counts in metrics.peers, a stopped one's folded
    argv: list[str] = field(default_factory=lambda: [sys.executable, "-m", "consumers.webhooks"])
    children: list[_Child] = field(default_factory=list)
    summary: DispatchSummary = field(default_factory=DispatchSummary)
    active: bool = False  # told to RUN (and not told to PAUSE since)
    failed_at: float | None = None  # time.monotonic() of the last unasked exit
    _stopping: bool = False

    @property
    def started(self) -> bool:
        return bool(self.children)

    async def start(self) -> None:
        """Starts processes 1..N-1, paused (none while they run already)."""
        if self.children:
            return
        self._stopping, self.active = False, False
        for number in range(1, self.settings.webhook_processes):
            process = await asyncio.create_subprocess_exec(
                *self.argv,
                WORKER_FLAG,
                str(number),
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                start_new_session=True,
                preexec_fn=die_with_parent,
                limit=REPORT_LINE_BYTES_MAX,
            )
            child = _Child(number, process)
            child.reader = asyncio.create_task(self._read(child), name=f"webhooks-worker-{number}")
            self.children.append(child)

    async def _read(self, child: _Child) -> None:
        """Keeps the child's last counts and state until its stdout ends, then notes how it ended."""
        assert child.process.stdout is not None
        try:
            async for line in child.process.stdout:  # bounded: ends when the child does
                report = read_report(line)
                self.metrics.peers[child.number] = report.counts
                child.running = report.running
                child.summary = report.summary or child.summary
        except (ValueError, KeyError, TypeError) as error:
            self._failed(child, f"sent a report that could not be read ({error})")
            return
        status = await child.process.wait()
        if not self._stopping:
            self._failed(child, f"exited unasked with status {status} (its error, if any, is above)")

    def _failed(self, child: _Child, why: str) -> None:
        self.failed_at = time.monotonic()
        log.error(
            "webhooks: dispatcher process %d %s; process 0 goes on alone and starts no other for %.0f s",
            child.number,
            why,
            FAILED_PAUSE_S,
        )

    def failed_lately(self, now: float) -> bool:
        """A worker exited unasked less than FAILED_PAUSE_S ago (none is started meanwhile)."""
        return self.failed_at is not None and now - self.failed_at < FAILED_PAUSE_S

    def any_ended(self) -> bool:
        """One of the started workers has exited (asked or not)."""
        return any(child.process.returncode is not None for child in self.children)

    def _tell(self, command: bytes) -> None:
        for child in self.children:
            if child.process.stdin is not None and child.process.returncode is None:
                with contextlib.suppress(ConnectionError):
                    child.process.stdin.write(command + b"\n")

    def resume(self) -> None:
        """Tells every worker to claim (its share of the bounds)."""
        self.active = True
        self._tell(RUN)

    async def pause(self) -> bool:
        """Tells every worker to stop claiming; True once each has reported it paused (its attempts in flight
        recorded) within STOP_WAIT_S."""
        self._tell(PAUSE)
        deadline = time.monotonic() + STOP_WAIT_S
        while any(child.running for child in self.children):  # bounded by the deadline
            if time.monotonic() > deadline or self.any_ended():
                return False
            await asyncio.sleep(PAUSE_POLL_S)
        self.active = False
        return True

    async def stop(self) -> None:
        """Stops every worker (SIGTERM, STOP_WAIT_S, SIGKILL), folds its counts into metrics.retired and adds
        its summary to `summary`. Idempotent."""
        self._stopping, self.active = True, False
        for child in self.children:
            if child.process.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    child.process.terminate()
        for child in self.children:
            try:
                await asyncio.wait_for(child.process.wait(), STOP_WAIT_S)
            except TimeoutError:
                log.warning("webhooks: process %d did not stop within %.0f s; killed", child.number, STOP_WAIT_S)
                with contextlib.suppress(ProcessLookupError):
                    child.process.kill()
                await asyncio.wait_for(child.process.wait(), KILL_WAIT_S)
            if child.reader is not None:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(child.reader, KILL_WAIT_S)
            self.metrics.retire(child.number)
            if child.summary is not None:
                self.summary.add(child.summary)
        self.children = []


class Scalable(Protocol):
    """What `scale` needs of process 0's Dispatcher."""

    def share(self, processes: int) -> None: ...
    def within_bounds(self) -> bool: ...
    def backlogged_for(self, now: float) -> float: ...
    def calm_for(self, now: float) -> float: ...
    def waited_s(self) -> float: ...


async def scale(dispatcher: Scalable, workers: Workers, stop: asyncio.Event) -> None:
    """Starts the workers paused, tells them to RUN while a backlog lasts and to PAUSE once it is gone (see the
    module), until `stop` is set; then stops them. Process 0's share of the bounds follows: 1/N while they
    run, all of them otherwise."""
    processes = workers.settings.webhook_processes
    try:
        while not stop.is_set():  # bounded by `stop`
            now = time.monotonic()
            if processes > 1 and not workers.started and not workers.failed_lately(now):
                await workers.start()
            elif workers.started and workers.any_ended():  # one failed: the others stop, process 0 goes on alone
                await workers.stop()
                dispatcher.share(1)
            elif workers.active and dispatcher.calm_for(now) >= SCALE_DOWN_AFTER_S:
                if not await workers.pause():
                    await workers.stop()
                dispatcher.share(1)
                log.info("webhooks: no backlog for %.0f s; back to one process", SCALE_DOWN_AFTER_S)
            elif workers.started and not workers.active and _behind(dispatcher, now):
                waited_s = dispatcher.waited_s()
                dispatcher.share(processes)
                if await _fits(dispatcher, stop):
                    workers.resume()
                    log.info(
                        "webhooks: a backlog for %.1f s, deliveries due for %.1f s when claimed; %d processes deliver",
                        SCALE_UP_AFTER_S,
                        waited_s,
                        processes,
                    )
                else:
                    dispatcher.share(1)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), SCALE_POLL_S)
    finally:
        await workers.stop()


def _behind(dispatcher: Scalable, now: float) -> bool:
    """Process 0 alone is behind: every claim has filled every free slot for SCALE_UP_AFTER_S, and the rows
    it claims had been due for SCALE_UP_WAITED_S."""
    return dispatcher.backlogged_for(now) >= SCALE_UP_AFTER_S and dispatcher.waited_s() >= SCALE_UP_WAITED_S


async def _fits(dispatcher: Scalable, stop: asyncio.Event) -> bool:
    """Waits (at most FIT_WAIT_S) until process 0's attempts in flight fit its lowered share."""
    deadline = time.monotonic() + FIT_WAIT_S
    while not dispatcher.within_bounds():  # bounded by the deadline
        if stop.is_set() or time.monotonic() > deadline:
            return False
        await asyncio.sleep(FIT_POLL_S)
    return True
