"""The sandbox's own apps as real processes: `up --apps`, `status`, `down`, `serve`, `demo --keep-up`.

Each test points the CLI at the session's test stack as *external* services and gives the apps a
state folder and ports of their own, so nothing here starts or stops the shared services.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Final

import pytest

from infra.local import apps, procs
from infra.settings import Settings, settings_env, with_overrides
from tests.conftest import REPO_ROOT
from tests.integration.test_ledger_support import free_ports

KPSANDBOX: Final = str(REPO_ROOT / ".venv" / "bin" / "kpsandbox")
CLI_TIMEOUT_S: Final = 90.0
WAIT_S_MAX: Final = 45.0
LOG_TAIL_LINES: Final = 30
SERVE_STOP_S_MAX: Final = 40.0  # the apps' own bound is 30 s, plus the CLI's start-up


@pytest.fixture
def app_settings(fresh_settings: Settings, tmp_path: Path) -> Settings:
    """The test stack as external services; a fresh topic prefix and database; own ports and state folder."""
    metrics, ledger, webhooks, api = free_ports(4)
    return with_overrides(
        fresh_settings,
        state_dir=tmp_path / "state",
        kafka_bootstrap_servers=fresh_settings.bootstrap_servers,
        database_url=fresh_settings.dsn,
        prometheus_url=fresh_settings.prometheus,
        metrics_port=metrics,
        ledger_metrics_port=ledger,
        webhooks_metrics_port=webhooks,
        api_port=api,
    )


@pytest.fixture
def cli(app_settings: Settings) -> Iterator[Callable[..., subprocess.CompletedProcess[str]]]:
    """Runs `kpsandbox ARGS` with these settings; stops the apps afterwards whatever happened."""
    env = _env(app_settings)

    def run(*args: str, **extra_env: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([KPSANDBOX, *args], env=env | extra_env, capture_output=True, text=True,
                              timeout=CLI_TIMEOUT_S)  # fmt: skip

    yield run
    apps.stop_apps(app_settings)


def _env(settings: Settings) -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("KPSANDBOX_")} | settings_env(settings)


def _get(url: str) -> str:
    with urllib.request.urlopen(url, timeout=5) as response:
        assert response.status == 200
        return response.read().decode()


def _row(stdout: str, name: str) -> str:
    return next(line for line in stdout.splitlines() if line.strip("│ ").startswith(name + " "))


def _wait(
    check: Callable[[], bool], what: str, timeout_s: float = WAIT_S_MAX, logs: Callable[[], str] = lambda: ""
) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.2)
    raise AssertionError(f"{what} within {timeout_s:.0f} s\n{logs()}")


def _tails(*paths: Path) -> str:
    """The last LOG_TAIL_LINES lines of each file that exists: what a failed wait shows of the apps."""
    parts = [f"--- {path.name}\n" + "\n".join(path.read_text().splitlines()[-LOG_TAIL_LINES:])
             for path in paths if path.exists()]  # fmt: skip
    return "\n".join(parts)


def _pids(settings: Settings, specs: tuple[apps.AppSpec, ...] = apps.APPS) -> dict[str, int | None]:
    return {spec.name: apps.App(spec, settings).owned_pid() for spec in specs}


def test_up_apps_status_down(app_settings: Settings, cli: Callable[..., subprocess.CompletedProcess[str]]) -> None:
    """Stale PID files (a dead process; a live one that is not ours) are ignored, never signalled;
    `up --apps` starts ledger and metrics; status shows them healthy; /metrics answers; `down`
    stops both and removes their PID files."""
    folder = app_settings.state_dir / apps.APPS_FOLDER
    folder.mkdir(parents=True)
    gone = subprocess.Popen(["true"])
    gone.wait()
    bystander = subprocess.Popen(["sleep", "60"])
    try:
        (folder / "ledger.pid").write_text(f"{gone.pid} 1\n")
        (folder / "metrics.pid").write_text(f"{bystander.pid} {apps.start_ticks(bystander.pid)}\n")
        up = cli("up", "--apps")
        assert up.returncode == 0, up.stderr
        assert "started: ledger, metrics, api, views, webhooks" in up.stdout
        pids = _pids(app_settings)
        assert all(pids.values()) and bystander.pid not in pids.values(), pids
        status = cli("status")
        assert status.returncode == 0, status.stdout
        for name in ("ledger", "metrics", "api", "views", "webhooks"):
            assert "healthy" in _row(status.stdout, name) and str(pids[name]) in _row(status.stdout, name)
        ledger_text = _get(f"http://127.0.0.1:{app_settings.ledger_metrics_port}/metrics")
        assert "kpsandbox_ledger_batches_total" in ledger_text
        assert "kpsandbox_" in _get(f"http://127.0.0.1:{app_settings.metrics_port}/metrics")
        assert '"status":"ok"' in _get(f"http://127.0.0.1:{app_settings.api_port}/healthz")
        down = cli("down")
        assert down.returncode == 0 and "stopped: ledger, metrics, api, views, webhooks" in down.stdout
        assert not any(procs.pid_alive(pid) for pid in pids.values() if pid)
        assert not list(folder.glob("*.pid"))
        assert bystander.poll() is None  # the stranger's process was never signalled
    finally:
        bystander.kill()
        bystander.wait()
    # Each stopped cleanly on SIGTERM: the ledger printed its run summary.
    assert "settled 0 requests" in (folder / "ledger.log").read_text()


def test_busy_port_is_two_clear_lines_and_starts_nothing(
    app_settings: Settings, cli: Callable[..., subprocess.CompletedProcess[str]]
) -> None:
    """Another program on the ledger's port: exit 2 naming the port and its setting; no app is left running."""
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", app_settings.ledger_metrics_port))
        squatter.listen()
        up = cli("up", "--apps")
    assert up.returncode == 2
    assert str(app_settings.ledger_metrics_port) in up.stderr and "KPSANDBOX_LEDGER_METRICS_PORT" in up.stderr
    assert "Traceback" not in up.stderr
    assert _pids(app_settings) == {"ledger": None, "metrics": None, "api": None, "views": None, "webhooks": None}


