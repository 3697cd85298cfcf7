"""`python -m consumers.metrics` and infra.errors.run_main: user-fixable failures are two lines and exit 2."""

from __future__ import annotations

import os
import socket
import subprocess
import sys

import pytest
from pydantic import BaseModel, ValidationError

from infra.errors import EXIT_USER_ERROR, SandboxError, run_main
from infra.settings import Settings
from tests.conftest import REPO_ROOT

PROCESS_TIMEOUT_S = 60
NOT_LOCAL_HOST = "192.0.2.1"  # TEST-NET-1 (RFC 5737): never an address of this machine
NOWHERE = {  # services that are never reached: each case fails before connecting
    "KPSANDBOX_DATABASE_URL": "postgresql://nobody@127.0.0.1:1/none",
    "KPSANDBOX_KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:1",
}


def _raise(error: BaseException) -> None:
    raise error


def test_run_main_prints_a_sandbox_error_as_two_lines(capsys: pytest.CaptureFixture[str]) -> None:
    """A SandboxError becomes 'error: …' and 'what to do: …' on stderr with exit status 2."""
    with pytest.raises(SystemExit) as caught:
        run_main(lambda: _raise(SandboxError("the port 9 is busy", "set KPSANDBOX_X")))
    assert caught.value.code == EXIT_USER_ERROR
    assert capsys.readouterr().err.splitlines() == ["error: the port 9 is busy", "what to do: set KPSANDBOX_X"]


def test_run_main_names_a_bad_setting(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    """Settings refused by validation become two lines naming the variable, exit status 2."""
    monkeypatch.setenv("KPSANDBOX_METRICS_HOST", "http://x")
    with pytest.raises(SystemExit) as caught:
        run_main(Settings)
    lines = capsys.readouterr().err.splitlines()
    assert caught.value.code == EXIT_USER_ERROR and len(lines) == 2
    assert lines[0].startswith("error: invalid setting — KPSANDBOX_METRICS_HOST='http://x'")
    assert lines[1].startswith("what to do: fix or unset that environment variable")


def test_run_main_keeps_bugs_loud() -> None:
    """A validation error that is not about settings is a bug: it propagates with its traceback."""

    class Model(BaseModel):
        n: int

    with pytest.raises(ValidationError):
        run_main(lambda: Model(n="x"))  # type: ignore[arg-type]
    assert run_main(lambda: 42) == 42


def _metrics_process(**env: str) -> subprocess.CompletedProcess[str]:
    """Runs `python -m consumers.metrics --until-idle` with these KPSANDBOX_* variables (and none other)."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("KPSANDBOX_")}
    return subprocess.run(
        [sys.executable, "-m", "consumers.metrics", "--until-idle"],
        cwd=REPO_ROOT, env=clean | NOWHERE | env, capture_output=True, text=True,
        timeout=PROCESS_TIMEOUT_S, check=False,
    )  # fmt: skip


def _assert_two_line_error(result: subprocess.CompletedProcess[str]) -> list[str]:
    lines = result.stderr.splitlines()
    assert result.returncode == EXIT_USER_ERROR, result.stderr
    assert "Traceback" not in result.stderr and len(lines) == 2, result.stderr
    assert lines[0].startswith("error: ") and lines[1].startswith("what to do: ")
    return lines


def test_metrics_process_reports_a_bad_setting() -> None:
    """`python -m consumers.metrics` with an invalid setting: two lines naming the variable, exit 2."""
    lines = _assert_two_line_error(_metrics_process(KPSANDBOX_METRICS_PORT="abc"))
    assert "KPSANDBOX_METRICS_PORT='abc'" in lines[0]


def test_metrics_process_reports_a_busy_port() -> None:
    """`python -m consumers.metrics` on a taken port: two lines naming the port and its setting, exit 2."""
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        lines = _assert_two_line_error(_metrics_process(KPSANDBOX_METRICS_PORT=str(port)))
    assert str(port) in lines[0] and "KPSANDBOX_METRICS_PORT" in lines[1]


def test_metrics_process_binds_the_metrics_host() -> None:
    """The exporter binds KPSANDBOX_METRICS_HOST: a host that is not this machine's fails naming that setting."""
    lines = _assert_two_line_error(_metrics_process(KPSANDBOX_METRICS_HOST=NOT_LOCAL_HOST))
    assert NOT_LOCAL_HOST in lines[0] and "KPSANDBOX_METRICS_HOST" in lines[1]
