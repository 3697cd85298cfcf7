"""`python -m consumers.ledger [--until-idle]`: the settlement process (what `kpsandbox settle` runs)."""

from __future__ import annotations

import asyncio
import logging
import sys

from consumers.ledger.consumer import Settler
from infra.settings import load_settings


def main() -> None:
    """Runs one ledger consumer with settings from the environment."""
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(message)s")
    summary = asyncio.run(Settler(load_settings()).run(until_idle="--until-idle" in sys.argv[1:]))
    print(
        f"settled {summary.requests} requests in {summary.batches} batches "
        f"({summary.transfers} transfers, {summary.dead_lettered} dead-lettered)"
    )


if __name__ == "__main__":
    main()