def test_serve_restarts_a_crashed_app_and_stops_cleanly_on_sigint(app_settings: Settings, tmp_path: Path) -> None:
    """`serve --economy-rate`: apps healthy, the economy's traffic is settled, a killed ledger comes back,
    SIGINT exits 0 within a bound and leaves no app process and no PID file."""
    out = (tmp_path / "serve.out").open("w")
    serve = subprocess.Popen([KPSANDBOX, "serve", "--economy-rate", "100", "--economy-seed", "3"],
                             env=_env(app_settings), stdout=out, stderr=subprocess.STDOUT)  # fmt: skip
    try:
        ledger_url = apps.LEDGER.url(app_settings)
        assert ledger_url is not None
        served = (apps.ECONOMY, *apps.app_specs(app_settings))  # plaintext Kafka: no tenant gateway
        folder = app_settings.state_dir / apps.APPS_FOLDER

        def logs() -> str:
            return _tails(tmp_path / "serve.out", *(folder / f"{spec.name}.log" for spec in served))

        _wait(lambda: all(_pids(app_settings, served).values()), "every served app running", logs=logs)
        _wait(lambda: apps.http_ok(ledger_url) and apps.http_ok(str(apps.METRICS.url(app_settings))), "healthy",
              logs=logs)  # fmt: skip
        _wait(lambda: 'result="created"} 0.0' not in _get(ledger_url), "the ledger settling the economy", logs=logs)
        first = _pids(app_settings, served)
        os.kill(first["ledger"] or 0, signal.SIGKILL)
        _wait(lambda: _pids(app_settings)["ledger"] not in (None, first["ledger"]), "the ledger restarted")
        running = [pid for pid in _pids(app_settings, served).values() if pid]
        serve.send_signal(signal.SIGINT)
        assert serve.wait(SERVE_STOP_S_MAX) == 0
    finally:
        if serve.poll() is None:
            serve.kill()
            serve.wait()
        apps.stop_apps(app_settings)
        out.close()
    text = (tmp_path / "serve.out").read_text()
    assert "ledger: was killed by SIGKILL" in text and "restarting in 1 s" in text, text
    assert "services left running" in text
    assert not any(procs.pid_alive(pid) for pid in running)
    assert not list((app_settings.state_dir / apps.APPS_FOLDER).glob("*.pid"))
    assert "events sent" in (app_settings.state_dir / apps.APPS_FOLDER / "economy.log").read_text()


def test_demo_keep_up_leaves_every_printed_url_answering(
    app_settings: Settings, cli: Callable[..., subprocess.CompletedProcess[str]], tmp_path: Path
) -> None:
    """After `demo --keep-up` the ledger and metrics of that run still answer at the URLs it printed."""
    demo = cli("demo", "--keep-up", "--citizens", "60", "--merchants", "6", "--days", "3",
               "--reports", str(tmp_path / "reports"))  # fmt: skip
    assert demo.returncode == 0, demo.stdout + demo.stderr
    urls = [word.rstrip(",") for word in demo.stdout.split() if word.startswith("http://")]
    assert str(apps.LEDGER.url(app_settings)) in urls and str(apps.METRICS.url(app_settings)) in urls
    for url in urls:
        _get(url)
    assert "kpsandbox_ledger_requests_total" in _get(str(apps.LEDGER.url(app_settings)))
    assert cli("down").stdout.strip() == "stopped: ledger, metrics, api, views, webhooks"
