"""The webhook dispatcher's worker processes: shared bounds, reports, summed metrics, and their supervision."""

from __future__ import annotations

import asyncio
import io
import sys
import time
from collections.abc import Callable

import pytest
from pydantic import ValidationError

from consumers.webhooks import dispatcher as dispatcher_module
from consumers.webhooks import workers as workers_module
from consumers.webhooks.dispatcher import CLAIM_LANES, IN_FLIGHT_MAX, PER_ENDPOINT_MAX, DispatchSummary, process_bounds
from consumers.webhooks.metrics import WebhookMetrics
from consumers.webhooks.workers import Report, Workers, read_report, report_line, run_worker
from infra.settings import WEBHOOK_PROCESSES_MAX, load_settings, with_overrides


@pytest.mark.parametrize("processes", range(1, WEBHOOK_PROCESSES_MAX + 1))
def test_the_processes_lanes_share_both_bounds_exactly(processes: int) -> None:
    """However many processes, their lanes' shares add up to the dispatcher's bounds, and every lane has
    at least one slot per endpoint: the bounds hold for the whole dispatcher, not per process."""
    lanes = [lane for process in range(processes) for lane in process_bounds(process, processes)]
    assert all(len(process_bounds(process, processes)) == CLAIM_LANES for process in range(processes))
    assert sum(each for each, _ in lanes) == PER_ENDPOINT_MAX
    assert sum(total for _, total in lanes) == IN_FLIGHT_MAX
    assert min(each for each, _ in lanes) >= 1


def test_a_process_outside_the_count_is_refused() -> None:
    """A dispatcher told it is process 2 of 2 raises instead of running with no share (or the whole bound)."""
    with pytest.raises(ValueError, match="process 2 of 2"):
        dispatcher_module.Dispatcher(with_overrides(load_settings(), webhook_processes=2), process=2)


def _busy(metrics: WebhookMetrics) -> WebhookMetrics:
    metrics.attempted(result="delivered", seconds=0.002, delivery_status="delivered")
    metrics.attempted(result="http_error", seconds=0.3, delivery_status="pending")
    return metrics


def test_a_report_round_trips_and_the_last_one_carries_the_summary() -> None:
    """A worker's report line reads back as its counts and state; only the last one has its summary."""
    metrics = _busy(WebhookMetrics())
    report = read_report(report_line(metrics, running=True).encode())
    assert report.counts == metrics.snapshot() and report.running and report.summary is None
    report = read_report(report_line(metrics, running=False, summary=DispatchSummary(2, 1, 0, 1)).encode())
    assert report.summary == DispatchSummary(2, 1, 0, 1) and not report.running


@pytest.mark.parametrize(
    "line",
    [
        b"hello from a stray print\n",
        b'{"counts": {}}',
        b'{"counts": {"attempts": {"delivered": 1}, "finished": {}, "duration_buckets": [], "duration_sum_s": 0}}',
    ],
)
def test_a_line_that_is_not_a_report_is_refused(line: bytes) -> None:
    """Anything but a whole report (every label, every bucket, whole counts) is an error, never half-read."""
    with pytest.raises((ValueError, KeyError)):
        read_report(line)


def test_the_exposition_adds_every_peers_last_counts_to_its_own() -> None:
    """Process 0's /metrics is the sum of its own counts and each worker's last report."""
    mine, worker = _busy(WebhookMetrics()), _busy(_busy(WebhookMetrics()))
    mine.peers[1] = read_report(report_line(worker, running=True).encode()).counts

    def value(name: str, **labels: str) -> float | None:
        return mine.registry.get_sample_value(name, labels)

    assert value("kpsandbox_webhook_attempts_total", result="delivered") == 3
    assert value("kpsandbox_webhook_attempts_total", result="timeout") == 0
    assert value("kpsandbox_webhook_attempt_duration_seconds_count") == 6
    assert value("kpsandbox_webhook_attempt_duration_seconds_sum") == pytest.approx(0.906)
    assert value("kpsandbox_webhook_deliveries_finished_total", outcome="delivered") == 3
    assert mine.snapshot()["attempts"]["delivered"] == 1  # its own counts are unchanged


