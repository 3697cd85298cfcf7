"""`kpsandbox demo` refuses bad input before starting anything: one clear error, exit 2."""

from __future__ import annotations

import os
import socket
import subprocess
from pathlib import Path

from tests.conftest import REPO_ROOT

KPSANDBOX = str(REPO_ROOT / ".venv" / "bin" / "kpsandbox")


def _demo(tmp_path: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("KPSANDBOX_")}
    clean |= {"KPSANDBOX_STATE_DIR": str(tmp_path / "state"), **env}
    return subprocess.run([KPSANDBOX, "demo", *args], env=clean, capture_output=True, text=True, timeout=60)


def test_unknown_scenario_is_one_clear_error(tmp_path: Path) -> None:
    """An unknown scenario names the available ones, exits 2, and starts no service."""
    result = _demo(tmp_path, "--scenario", "utopia")
    assert result.returncode == 2
    assert "utopia" in result.stderr and "baseline" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "state").exists()


def test_busy_metrics_port_fails_before_anything_starts(tmp_path: Path) -> None:
    """A busy metrics port names the port and KPSANDBOX_METRICS_PORT; no state folder is created."""
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        port = squatter.getsockname()[1]
        result = _demo(tmp_path, KPSANDBOX_METRICS_PORT=str(port))
    assert result.returncode == 2
    assert str(port) in result.stderr and "KPSANDBOX_METRICS_PORT" in result.stderr
    assert not (tmp_path / "state").exists()


def test_impossible_sizes_are_refused(tmp_path: Path) -> None:
    """Zero citizens is refused with a hint, before any service starts."""
    result = _demo(tmp_path, "--citizens", "0")
    assert result.returncode == 2 and "--citizens" in result.stderr
    assert not (tmp_path / "state").exists()
