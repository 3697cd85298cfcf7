"""The webhook dispatcher's worker processes (KPSANDBOX_WEBHOOK_PROCESSES, default 1).

One dispatcher process is bound by its own CPU and its chain of claims and group commits; a second one on
the same two cores drains a backlog about a third faster (bench/RESULTS.md, "Webhooks"), though while
events keep arriving it takes CPU the rest of the sandbox needs, so one is the default. The claims use
`FOR UPDATE SKIP LOCKED`, so processes never claim the same delivery, and `process_bounds` gives each its
share of the per-endpoint and in-all bounds, so the bounds hold for the whole dispatcher.

`python -m consumers.webhooks` is process 0: it serves /metrics, reads the backlog, runs its share, and starts
processes 1..N-1 as `python -m consumers.webhooks --worker I` children. `Workers` is the only owner of the
children, which move through these states:

    running ──stop asked (SIGINT / SIGTERM to process 0)──▶ stopping: SIGTERM to each (attempts in flight
       │                                                      finish and are recorded), STOP_WAIT_S, SIGKILL
       └─ one exits unasked ──▶ failed: the others and process 0 stop the same way; exit status 1, so
                                 `serve` / `up --apps` restart the whole dispatcher

A child runs in its own session (a Ctrl-C in the terminal reaches process 0 only, which orders the stop),
dies with process 0 should that be killed (PR_SET_PDEATHSIG: a SIGTERM, so it still records what it sent),
and shares process 0's stderr. It writes its counts to stdout as one JSON line every REPORT_INTERVAL_S and
once more with its summary when it ends; process 0 keeps each child's last counts in `metrics.peers`, and
its /metrics adds them to its own.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import sys
from collections.abc import Callable, Coroutine
from dataclasses import asdict, dataclass, field
from typing import Any, Final, TextIO

from consumers.webhooks.dispatcher import STOP_TIMEOUT_S, DispatchSummary
from consumers.webhooks.metrics import ATTEMPT_RESULTS, FINISHED_OUTCOMES, Snapshot, WebhookMetrics
from infra.errors import SandboxError
from infra.local.procs import die_with_parent
from infra.settings import Settings
from schemas.metrics import WEBHOOK_ATTEMPT_BUCKETS_S

log = logging.getLogger(__name__)

WORKER_FLAG: Final = "--worker"
REPORT_INTERVAL_S: Final = 1.0  # a worker's counts reach process 0's /metrics at most this late
STOP_WAIT_S: Final = STOP_TIMEOUT_S + 5.0  # a stopping worker's attempts in flight finish first
KILL_WAIT_S: Final = 5.0
REPORT_LINE_BYTES_MAX: Final = 64 * 1024  # one report; a longer line is a broken worker

Dispatch = Callable[[asyncio.Event, WebhookMetrics], Coroutine[Any, Any, DispatchSummary]]


def read_report(line: bytes) -> tuple[Snapshot, DispatchSummary | None]:
    """A worker's report line: its counts, and its summary when it is the last line. ValueError when the
    line is not one (a worker printing anything else on stdout is a bug worth an error, not a guess)."""
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
    ):
        raise ValueError(f"not a worker report: {line[:200]!r}")
    summary = report.get("summary")
    return counts, None if summary is None else DispatchSummary(**summary)


def report_line(metrics: WebhookMetrics, summary: DispatchSummary | None = None) -> str:
    """One report of a worker's own counts (and its summary when it ends), as `read_report` reads it."""
    report: dict[str, Any] = {"counts": metrics.snapshot()}
    if summary is not None:
        report["summary"] = asdict(summary)
    return json.dumps(report, separators=(",", ":"))


async def run_worker(dispatch: Dispatch, stop: asyncio.Event, out: TextIO = sys.stdout) -> DispatchSummary:
    """A worker: runs `dispatch` until `stop` is set, reporting its counts to `out` every REPORT_INTERVAL_S
    and once more, with its summary, at the end."""
    metrics = WebhookMetrics()

    async def report() -> None:
        while not stop.is_set():  # bounded by `stop`
            print(report_line(metrics), file=out, flush=True)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), REPORT_INTERVAL_S)

    reporter = asyncio.create_task(report(), name="webhooks-report")
    try:
        summary = await dispatch(stop, metrics)
    finally:
        stop.set()
        await reporter
    print(report_line(metrics, summary), file=out, flush=True)
    return summary


@dataclass
class _Child:
    number: int
    process: asyncio.subprocess.Process
    reader: asyncio.Task[None] | None = None
    summary: DispatchSummary | None = None


@dataclass
class Workers:
    """Processes 1..N-1 of the dispatcher, started and stopped by process 0 (see the module's states)."""

    settings: Settings
    metrics: WebhookMetrics  # process 0's: each child's counts go to metrics.peers[number]
    argv: list[str] = field(default_factory=lambda: [sys.executable, "-m", "consumers.webhooks"])
    children: list[_Child] = field(default_factory=list)
    failed: str | None = None  # why the dispatcher stopped unasked

    async def start(self, stop: asyncio.Event) -> None:
        """Starts every worker; one that exits before `stop` is set sets it (and `failed`)."""
        for number in range(1, self.settings.webhook_processes):
            process = await asyncio.create_subprocess_exec(
                *self.argv,
                WORKER_FLAG,
                str(number),
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                start_new_session=True,
                preexec_fn=die_with_parent,
                limit=REPORT_LINE_BYTES_MAX,
            )
            child = _Child(number, process)
            child.reader = asyncio.create_task(self._read(child, stop), name=f"webhooks-worker-{number}")
            self.children.append(child)

    async def _read(self, child: _Child, stop: asyncio.Event) -> None:
        """Keeps the child's last counts until its stdout ends, then notes how it ended."""
        assert child.process.stdout is not None
        try:
            async for line in child.process.stdout:  # bounded: ends when the child does
                counts, summary = read_report(line)
                self.metrics.peers[child.number] = counts
                child.summary = summary or child.summary
        except (ValueError, KeyError, TypeError, asyncio.LimitOverrunError) as error:
            self._fail(child, f"sent a report that could not be read ({error})", stop)
            return
        status = await child.process.wait()
        if not stop.is_set():
            self._fail(child, f"exited with status {status} while the others ran (its error is above)", stop)

    def _fail(self, child: _Child, why: str, stop: asyncio.Event) -> None:
        if self.failed is None:
            self.failed = f"webhook dispatcher process {child.number} {why}"
            log.error("webhooks: %s; stopping the dispatcher", self.failed)
        stop.set()

    async def stop(self) -> DispatchSummary:
        """Stops every worker (SIGTERM, STOP_WAIT_S, SIGKILL) and adds up their summaries. Idempotent."""
        for child in self.children:
            if child.process.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    child.process.terminate()
        total = DispatchSummary()
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
            if child.summary is not None:
                for name, value in asdict(child.summary).items():
                    setattr(total, name, getattr(total, name) + value)
        return total

    def raise_if_failed(self) -> None:
        """A SandboxError when a worker stopped the dispatcher (the app is then restarted)."""
        if self.failed is not None:
            raise SandboxError(self.failed, "Fix what its error says; `kpsandbox serve` restarts the dispatcher.")
