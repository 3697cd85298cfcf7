"""`python -m consumers.ledger [--until-idle]`: the settlement process (what `kpsandbox settle` runs)."""

from __future__ import annotations

import asyncio
import logging
import os
import sys

from consumers.ledger.consumer import GROUP_DEFAULT, Settler, settle_until_signalled
from infra.settings import load_settings


def main() -> None:
    """Runs one ledger consumer with settings from the environment."""
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(message)s")
    settler = Settler(load_settings(), group=os.environ.get("KPSANDBOX_LEDGER_GROUP", GROUP_DEFAULT))
    summary = asyncio.run(settle_until_signalled(settler, until_idle="--until-idle" in sys.argv[1:]))
    print(
        f"settled {summary.requests} requests in {summary.batches} batches "
        f"({summary.transfers} transfers, {summary.dead_lettered} dead-lettered)"
    )


if __name__ == "__main__":
    main()
