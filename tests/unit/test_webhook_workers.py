"""The webhook dispatcher's worker processes: shared bounds, reports, summed metrics, and their supervision."""

from __future__ import annotations

import asyncio
import io
import sys

import pytest
from pydantic import ValidationError

from consumers.webhooks import dispatcher as dispatcher_module
from consumers.webhooks.dispatcher import CLAIM_LANES, IN_FLIGHT_MAX, PER_ENDPOINT_MAX, DispatchSummary, process_bounds
from consumers.webhooks.metrics import WebhookMetrics
from consumers.webhooks.workers import Workers, read_report, report_line, run_worker
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
    """A worker's report line reads back as its counts; only the last one has its summary."""
    metrics = _busy(WebhookMetrics())
    counts, summary = read_report(report_line(metrics).encode())
    assert counts == metrics.snapshot() and summary is None
    counts, summary = read_report(report_line(metrics, DispatchSummary(2, 1, 0, 1)).encode())
    assert summary == DispatchSummary(2, 1, 0, 1)


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
    mine.peers[1] = read_report(report_line(worker).encode())[0]

    def value(name: str, **labels: str) -> float | None:
        return mine.registry.get_sample_value(name, labels)

    assert value("kpsandbox_webhook_attempts_total", result="delivered") == 3
    assert value("kpsandbox_webhook_attempts_total", result="timeout") == 0
    assert value("kpsandbox_webhook_attempt_duration_seconds_count") == 6
    assert value("kpsandbox_webhook_attempt_duration_seconds_sum") == pytest.approx(0.906)
    assert value("kpsandbox_webhook_deliveries_finished_total", outcome="delivered") == 3
    assert mine.snapshot()["attempts"]["delivered"] == 1  # its own counts are unchanged


async def test_a_worker_reports_while_it_runs_and_once_more_at_the_end(monkeypatch: pytest.MonkeyPatch) -> None:
    """Reports every REPORT_INTERVAL_S while dispatching; the last line holds the final counts and summary."""
    monkeypatch.setattr("consumers.webhooks.workers.REPORT_INTERVAL_S", 0.01)
    out = io.StringIO()
    stop = asyncio.Event()

    async def dispatch(stopped: asyncio.Event, metrics: WebhookMetrics) -> DispatchSummary:
        await asyncio.sleep(0.1)
        _busy(metrics)
        stopped.set()
        return DispatchSummary(attempts=2, delivered=1, retried=1)

    summary = await run_worker(dispatch, stop, out)
    lines = out.getvalue().splitlines()
    assert len(lines) >= 3  # periodic reports before the end
    counts, last = read_report(lines[-1].encode())
    assert last == summary == DispatchSummary(attempts=2, delivered=1, retried=1)
    assert counts["attempts"]["delivered"] == 1
    assert all(read_report(line.encode())[1] is None for line in lines[:-1])


_REPORTING_CHILD = """
import signal, sys, time
from consumers.webhooks.metrics import WebhookMetrics
from consumers.webhooks.workers import report_line
from consumers.webhooks.dispatcher import DispatchSummary
metrics = WebhookMetrics()
metrics.attempted(result="delivered", seconds=0.01, delivery_status="delivered")
def stopped(*_):
    print(report_line(metrics, DispatchSummary(1, 1, 0, 0)), flush=True)
    sys.exit(0)
signal.signal(signal.SIGTERM, stopped)
if sys.argv[1:2] != ["--worker"]:
    sys.exit(3)
print(report_line(metrics), flush=True)
if {exit_unasked}:
    sys.exit(4)
time.sleep(30)
"""


def _workers(processes: int, *, exit_unasked: bool, metrics: WebhookMetrics) -> Workers:
    settings = with_overrides(load_settings(), webhook_processes=processes)
    script = _REPORTING_CHILD.format(exit_unasked=exit_unasked)
    return Workers(settings, metrics, argv=[sys.executable, "-c", script])


async def test_workers_stopped_on_request_report_their_counts_and_summaries() -> None:
    """Process 0 starts N-1 workers, keeps each one's last counts, and adds up their summaries at the stop."""
    metrics = WebhookMetrics()
    workers = _workers(3, exit_unasked=False, metrics=metrics)
    stop = asyncio.Event()
    await workers.start(stop)
    async with asyncio.timeout(10):
        while len(metrics.peers) < 2:  # bounded by the timeout
            await asyncio.sleep(0.02)
    stop.set()
    total = await workers.stop()
    assert total == DispatchSummary(attempts=2, delivered=2)
    assert sorted(metrics.peers) == [1, 2]
    assert [child.process.returncode for child in workers.children] == [0, 0]
    assert workers.failed is None
    workers.raise_if_failed()


async def test_a_worker_that_exits_unasked_stops_the_dispatcher_with_an_error() -> None:
    """A worker exiting while the others run sets the stop and makes process 0 fail (to be restarted)."""
    workers = _workers(2, exit_unasked=True, metrics=WebhookMetrics())
    stop = asyncio.Event()
    await workers.start(stop)
    async with asyncio.timeout(10):
        await stop.wait()
    await workers.stop()
    assert workers.failed is not None and "process 1 exited with status 4" in workers.failed
    with pytest.raises(Exception, match="process 1 exited with status 4"):
        workers.raise_if_failed()


def test_settings_refuse_a_process_count_outside_one_to_eight(monkeypatch: pytest.MonkeyPatch) -> None:
    """KPSANDBOX_WEBHOOK_PROCESSES is 1–8; 0 or 9 is a settings error naming the variable."""
    for bad in ("0", "9"):
        monkeypatch.setenv("KPSANDBOX_WEBHOOK_PROCESSES", bad)
        with pytest.raises(ValidationError, match="webhook_processes"):
            load_settings()
    monkeypatch.setenv("KPSANDBOX_WEBHOOK_PROCESSES", "3")
    assert load_settings().webhook_processes == 3
