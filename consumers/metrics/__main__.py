"""`python -m consumers.metrics [--until-idle]`: the metrics process (what `kpsandbox metrics serve` runs).

SIGINT/SIGTERM stop it cleanly: the current batch finishes and the state is saved with its offsets.
Settings come from the environment exactly as for the CLI; a user-fixable failure (a bad setting,
a busy port) is printed as two lines with exit status 2, never a traceback (infra.errors.run_main).
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys

from consumers.metrics.consumer import GROUP_DEFAULT, MetricsSummary, lower_priority, run_metrics
from infra.errors import run_main
from infra.settings import Settings, load_settings


async def _run(settings: Settings, until_idle: bool) -> MetricsSummary:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    group = os.environ.get("KPSANDBOX_METRICS_GROUP", GROUP_DEFAULT)
    return await run_metrics(settings, until_idle=until_idle, stop=stop, group=group)


def _main() -> None:
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(message)s")
    settings = load_settings()  # first: a bad setting is reported before anything starts
    lower_priority()
    summary = asyncio.run(_run(settings, "--until-idle" in sys.argv[1:]))
    resumed = "resumed from the saved state, " if summary.resumed else ""
    print(f"metrics: {resumed}{summary.records} records read, state saved {summary.saves} time(s)")


def main() -> None:
    """Runs one metrics consumer with settings from the environment."""
    run_main(_main)


if __name__ == "__main__":
    main()
