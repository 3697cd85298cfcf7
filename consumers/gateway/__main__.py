"""`python -m consumers.gateway`: the tenant gateway (see consumers/gateway/__init__.py).

SIGINT/SIGTERM stop it after the transaction in flight. `--until-idle` stops once nothing has
arrived for a second. A user-fixable failure is two lines on stderr, exit status 2.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal

from consumers.gateway.bridge import GatewaySummary, run_gateway
from infra.errors import run_main
from infra.settings import Settings, load_settings


async def _run(settings: Settings, *, until_idle: bool) -> GatewaySummary:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    return await run_gateway(settings, stop=stop, until_idle=until_idle)


def _main() -> None:
    parser = argparse.ArgumentParser(
        prog="python -m consumers.gateway",
        description="Copies each tenant's own Kafka requests onto the ledger's requests topic, stamped with "
        "the tenant they came from (secured broker: KPSANDBOX_KAFKA_SECURITY=sasl_ssl).",
    )
    parser.add_argument("--until-idle", action="store_true", help="stop once nothing arrives for a second")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(message)s")
    settings = load_settings()
    summary = asyncio.run(_run(settings, until_idle=args.until_idle))
    print(f"gateway: {summary.copied} requests copied in {summary.transactions} transactions")


def main() -> None:
    """Runs one tenant gateway with settings from the environment."""
    run_main(_main)


if __name__ == "__main__":
    main()
