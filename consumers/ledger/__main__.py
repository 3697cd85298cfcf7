"""`python -m consumers.ledger [--until-idle]`: the settlement process (what `kpsandbox settle` runs).

Reads the same KPSANDBOX_* settings as the CLI, serves the ledger's /metrics on
KPSANDBOX_LEDGER_METRICS_PORT while it runs, and prints a SandboxError as two lines (exit 2).
The consumer group comes from KPSANDBOX_LEDGER_GROUP (default kp-ledger).
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys

from consumers.ledger.consumer import GROUP_DEFAULT, Settler, settle_until_signalled
from infra.errors import run_main
from infra.settings import load_settings


def main() -> None:
    """Runs one ledger consumer with settings from the environment."""
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(message)s")
    settings = load_settings()
    settler = Settler(settings, group=os.environ.get("KPSANDBOX_LEDGER_GROUP", GROUP_DEFAULT), serve_metrics=True)
    summary = asyncio.run(settle_until_signalled(settler, until_idle="--until-idle" in sys.argv[1:]))
    print(summary.line())


if __name__ == "__main__":
    run_main(main)
