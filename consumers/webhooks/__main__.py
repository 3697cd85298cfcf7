"""`python -m consumers.webhooks`: the webhook dispatcher, which POSTs the API's events to the
tenants' endpoints and records every attempt (run it beside the API and the views consumer).

SIGINT/SIGTERM stop it: no new delivery is claimed, and attempts in flight finish (or time out)
and are recorded. A delivery claimed by a dispatcher that was killed falls due again when its
lease lapses. Its /metrics (job kpsandbox-webhooks) is served on KPSANDBOX_WEBHOOKS_METRICS_PORT while it
runs. A user-fixable failure (an unreachable database, a busy port) is two lines on stderr, exit status 2.

With KPSANDBOX_WEBHOOK_PROCESSES=N (default 2) this process starts N-1 more as its children (`--worker I`,
consumers/webhooks/workers.py) while a backlog lasts; they share its bounds, its /metrics and its stop.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import sys
from typing import Final

import uvloop

from consumers.webhooks.dispatcher import Dispatcher, DispatchSummary, run_dispatcher
from consumers.webhooks.metrics import WebhookMetrics, start_metrics_server
from consumers.webhooks.workers import COMMAND_BYTES_MAX, WORKER_FLAG, Workers, run_worker, scale
from infra import collector
from infra.errors import SandboxError, run_main
from infra.settings import Settings, load_settings

# The collector while dispatching (CPython: 700, 10, 10), everything alive at start frozen out of its sight
# (infra/collector.py), as the API does: with the defaults, each of the hundreds of attempts in flight
# lived through young collections into the old generations, and full collections walked the ~47,000
# objects of the start-up again and again (bench/RESULTS.md, "Webhooks"). Cycles (a raised exception's
# frames) are still collected, every 10,000 new containers.
GC_THRESHOLDS: Final = (10_000, 10, 10)


async def _run(settings: Settings, worker: int | None) -> DispatchSummary:
    with collector.collecting_rarely(GC_THRESHOLDS):
        return await _dispatch(settings, worker)


async def _dispatch(settings: Settings, worker: int | None) -> DispatchSummary:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    if worker is not None:
        commands = asyncio.StreamReader(limit=COMMAND_BYTES_MAX)
        await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(commands), sys.stdin)
        return await run_worker(
            lambda paused, metrics: run_dispatcher(settings, stop=paused, metrics=metrics, process=worker),
            stop,
            commands,
        )
    metrics = WebhookMetrics()
    # First: a busy port is reported before anything connects.
    server = await start_metrics_server(metrics, host=settings.metrics_host, port=settings.webhooks_metrics_port)
    workers = Workers(settings, metrics)
    dispatcher = Dispatcher(settings, metrics)
    scaler = asyncio.create_task(scale(dispatcher, workers, stop), name="webhooks-scale")
    scaler.add_done_callback(lambda _: stop.set())  # it ends only once `stop` is set, or by failing
    try:
        summary = await dispatcher.run(stop=stop)
    finally:
        stop.set()  # process 0 failed: its workers stop too
        await scaler  # it stops the workers
        server.close()
        await server.wait_closed()
    summary.add(workers.summary)
    return summary


def _worker_number(argv: list[str]) -> int | None:
    """`--worker I` (set by process 0 only): this is worker I; None: this is process 0."""
    if not argv:
        return None
    if len(argv) != 2 or argv[0] != WORKER_FLAG or not argv[1].isdigit():
        raise SandboxError(
            f"unexpected arguments {' '.join(argv)!r}",
            "run `python -m consumers.webhooks` without arguments; KPSANDBOX_* variables configure it",
        )
    return int(argv[1])


def _main() -> None:
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(message)s")
    logging.getLogger("consumers.webhooks").setLevel(logging.INFO)  # its scaling is worth a line in the log
    settings = load_settings()  # first: a bad setting is reported before anything starts
    worker = _worker_number(sys.argv[1:])
    summary = uvloop.run(_run(settings, worker))
    if worker is None:
        print(
            f"webhooks: {summary.attempts} attempts, {summary.delivered} delivered, {summary.retried} to retry,"
            f" {summary.failed} failed"
        )


def main() -> None:
    """Runs one webhook dispatcher with settings from the environment."""
    run_main(_main)


if __name__ == "__main__":
    main()
