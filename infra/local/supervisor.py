"""`kpsandbox serve`: the sandbox's apps as supervised children, in the foreground, until a signal.

One supervised app moves through these states; `Supervisor` is the only one that moves it:

    started ──exits──▶ waiting (backoff) ──delay over──▶ started
       │                  │
       │                  └─ RESTARTS_IN_A_ROW_MAX crashes in a row ─▶ serve gives up (SandboxError)
       ├─ exits, and its spec says restart=False ─▶ finished (left so)
       └─ SIGINT / SIGTERM to serve ─▶ stopped (SIGTERM, bounded wait, SIGKILL)

The backoff doubles from RESTART_BACKOFF_S_MIN up to RESTART_BACKOFF_S_MAX; an app that stayed up
for STEADY_AFTER_S starts again from the shortest delay. Children run in their own session, so a
Ctrl-C in the terminal reaches only the supervisor, which then stops them in order and waits.
"""

from __future__ import annotations

import signal
import subprocess
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from types import FrameType
from typing import Final

from infra.errors import SandboxError
from infra.local.apps import App, AppSpec, Say, describe_exit, stop_apps
from infra.settings import Settings

RESTART_BACKOFF_S_MIN: Final = 1.0
RESTART_BACKOFF_S_MAX: Final = 30.0
RESTARTS_IN_A_ROW_MAX: Final = 10
STEADY_AFTER_S: Final = 60.0
POLL_INTERVAL_S: Final = 0.2


def backoff_s(crashes_in_a_row: int) -> float:
    """The wait before restart number `crashes_in_a_row` (1, 2, 4, … seconds, at most the maximum)."""
    return min(RESTART_BACKOFF_S_MAX, RESTART_BACKOFF_S_MIN * 2 ** max(0, crashes_in_a_row - 1))


@dataclass
class Child:
    """One supervised app: its process (None while waiting or finished) and its crash record."""

    app: App
    process: subprocess.Popen[bytes] | None
    started_at: float
    crashes_in_a_row: int = 0
    restart_at: float | None = None

    @property
    def finished(self) -> bool:
        """It exited and will not be restarted."""
        return self.process is None and self.restart_at is None


class Supervisor:
    """Starts the apps, restarts crashed ones with a bounded backoff, stops them all on a signal."""

    def __init__(self, settings: Settings, specs: Sequence[AppSpec], say: Say) -> None:
        self.settings = settings
        self.specs = list(specs)
        self.say = say
        self.children: list[Child] = []
        self._stop = threading.Event()
        self.signal_name = ""  # set by SIGINT / SIGTERM

    def serve_until_signalled(self) -> None:
        """Starts every app, tends them until SIGINT or SIGTERM, then stops them all (also when
        starting fails or the supervisor gives up on an app)."""
        handlers = {sig: signal.signal(sig, self._on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            if self.start():
                while not self._stop.wait(POLL_INTERVAL_S):
                    self.tend(time.monotonic())
        finally:
            for sig, handler in handlers.items():
                signal.signal(sig, handler)
            if self.signal_name:
                self.say(f"{self.signal_name}: stopping the apps (each finishes its batch first)")
            self.stop()

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        # Only flags: printing from a signal handler could interleave with output in progress.
        del frame
        self.signal_name = signal.Signals(signum).name
        self._stop.set()

    def start(self) -> bool:
        """Takes over apps already running in the background (stops them), checks every port,
        starts each app and waits until each is healthy. False if a signal came first; SandboxError
        if an app exits or stays unhealthy."""
        taken_over = stop_apps(self.settings)
        if taken_over:
            self.say(f"stopped the background {', '.join(taken_over)} to supervise them here")
        apps = [App(spec, self.settings) for spec in self.specs]
        for app in apps:
            app.check_port_free()
        for app in apps:
            self.children.append(Child(app, app.start(), time.monotonic()))
        for child in self.children:
            assert child.process is not None
            timeout_s = self.settings.service_start_timeout_s
            if not child.app.wait_healthy(child.process.pid, timeout_s, self._stop.is_set):
                return False
            url = child.app.spec.url(self.settings)
            self.say(f"{child.app.spec.name}: {url or 'running'} (pid {child.process.pid}, log {child.app.log_file})")
        return True

    def tend(self, now: float) -> None:
        """Notices exited apps and restarts those whose backoff is over."""
        for child in self.children:
            if child.process is not None and (code := child.process.poll()) is not None:
                self._exited(child, code, now)
            elif child.restart_at is not None and now >= child.restart_at:
                child.restart_at = None
                child.process, child.started_at = child.app.start(), now
                self.say(f"{child.app.spec.name}: restarted (pid {child.process.pid})")

    def _exited(self, child: Child, code: int, now: float) -> None:
        app = child.app
        app.pid_file.unlink(missing_ok=True)
        child.process = None
        if not app.spec.restart:
            outcome = "finished" if code == 0 else f"{describe_exit(code)}, not restarted"
            self.say(f"{app.spec.name}: {outcome} — {app.log_tail()}")
            return
        if now - child.started_at >= STEADY_AFTER_S:
            child.crashes_in_a_row = 0
        child.crashes_in_a_row += 1
        if child.crashes_in_a_row > RESTARTS_IN_A_ROW_MAX:
            raise SandboxError(
                f"{app.spec.name} stopped {RESTARTS_IN_A_ROW_MAX + 1} times in a row, the last time it "
                f"{describe_exit(code)}: {app.log_tail()}",
                f"read {app.log_file}, fix the cause, then run `kpsandbox serve` again",
            )
        delay = backoff_s(child.crashes_in_a_row)
        child.restart_at = now + delay
        self.say(
            f"{app.spec.name}: {describe_exit(code)} — {app.log_tail()}; restarting in {delay:.0f} s "
            f"(crash {child.crashes_in_a_row} of at most {RESTARTS_IN_A_ROW_MAX} in a row)"
        )

    def stop(self) -> list[str]:
        """Stops every running app (SIGTERM, bounded wait, SIGKILL); returns the names stopped."""
        stopped = stop_apps(self.settings, self.specs)
        for child in self.children:
            if child.process is not None:
                child.process.poll()  # its status was collected by stop_apps; let Popen know
            child.process, child.restart_at = None, None
        return stopped