async def test_a_worker_runs_only_between_run_and_pause_and_reports_each_change(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A worker waits for RUN, dispatches until PAUSE (reporting `running`), reports at once when paused, runs
    again on the next RUN, and at the end (its pipe closed: process 0 gone) reports its summary of both runs."""
    monkeypatch.setattr("consumers.webhooks.workers.REPORT_INTERVAL_S", 0.01)
    out, stop, commands = io.StringIO(), asyncio.Event(), asyncio.StreamReader()
    runs: list[str] = []

    async def dispatch(paused: asyncio.Event, metrics: WebhookMetrics) -> DispatchSummary:
        runs.append("started")
        _busy(metrics)
        await paused.wait()
        runs.append("paused")
        return DispatchSummary(attempts=2, delivered=1, retried=1)

    def reports() -> list[Report]:
        return [read_report(line.encode()) for line in out.getvalue().splitlines()]

    worker = asyncio.create_task(run_worker(dispatch, stop, commands, out))
    await asyncio.sleep(0.05)
    assert runs == [] and not any(report.running for report in reports())  # paused until told
    commands.feed_data(workers_module.RUN + b"\n")
    await _until(lambda: reports()[-1].running)
    commands.feed_data(workers_module.PAUSE + b"\n" + workers_module.RUN + b"\n")
    await _until(lambda: runs.count("started") == 2)
    commands.feed_data(workers_module.PAUSE + b"\n")
    await _until(lambda: runs.count("paused") == 2 and not reports()[-1].running)
    commands.feed_eof()
    summary = await asyncio.wait_for(worker, 5)
    last = reports()[-1]
    assert last.summary == summary == DispatchSummary(attempts=4, delivered=2, retried=2)
    assert last.counts["attempts"]["delivered"] == 2
    assert all(report.summary is None for report in reports()[:-1])


_REPORTING_CHILD = """
import signal, sys
from consumers.webhooks.metrics import WebhookMetrics
from consumers.webhooks.workers import report_line
from consumers.webhooks.dispatcher import DispatchSummary
metrics = WebhookMetrics()
metrics.attempted(result="delivered", seconds=0.01, delivery_status="delivered")
def stopped(*_):
    print(report_line(metrics, running=False, summary=DispatchSummary(1, 1, 0, 0)), flush=True)
    sys.exit(0)
signal.signal(signal.SIGTERM, stopped)
if sys.argv[1:2] != ["--worker"]:
    sys.exit(3)
print(report_line(metrics, running=False), flush=True)
if {exit_unasked}:
    sys.exit(4)
for line in sys.stdin:  # a worker's protocol without dispatching: report each state change
    print(report_line(metrics, running=line.strip() == "run"), flush=True)
"""


def _workers(processes: int, *, exit_unasked: bool, metrics: WebhookMetrics) -> Workers:
    settings = with_overrides(load_settings(), webhook_processes=processes)
    script = _REPORTING_CHILD.format(exit_unasked=exit_unasked)
    return Workers(settings, metrics, argv=[sys.executable, "-c", script])


async def test_workers_stopped_on_request_report_their_counts_and_summaries() -> None:
    """Process 0 starts N-1 workers, keeps each one's last counts, and adds up their summaries at the stop;
    their counts then stay in the exposition (retired), so the counters never go down."""
    metrics = WebhookMetrics()
    workers = _workers(3, exit_unasked=False, metrics=metrics)
    await workers.start()
    async with asyncio.timeout(10):
        while len(metrics.peers) < 2:  # bounded by the timeout
            await asyncio.sleep(0.02)
    processes = [child.process for child in workers.children]
    await workers.stop()
    assert workers.summary == DispatchSummary(attempts=2, delivered=2)
    assert [process.returncode for process in processes] == [0, 0]
    assert workers.failed_at is None and not workers.started and metrics.peers == {}
    assert metrics.totals()["attempts"]["delivered"] == 2  # retired, still counted
    await workers.start()  # again: the new workers' counts add to the retired ones
    async with asyncio.timeout(10):
        while len(metrics.peers) < 2:  # bounded by the timeout
            await asyncio.sleep(0.02)
    assert metrics.totals()["attempts"]["delivered"] == 4
    await workers.stop()
    assert workers.summary == DispatchSummary(attempts=4, delivered=4)


async def test_a_worker_that_exits_unasked_is_an_error_and_pauses_scaling(caplog: pytest.LogCaptureFixture) -> None:
    """A worker exiting while it was needed is logged as an error naming it, and none is started for a while."""
    workers = _workers(2, exit_unasked=True, metrics=WebhookMetrics())
    await workers.start()
    async with asyncio.timeout(10):
        while workers.failed_at is None:  # bounded by the timeout
            await asyncio.sleep(0.02)
    assert workers.any_ended() and workers.failed_lately(time.monotonic())
    assert "dispatcher process 1 exited unasked with status 4" in caplog.text
    await workers.stop()


class _Dispatcher:
    """Process 0 as `scale` sees it: a backlog and calm the test sets, and the shares it is given."""

    def __init__(self) -> None:
        self.backlogged, self.calm, self.fits = 0.0, 0.0, True
        self.waited = workers_module.SCALE_UP_WAITED_S  # rows claimed in a backlog have waited this long
        self.shares: list[int] = []

    def share(self, processes: int) -> None:
        self.shares.append(processes)

    def within_bounds(self) -> bool:
        return self.fits

    def backlogged_for(self, now: float) -> float:
        return self.backlogged

    def calm_for(self, now: float) -> float:
        return self.calm

    def waited_s(self) -> float:
        return self.waited


@pytest.fixture
def quick_scaling(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(workers_module, "SCALE_POLL_S", 0.01)
    monkeypatch.setattr(workers_module, "FIT_WAIT_S", 0.1)


async def _until(check: Callable[[], bool]) -> None:
    async with asyncio.timeout(10):
        while not check():  # bounded by the timeout
            await asyncio.sleep(0.01)


@pytest.mark.usefixtures("quick_scaling")
async def test_the_workers_wait_paused_run_while_a_backlog_lasts_and_pause_after_it() -> None:
    """The workers start paused with process 0. Backlogged past SCALE_UP_AFTER_S: process 0 takes its 1/N
    share, then they are told to RUN; calm past SCALE_DOWN_AFTER_S: told to PAUSE, and once they say so
    process 0 takes the whole bounds back. `stop` stops them."""
    dispatcher, metrics = _Dispatcher(), WebhookMetrics()
    workers = _workers(2, exit_unasked=False, metrics=metrics)
    stop = asyncio.Event()
    task = asyncio.create_task(workers_module.scale(dispatcher, workers, stop))
    await _until(lambda: 1 in metrics.peers)
    assert workers.started and not workers.active and dispatcher.shares == []  # no backlog: paused
    dispatcher.backlogged = workers_module.SCALE_UP_AFTER_S
    await _until(lambda: all(child.running for child in workers.children))
    assert workers.active and dispatcher.shares == [2]
    dispatcher.backlogged, dispatcher.calm = 0.0, workers_module.SCALE_DOWN_AFTER_S
    await _until(lambda: not workers.active)
    assert dispatcher.shares == [2, 1] and not any(child.running for child in workers.children)
    assert workers.started  # paused, not stopped: ready for the next backlog
    stop.set()
    await task
    assert not workers.started and workers.summary.attempts == 1


@pytest.mark.usefixtures("quick_scaling")
async def test_a_backlog_whose_rows_have_not_waited_long_sets_no_worker_to_work() -> None:
    """Every claim filling every free slot is not enough: while the rows claimed had waited less than
    SCALE_UP_WAITED_S (a short burst that process 0 drains at once), the workers stay paused and process 0
    keeps the whole bounds; once they have waited that long, the workers run."""
    dispatcher, metrics = _Dispatcher(), WebhookMetrics()
    dispatcher.backlogged = 10 * workers_module.SCALE_UP_AFTER_S
    dispatcher.waited = 0.5 * workers_module.SCALE_UP_WAITED_S
    workers = _workers(2, exit_unasked=False, metrics=metrics)
    stop = asyncio.Event()
    task = asyncio.create_task(workers_module.scale(dispatcher, workers, stop))
    await _until(lambda: 1 in metrics.peers)
    await asyncio.sleep(20 * workers_module.SCALE_POLL_S)
    assert not workers.active and dispatcher.shares == []
    dispatcher.waited = workers_module.SCALE_UP_WAITED_S
    await _until(lambda: all(child.running for child in workers.children))
    assert workers.active and dispatcher.shares == [2]
    stop.set()
    await task


@pytest.mark.usefixtures("quick_scaling")
async def test_no_worker_runs_while_process_0_is_over_its_lowered_share() -> None:
    """If process 0's attempts in flight never fit its 1/N share within FIT_WAIT_S, it takes the whole bounds
    back and tells no worker to run: the bounds are never exceeded."""
    dispatcher = _Dispatcher()
    dispatcher.fits, dispatcher.backlogged = False, workers_module.SCALE_UP_AFTER_S
    workers = _workers(2, exit_unasked=False, metrics=WebhookMetrics())
    stop = asyncio.Event()
    task = asyncio.create_task(workers_module.scale(dispatcher, workers, stop))
    await _until(lambda: len(dispatcher.shares) >= 4)
    assert not workers.active and not any(child.running for child in workers.children)
    stop.set()
    await task
    assert dispatcher.shares[:4] == [2, 1, 2, 1]


@pytest.mark.usefixtures("quick_scaling")
async def test_a_worker_that_exits_unasked_leaves_process_0_alone_with_the_whole_bounds() -> None:
    """One worker's unasked exit stops the others; process 0 takes the whole bounds and starts none again
    for FAILED_PAUSE_S."""
    dispatcher = _Dispatcher()
    dispatcher.backlogged = workers_module.SCALE_UP_AFTER_S
    workers = _workers(3, exit_unasked=True, metrics=WebhookMetrics())
    stop = asyncio.Event()
    task = asyncio.create_task(workers_module.scale(dispatcher, workers, stop))
    await _until(lambda: workers.failed_at is not None and not workers.started)
    await asyncio.sleep(0.1)
    assert not workers.started and dispatcher.shares[-1:] in ([], [1])
    stop.set()
    await task


def test_settings_refuse_a_process_count_outside_one_to_eight(monkeypatch: pytest.MonkeyPatch) -> None:
    """KPSANDBOX_WEBHOOK_PROCESSES is 1–8; 0 or 9 is a settings error naming the variable."""
    for bad in ("0", "9"):
        monkeypatch.setenv("KPSANDBOX_WEBHOOK_PROCESSES", bad)
        with pytest.raises(ValidationError, match="webhook_processes"):
            load_settings()
    monkeypatch.setenv("KPSANDBOX_WEBHOOK_PROCESSES", "3")
    assert load_settings().webhook_processes == 3
