"""`python -m consumers.webhooks`: the webhook dispatcher, which POSTs the API's events to the
tenants' endpoints and records every attempt (run it beside the API and the views consumer).

SIGINT/SIGTERM stop it: no new delivery is claimed, and attempts in flight finish (or time out)
and are recorded. A delivery claimed by a dispatcher that was killed falls due again when its
lease lapses. Its /metrics (job kpsandbox-webhooks) is served on KPSANDBOX_WEBHOOKS_METRICS_PORT while it
runs. A user-fixable failure (an unreachable database, a busy port) is two lines on stderr, exit status 2.
"""

from __future__ import annotations

import asyncio
import logging
import signal

import uvloop

from consumers.webhooks.dispatcher import DispatchSummary, run_dispatcher
from consumers.webhooks.metrics import WebhookMetrics, start_metrics_server
from infra.errors import run_main
from infra.settings import Settings, load_settings


async def _run(settings: Settings) -> DispatchSummary:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    metrics = WebhookMetrics()
    # First: a busy port is reported before anything connects.
    server = await start_metrics_server(metrics, host=settings.metrics_host, port=settings.webhooks_metrics_port)
    try:
        return await run_dispatcher(settings, stop=stop, metrics=metrics)
    finally:
        server.close()
        await server.wait_closed()


def _main() -> None:
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(message)s")
    settings = load_settings()  # first: a bad setting is reported before anything starts
    summary = uvloop.run(_run(settings))
    print(
        f"webhooks: {summary.attempts} attempts, {summary.delivered} delivered, {summary.retried} to retry,"
        f" {summary.failed} failed"
    )


def main() -> None:
    """Runs one webhook dispatcher with settings from the environment."""
    run_main(_main)


if __name__ == "__main__":
    main()
