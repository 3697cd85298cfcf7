"""A whole second stack goes up and comes down leaving no process behind; the CLI speaks clearly."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from infra.local import procs, stack
from infra.settings import Settings
from tests.conftest import REPO_ROOT

KPSANDBOX = str(REPO_ROOT / ".venv" / "bin" / "kpsandbox")
# Below Linux's ephemeral range (32768–60999): a long-running test stack's own outgoing connections
# once took 49092 as their local port, and this cycle's Kafka could not bind it.
CYCLE_PORTS = {
    "kafka_port": 29192,
    "kafka_controller_port": 29193,
    "postgres_port": 25532,
    "prometheus_port": 29190,
    "metrics_port": 29564,
}


def _env(settings: Settings) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("KPSANDBOX_")}
    env.update(
        KPSANDBOX_STATE_DIR=str(settings.state_dir),
        KPSANDBOX_KAFKA_PORT=str(settings.kafka_port),
        KPSANDBOX_KAFKA_CONTROLLER_PORT=str(settings.kafka_controller_port),
        KPSANDBOX_POSTGRES_PORT=str(settings.postgres_port),
        KPSANDBOX_PROMETHEUS_PORT=str(settings.prometheus_port),
        KPSANDBOX_METRICS_PORT=str(settings.metrics_port),
        KPSANDBOX_CACHE_DIR=str(settings.cache_dir),
    )
    return env


def _run(settings: Settings, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([KPSANDBOX, *args], env=_env(settings), capture_output=True, text=True, timeout=240)


def test_up_status_down_cycle_leaves_no_process(settings: Settings, tmp_path: Path) -> None:
    """CLI up → status (exit 0) → down → status (exit 1), and no process of that stack survives."""
    cycle = Settings(state_dir=tmp_path / "state", cache_dir=settings.cache_dir, **CYCLE_PORTS)
    first = _run(cycle, "up")
    assert first.returncode == 0, first.stderr
    assert "Apache Kafka 4." in first.stdout
    pids = [s.pid for s in stack.status(cycle)]
    assert all(pids), pids
    assert _run(cycle, "status").returncode == 0
    again = _run(cycle, "up")
    assert "already running" in again.stdout
    assert _run(cycle, "down").returncode == 0
    assert not any(procs.pid_alive(pid) for pid in pids if pid)
    after = _run(cycle, "status")
    assert after.returncode == 1 and "down" in after.stdout
    assert "nothing was running" in _run(cycle, "down").stdout


def test_invalid_setting_is_one_clear_error_not_a_traceback(tmp_path: Path) -> None:
    """A malformed KPSANDBOX_ value names the variable and exits 2 without a traceback."""
    env = {**os.environ, "KPSANDBOX_KAFKA_PORT": "not-a-port", "KPSANDBOX_STATE_DIR": str(tmp_path)}
    result = subprocess.run([KPSANDBOX, "status"], env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert "KPSANDBOX_KAFKA_PORT" in result.stderr
    assert "Traceback" not in result.stderr + result.stdout


def test_kafka_unreachable_in_external_mode_is_a_clear_error(tmp_path: Path) -> None:
    """Pointing at a Kafka that is not there gives the bootstrap address and the setting, exit 2."""
    env = {
        **os.environ,
        "KPSANDBOX_KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:1",
        "KPSANDBOX_STATE_DIR": str(tmp_path),
    }
    result = subprocess.run([KPSANDBOX, "topics", "create"], env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert "127.0.0.1:1" in result.stderr and "KPSANDBOX_KAFKA_BOOTSTRAP_SERVERS" in result.stderr
    assert "Traceback" not in result.stderr
