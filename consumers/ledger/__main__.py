"""`python -m consumers.ledger [--until-idle] [--summary-json]`: the settlement process (what
`kpsandbox settle` runs; `settle --processes N` runs N of them, see processes.py).

Reads the same KPSANDBOX_* settings as the CLI, serves the ledger's /metrics on
KPSANDBOX_LEDGER_METRICS_PORT while it runs, and prints a SandboxError as two lines (exit 2).
The consumer group comes from KPSANDBOX_LEDGER_GROUP (default kp-ledger). With --summary-json
the last stdout line is the run's summary as JSON (for the supervisor to add up), not prose.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys

from consumers.ledger.consumer import GROUP_DEFAULT, Settler
from consumers.ledger.processes import SUMMARY_FLAG, settle_until_signalled, summary_json
from infra.errors import run_main
from infra.settings import load_settings


def main() -> None:
    """Runs one ledger consumer with settings from the environment."""
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(message)s")
    settings = load_settings()
    settler = Settler(settings, group=os.environ.get("KPSANDBOX_LEDGER_GROUP", GROUP_DEFAULT), serve_metrics=True)
    summary = asyncio.run(settle_until_signalled(settler, until_idle="--until-idle" in sys.argv[1:]))
    print(summary_json(summary) if SUMMARY_FLAG in sys.argv[1:] else summary.line())


if __name__ == "__main__":
    run_main(main)
