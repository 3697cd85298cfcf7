"""Process plumbing shared by the local services: PID files, port checks, start and stop.

Only processes whose PID file we wrote are ever signalled, and only after checking that the
PID still belongs to a process whose command line mentions our state folder, so a recycled
PID of some unrelated program is never killed.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from infra.errors import SandboxError

STOP_TIMEOUT_S: Final = 20.0
POLL_INTERVAL_S: Final = 0.1
FREE_PORTS_TRIES_MAX: Final = 50  # free_ports_base: runs of ports the kernel offers before giving up
EXEC_WAIT_S: Final = 1.0  # how long a just-spawned process may read an empty command line (mid-exec)
EXEC_POLL_S: Final = 0.005
PR_SET_PDEATHSIG: Final = 1  # linux/prctl.h


@dataclass(frozen=True)
class PortClaim:
    """A port a service needs, and the setting that moves it."""

    port: int
    service: str
    setting: str


def die_with_parent() -> None:
    """Runs in a child before exec: the kernel sends it SIGTERM when its parent dies, even by SIGKILL
    (Linux; elsewhere nothing), so a child stops the way it would on `kpsandbox down`."""
    if sys.platform == "linux":
        ctypes.CDLL(None).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def port_is_free(port: int, host: str = "127.0.0.1") -> bool:
    """True when nothing listens on host:port (we can bind it ourselves)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as error:
            if error.errno in (errno.EADDRINUSE, errno.EACCES):
                return False
            raise
    return True


def free_ports_base(count: int, host: str = "127.0.0.1") -> int:
    """A port with `count` free ports from it upward (port_is_free for each, as a service's own check
    is): the kernel offers the first, at most FREE_PORTS_TRIES_MAX times. For tests and benchmarks that
    start several servers on consecutive ports."""
    for _ in range(FREE_PORTS_TRIES_MAX):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
            probe.bind((host, 0))
            base = int(probe.getsockname()[1])
        if base + count <= 65_535 and all(port_is_free(base + i, host) for i in range(count)):
            return base
    raise RuntimeError(f"found no {count} free ports in a row after {FREE_PORTS_TRIES_MAX} tries")


def port_accepts(port: int, host: str = "127.0.0.1", timeout_s: float = 0.5) -> bool:
    """True when a TCP connection to host:port succeeds."""
    try:
        with socket.create_connection((host, port), timeout=timeout_s):
            return True
    except OSError:
        return False


def check_ports_free(claims: Sequence[PortClaim]) -> None:
    """Raises a SandboxError naming the first busy port and the setting that moves it."""
    for claim in claims:
        if not port_is_free(claim.port):
            raise SandboxError(
                f"port {claim.port} needed by {claim.service} is already in use by another process",
                f"stop that process, or set {claim.setting} to a free port",
            )


def read_pid(pid_file: Path) -> int | None:
    """The PID recorded in pid_file, or None if there is no usable file."""
    try:
        text = pid_file.read_text().split()
    except FileNotFoundError:
        return None
    return int(text[0]) if text and text[0].isdigit() else None


def pid_alive(pid: int) -> bool:
    """True when a process with this PID exists and is not a zombie. A leader thread that has
    exited shows as Z while the process's other threads still run (a JVM shutting down): alive."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        # Field 3 (after the parenthesised command name) is the state; Z is a zombie.
        if stat.rpartition(")")[2].split()[0] != "Z":
            return True
        return any(task.name != str(pid) for task in Path(f"/proc/{pid}/task").iterdir())
    except (FileNotFoundError, ProcessLookupError):
        return False


def pid_cmdline(pid: int) -> str:
    """The command line of a process, NUL separators replaced by spaces."""
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except (FileNotFoundError, ProcessLookupError):
        return ""


def owned_pid(pid_file: Path, marker: str) -> int | None:
    """The live PID from pid_file, if its command line contains marker (our state folder). A process
    just spawned reads an empty command line until its exec completes: that is waited for (bounded)."""
    pid = read_pid(pid_file)
    if pid is None or not pid_alive(pid):
        return None
    command, deadline = pid_cmdline(pid), time.monotonic() + EXEC_WAIT_S
    while not command and pid_alive(pid) and time.monotonic() < deadline:
        time.sleep(EXEC_POLL_S)
        command = pid_cmdline(pid)
    return pid if marker in command else None


def rss_bytes(pid: int) -> int:
    """Resident memory of one process, from /proc (0 if it is gone)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except FileNotFoundError:
        return 0
    return 0


def spawn(argv: Sequence[str], *, log_file: Path, pid_file: Path, env: dict[str, str] | None = None) -> int:
    """Starts a long-running server detached from our session; records its PID."""
    log_file.parent.mkdir(parents=True, exist_ok=True)
    with log_file.open("ab") as log:
        process = subprocess.Popen(
            list(argv),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env=env,
        )
    pid_file.write_text(f"{process.pid}\n")
    return process.pid


def terminate(pid: int, *, timeout_s: float = STOP_TIMEOUT_S) -> bool:
    """SIGTERM, wait up to timeout_s, then SIGKILL. True if it stopped on SIGTERM."""
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return True
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        _reap(pid)
        if not pid_alive(pid):
            return True
        time.sleep(POLL_INTERVAL_S)
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        return True
    for _ in range(int(5 / POLL_INTERVAL_S)):
        _reap(pid)
        if not pid_alive(pid):
            break
        time.sleep(POLL_INTERVAL_S)
    return False


def _reap(pid: int) -> None:
    """Collects an exited child of ours so it does not linger as a zombie."""
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)


def wait_until(  # type: ignore[no-untyped-def]
    check, *, timeout_s: float, what: str, log_file: Path | None = None, hint: str | None = None
) -> None:
    """Polls check() until it is true; raises a SandboxError (pointing at the log) on timeout."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.2)
    where = f"; see its log at {log_file}" if log_file else ""
    raise SandboxError(
        f"{what} did not become healthy within {timeout_s:.0f} s{where}",
        hint
        or "read the log's last lines, fix the cause, then run `kpsandbox down` and `kpsandbox up` again "
        "(KPSANDBOX_SERVICE_START_TIMEOUT_S raises the wait)",
    )
