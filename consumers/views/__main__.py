"""`python -m consumers.views [--until-idle]`: the views process, which moves the API's payments and
top-ups on as the ledger's outcomes arrive (run it beside the ledger and the API).

SIGINT/SIGTERM stop it cleanly: the batch in flight commits with its offsets, or not at all.
KPSANDBOX_VIEWS_GROUP names its offsets (default kp-api-views). A user-fixable failure (an
unreachable service, a missing topic) is two lines on stderr with exit status 2.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys

from consumers.views.consumer import GROUP_DEFAULT, ViewsSummary, run_views
from infra.errors import run_main
from infra.settings import Settings, load_settings


async def _run(settings: Settings, until_idle: bool) -> ViewsSummary:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    group = os.environ.get("KPSANDBOX_VIEWS_GROUP", GROUP_DEFAULT)
    return await run_views(settings, until_idle=until_idle, stop=stop, group=group)


def _main() -> None:
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(message)s")
    settings = load_settings()  # first: a bad setting is reported before anything starts
    summary = asyncio.run(_run(settings, "--until-idle" in sys.argv[1:]))
    print(
        f"views: {summary.records} outcomes read, {summary.applied} applied, {summary.ignored} ignored,"
        f" {summary.unreadable} unreadable"
    )


def main() -> None:
    """Runs one views consumer with settings from the environment."""
    run_main(_main)


if __name__ == "__main__":
    main()
