"""Every `kpsandbox` command starts without importing what only one command needs."""

from __future__ import annotations

import json
import subprocess
import sys

# Imported only by the commands that use them: matplotlib (the demo's charts, ~0.5 s), pyarrow and
# numpy (archive, replay, export, panels), faststream and uvicorn (`schemas`' AsyncAPI document),
# librdkafka (`archive`).
NOT_AT_START = ("matplotlib", "pyarrow", "numpy", "faststream", "uvicorn", "confluent_kafka")


def test_the_cli_starts_without_the_heavy_imports_of_single_commands() -> None:
    """`kpsandbox --help` took 2.5 s, 1.6 s of it imports (now 1.1–1.2 s): each of these was imported at
    start-up for one command, or through the simulation's panel for all that touch the simulation."""
    probe = f"import sys, json, kpsandbox.cli; print(json.dumps([m for m in {NOT_AT_START!r} if m in sys.modules]))"
    run = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=True)
    assert json.loads(run.stdout) == []
