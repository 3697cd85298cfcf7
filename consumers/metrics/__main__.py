"""`python -m consumers.metrics [--until-idle]`: the metrics process (what `kpsandbox metrics serve` runs).

SIGINT/SIGTERM stop it cleanly: the current batch finishes and the state is saved with its offsets.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys

from consumers.metrics.consumer import GROUP_DEFAULT, MetricsSummary, lower_priority, run_metrics
from infra.errors import SandboxError
from infra.settings import load_settings


async def _run(until_idle: bool) -> MetricsSummary:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    group = os.environ.get("KPSANDBOX_METRICS_GROUP", GROUP_DEFAULT)
    return await run_metrics(load_settings(), until_idle=until_idle, stop=stop, group=group)


def main() -> None:
    """Runs one metrics consumer with settings from the environment."""
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(message)s")
    lower_priority()
    try:
        summary = asyncio.run(_run("--until-idle" in sys.argv[1:]))
    except SandboxError as error:
        print(f"error: {error.message}\nwhat to do: {error.hint}", file=sys.stderr)
        sys.exit(2)
    resumed = "resumed from the saved state, " if summary.resumed else ""
    print(f"metrics: {resumed}{summary.records} records read, state saved {summary.saves} time(s)")


if __name__ == "__main__":
    main()
