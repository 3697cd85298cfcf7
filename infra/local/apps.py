"""The sandbox's own processes — ledger, metrics, the API, its views consumer and the webhook
dispatcher — started in the background (`kpsandbox up --apps`) or supervised in the foreground
(`kpsandbox serve`, see infra/local/supervisor.py).

Adding an app is one entry in `APPS`: the module to run with `python -m`, and the setting that
holds its port (health is an HTTP GET on that port). Each app has a log file and a PID file in
`<state folder>/apps/`. `App` is the only writer of those PID files.

A PID file holds the PID and the process's start time (from /proc): a PID is trusted only while
a live process with that PID, that start time and our module on its command line exists. Anything
else — the process gone, the PID recycled by another program — is a stale file: it is removed,
never signalled. The file is written whole and renamed into place, so no reader sees half of it.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Final

from infra.errors import SandboxError
from infra.local import procs
from infra.local.base import ServiceStatus
from infra.settings import WILDCARD_HOSTS, Settings, settings_env

HEALTH_TIMEOUT_S: Final = 2.0
APP_STOP_TIMEOUT_S: Final = 30.0  # the ledger commits its batch in flight before it exits
APP_KILL_WAIT_S: Final = 5.0
POLL_INTERVAL_S: Final = 0.1
LOG_TAIL_LINES: Final = 3
APPS_FOLDER: Final = "apps"
START_MARK: Final = "=== kpsandbox starts"  # the log line before each start's output
APP_MODE: Final = "app"  # the `mode` of an app's ServiceStatus, to tell apps from services


@dataclass(frozen=True)
class AppSpec:
    """One of the sandbox's own processes: what to run and where it answers.

    `port_field` and `host_field` name Settings fields (so the URL follows the settings and an
    error can name the variable to change); `port_field=None` means the app serves nothing and
    is healthy while its process lives (the background economy).
    """

    name: str
    module: str
    port_field: str | None
    description: str
    host_field: str = "metrics_host"
    health_path: str = "/metrics"
    args: tuple[str, ...] = ()
    restart: bool = True  # False: a finished or crashed run must not be repeated (the economy)

    def argv(self) -> list[str]:
        """The command line: this interpreter, `-m module`, the app's arguments."""
        return [sys.executable, "-m", self.module, *self.args]

    def port(self, settings: Settings) -> int | None:
        """The port it serves on under these settings."""
        return int(getattr(settings, self.port_field)) if self.port_field else None

    def port_setting(self) -> str:
        """The environment variable that moves its port."""
        return f"KPSANDBOX_{(self.port_field or '').upper()}"

    def url(self, settings: Settings) -> str | None:
        """Where a client on this machine reaches its health (or metrics) endpoint."""
        port = self.port(settings)
        if port is None:
            return None
        return f"http://{connectable_host(str(getattr(settings, self.host_field)))}:{port}{self.health_path}"


LEDGER: Final = AppSpec("ledger", "consumers.ledger", "ledger_metrics_port", "the ledger's /metrics")
METRICS: Final = AppSpec("metrics", "consumers.metrics", "metrics_port", "the metrics exporter")
# The API's /readyz is the API process alone (PostgreSQL and Kafka answer it); its /healthz also
# needs the ledger and metrics, so it would tie the API's start to theirs (producers/api/routers/health.py).
API: Final = AppSpec("api", "producers.api", "api_port", "the HTTP API", host_field="api_host", health_path="/readyz")
# The API's read model of payments (statuses from the ledger's outcomes); it serves nothing, so it is
# healthy while its process lives, and its stored offsets make a restart exact.
VIEWS: Final = AppSpec("views", "consumers.views", None, "the API's payment views")
# The webhook dispatcher (consumers/webhooks), healthy when its /metrics answers; its claims are
# leases, so a restart resends at most the attempts that were in flight, with the same webhook-id.
WEBHOOKS: Final = AppSpec(
    "webhooks", "consumers.webhooks", "webhooks_metrics_port", "the webhook dispatcher's /metrics"
)
APPS: Final[tuple[AppSpec, ...]] = (LEDGER, METRICS, API, VIEWS, WEBHOOKS)
# Copies each tenant's own Kafka requests to the ledger (consumers/gateway); only a secured broker
# has tenants on Kafka, so it runs only there. Its transactions make a restart exact.
GATEWAY: Final = AppSpec("gateway", "consumers.gateway", None, "the tenant gateway")
# Only `kpsandbox serve --economy-rate N` runs it (with its arguments, see `economy`). A restart
# would produce its seed's events again from the first day, so a finished or crashed run stays so.
ECONOMY: Final = AppSpec("economy", "producers.live", None, "the background economy", restart=False)
KNOWN_APPS: Final[tuple[AppSpec, ...]] = (ECONOMY, *APPS, GATEWAY)  # what `down` stops: producers first


def app_specs(settings: Settings) -> tuple[AppSpec, ...]:
    """The apps these settings run: the five, and the tenant gateway when Kafka is secured."""
    return APPS if settings.kafka_protocol == "PLAINTEXT" else (*APPS, GATEWAY)


def economy(*, rate: float, seed: int, citizens: int, merchants: int) -> AppSpec:
    """The background economy: `python -m producers.live` producing about `rate` events per second."""
    args = ("--rate", str(rate), "--seed", str(seed), "--citizens", str(citizens), "--merchants", str(merchants))
    return replace(ECONOMY, args=args)


def connectable_host(host: str) -> str:
    """The host to connect to for a server bound to `host` (loopback for a wildcard; IPv6 in brackets)."""
    if host in WILDCARD_HOSTS:
        return "127.0.0.1"
    return f"[{host}]" if ":" in host else host


def http_ok(url: str, timeout_s: float = HEALTH_TIMEOUT_S) -> bool:
    """True when GET url answers 200 within timeout_s."""
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as response:
            return bool(response.status == 200)
    except (urllib.error.URLError, OSError, ValueError):
        return False


def start_ticks(pid: int) -> int | None:
    """When the process started, in clock ticks since boot (/proc/PID/stat field 22), or None."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    fields = stat.rpartition(")")[2].split()  # fields[0] is field 3 (the state)
    return int(fields[19]) if len(fields) > 19 else None


def describe_exit(code: int | None) -> str:
    """'exited with status 2', 'was killed by SIGKILL' (a negative status is a signal, as Popen reports it)."""
    if code is None:
        return "exited"
    if code < 0:
        with contextlib.suppress(ValueError):
            return f"was killed by {signal.Signals(-code).name}"
    return f"exited with status {code}"


def reap(pid: int) -> int | None:
    """Collects an exited child of ours (no zombie left); its exit status, or None if not collected."""
    try:
        collected, status = os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        return None
    return os.waitstatus_to_exitcode(status) if collected else None


class App:
    """One app under one state folder: the sole owner of its PID file."""

    def __init__(self, spec: AppSpec, settings: Settings) -> None:
        self.spec = spec
        self.settings = settings
        folder = settings.state_dir / APPS_FOLDER
        self.pid_file = folder / f"{spec.name}.pid"
        self.log_file = folder / f"{spec.name}.log"

    def owned_pid(self) -> int | None:
        """The PID of our running app, or None. A stale PID file is removed, never trusted."""
        try:
            fields = self.pid_file.read_text().split()
        except FileNotFoundError:
            return None
        if len(fields) == 2 and all(field.isdigit() for field in fields):
            pid, ticks = int(fields[0]), int(fields[1])
            # PID and start time identify the process. Its command line is a second check, skipped
            # while it reads empty: for an instant during exec, just after the parent wrote the file.
            command = procs.pid_cmdline(pid)
            ours = not command or f"-m {self.spec.module} " in command
            if procs.pid_alive(pid) and start_ticks(pid) == ticks and ours:
                return pid
        self.pid_file.unlink(missing_ok=True)
        return None

    def check_port_free(self) -> None:
        """A two-line SandboxError when another process holds the app's port."""
        port = self.spec.port(self.settings)
        if port is not None:
            procs.check_ports_free([procs.PortClaim(port, self.spec.description, self.spec.port_setting())])

    def start(self) -> subprocess.Popen[bytes]:
        """Starts the app detached (own session, stdin closed, output appended to its log) with
        exactly these settings in its environment, and records its PID. Does not wait."""
        self.pid_file.parent.mkdir(parents=True, exist_ok=True)
        env = {k: v for k, v in os.environ.items() if not k.startswith("KPSANDBOX_")} | settings_env(self.settings)
        with self.log_file.open("ab") as log:
            log.write(f"\n{START_MARK} {datetime.now(UTC).isoformat(timespec='seconds')} {self.spec.name}\n".encode())
            log.flush()
            process = subprocess.Popen(
                self.spec.argv(),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # Ctrl-C in a terminal reaches the supervisor, not the app
                env=env,
            )
        # Written whole and renamed into place: a concurrent reader never sees a half-written file.
        partial = self.pid_file.with_suffix(".pid.partial")
        partial.write_text(f"{process.pid} {start_ticks(process.pid) or 0}\n")
        partial.replace(self.pid_file)
        return process

    def healthy(self) -> bool:
        """Its endpoint answers 200 (an app without a port: its process runs)."""
        url = self.spec.url(self.settings)
        if url is None:
            return self.owned_pid() is not None
        return http_ok(url)

    def wait_healthy(self, pid: int, timeout_s: float, cancelled: Callable[[], bool] = lambda: False) -> bool:
        """Blocks until healthy (True) or cancelled() (False); a SandboxError quoting its log if it
        exits or times out."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if cancelled():
                return False
            if not procs.pid_alive(pid):
                code = reap(pid)
                self.pid_file.unlink(missing_ok=True)
                raise SandboxError(
                    f"{self.spec.name} {describe_exit(code)} while starting: {self.log_tail()}",
                    f"read {self.log_file}, fix the cause, then start it again",
                )
            if self.healthy():
                return True
            time.sleep(POLL_INTERVAL_S * 2)
        raise SandboxError(
            f"{self.spec.name} did not answer at {self.spec.url(self.settings)} within {timeout_s:.0f} s",
            f"read {self.log_file} (KPSANDBOX_SERVICE_START_TIMEOUT_S raises the wait)",
        )

    def log_tail(self) -> str:
        """The last lines its latest start wrote to the log, joined into one line."""
        try:
            text = self.log_file.read_text(errors="replace")
        except FileNotFoundError:
            return "(no log)"
        lines = text.rpartition(f"\n{START_MARK}")[2].strip().splitlines()[1:]  # after the latest header
        return " / ".join(lines[-LOG_TAIL_LINES:]) or "(no output)"

    def status(self) -> ServiceStatus:
        """Name, URL, health, PID and resident memory (`healthy` is False and `pid` None when it
        does not run)."""
        pid = self.owned_pid()
        endpoint = self.spec.url(self.settings) or "-"
        if pid is None:
            return ServiceStatus(self.spec.name, endpoint, APP_MODE, False, "-", detail=str(self.log_file))
        return ServiceStatus(self.spec.name, endpoint, APP_MODE, self.healthy(), "-", pid, procs.rss_bytes(pid),
                             str(self.log_file))  # fmt: skip


def apps(settings: Settings, specs: Sequence[AppSpec] = APPS) -> list[App]:
    """The apps of this state folder, in start order."""
    return [App(spec, settings) for spec in specs]


Say = Callable[[str], None]


def start_apps(settings: Settings, specs: Sequence[AppSpec] | None = None, say: Say = lambda _: None) -> list[str]:
    """Starts every app not already running, in the background, and waits until each is healthy.
    Returns the names started now. Ports are checked before anything starts; an app that fails to
    start has the ones started here stopped again."""
    chosen = app_specs(settings) if specs is None else specs
    pending = [app for app in apps(settings, chosen) if app.owned_pid() is None]
    for app in pending:
        app.check_port_free()
    started: list[tuple[App, int]] = []
    try:
        for app in pending:
            say(f"starting {app.spec.name}")
            started.append((app, app.start().pid))
        for app, pid in started:
            say(f"waiting for {app.spec.name}")
            app.wait_healthy(pid, settings.service_start_timeout_s)
    except BaseException:
        stop_apps(settings, [app.spec for app, _ in started])
        raise
    return [app.spec.name for app, _ in started]


def stop_apps(settings: Settings, specs: Sequence[AppSpec] = KNOWN_APPS) -> list[str]:
    """Stops the running apps: SIGTERM to all at once, up to APP_STOP_TIMEOUT_S for them to finish
    their batch and exit, then SIGKILL. Removes their PID files. Returns the names stopped."""
    running = [(app, pid) for app in apps(settings, specs) if (pid := app.owned_pid()) is not None]
    for _, pid in running:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
    pids = [pid for _, pid in running]
    left = wait_exited(pids, APP_STOP_TIMEOUT_S)
    for pid in left:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    wait_exited(left, APP_KILL_WAIT_S)
    for app, _ in running:
        app.pid_file.unlink(missing_ok=True)
    return [app.spec.name for app, _ in running]


def wait_exited(pids: Sequence[int], timeout_s: float) -> list[int]:
    """Waits (bounded) until every process has exited, reaping our children; the PIDs still alive."""
    deadline = time.monotonic() + timeout_s
    alive = list(pids)
    while alive:
        for pid in alive:
            reap(pid)
        alive = [pid for pid in alive if procs.pid_alive(pid)]
        if not alive or time.monotonic() >= deadline:
            break
        time.sleep(POLL_INTERVAL_S)
    return alive


def app_statuses(settings: Settings) -> list[ServiceStatus]:
    """One status per app, plus the economy while it runs (a stale PID file is removed on the way)."""
    statuses = [app.status() for app in apps(settings, app_specs(settings))]
    economy_app = App(ECONOMY, settings)
    if economy_app.owned_pid() is not None:
        statuses.append(economy_app.status())
    return statuses
