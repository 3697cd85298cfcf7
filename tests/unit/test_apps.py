"""App supervision rules with real (stdlib) processes, no Kafka: PID file trust, stop, restart backoff."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from infra.errors import SandboxError
from infra.local import apps, procs
from infra.local.supervisor import RESTART_BACKOFF_S_MAX, RESTARTS_IN_A_ROW_MAX, Child, Supervisor, backoff_s
from infra.settings import Settings

# A long-running stdlib module that exits on SIGTERM, and one that exits at once (a "crash").
SERVER = apps.AppSpec("server", "http.server", None, "a test server", args=("0", "--bind", "127.0.0.1"))
CRASHER = apps.AppSpec("crasher", "this", None, "a test app that exits at once")


def _settings(tmp_path: Path) -> Settings:
    return Settings(state_dir=tmp_path / "state")


def _wait_exit(process: subprocess.Popen[bytes]) -> int:
    return process.wait(timeout=10)


def test_backoff_doubles_up_to_its_bound() -> None:
    """Restart delays double from 1 s and never exceed RESTART_BACKOFF_S_MAX."""
    delays = [backoff_s(n) for n in range(1, RESTARTS_IN_A_ROW_MAX + 1)]
    assert delays[:4] == [1.0, 2.0, 4.0, 8.0]
    assert max(delays) == RESTART_BACKOFF_S_MAX and delays == sorted(delays)


def test_url_follows_the_settings_and_connects_to_loopback_for_a_wildcard(tmp_path: Path) -> None:
    """The health URL uses the app's port setting; a wildcard bind host is reached on 127.0.0.1."""
    config = Settings(state_dir=tmp_path, metrics_host="0.0.0.0", ledger_metrics_port=41000)
    assert apps.LEDGER.url(config) == "http://127.0.0.1:41000/metrics"
    assert apps.LEDGER.port_setting() == "KPSANDBOX_LEDGER_METRICS_PORT"
    assert apps.connectable_host("::1") == "[::1]"


def test_a_started_app_is_owned_and_stopped_and_its_pid_file_removed(tmp_path: Path) -> None:
    """start records PID and start time; owned_pid trusts it; stop_apps stops it and removes the file."""
    config = _settings(tmp_path)
    app = apps.App(SERVER, config)
    process = app.start()
    try:
        assert app.owned_pid() == process.pid
        status = app.status()
        assert status.pid == process.pid and status.healthy and status.mode == apps.APP_MODE
        assert apps.stop_apps(config, [SERVER]) == ["server"]
        assert not procs.pid_alive(process.pid)
        assert not app.pid_file.exists()
        assert "kpsandbox starts" in app.log_file.read_text()
    finally:
        process.kill()
        process.wait()


# A process whose leader thread exits while another thread keeps running (as a JVM's can).
LEADER_GONE = (
    "import ctypes, threading, time; threading.Thread(target=time.sleep, args=(30,)).start(); "
    "ctypes.CDLL(None).pthread_exit(None)"
)


def test_a_process_whose_leader_thread_exited_is_alive_until_its_last_thread_ends() -> None:
    """/proc shows such a process as Z; it still runs, so it is alive until it is killed and reaped."""
    process = subprocess.Popen([sys.executable, "-c", LEADER_GONE])
    try:
        stat = Path(f"/proc/{process.pid}/stat")
        deadline = time.monotonic() + 10
        while stat.read_text().rpartition(")")[2].split()[0] != "Z" and time.monotonic() < deadline:
            time.sleep(0.05)
        assert stat.read_text().rpartition(")")[2].split()[0] == "Z", "the leader thread never exited"
        assert procs.pid_alive(process.pid)
        process.kill()
        deadline = time.monotonic() + 10
        while len(list(Path(f"/proc/{process.pid}/task").iterdir())) > 1 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not procs.pid_alive(process.pid)  # a zombie not yet reaped is dead
    finally:
        process.kill()
        process.wait()


@pytest.mark.parametrize("content", ["", "garbage\n", "123\n", "999999999 1\n"])
def test_unusable_or_dead_pid_files_are_removed(tmp_path: Path, content: str) -> None:
    """A PID file that is empty, malformed, old-format or names no process is stale: removed, not trusted."""
    app = apps.App(SERVER, _settings(tmp_path))
    app.pid_file.parent.mkdir(parents=True)
    app.pid_file.write_text(content)
    assert app.owned_pid() is None
    assert not app.pid_file.exists()
    assert app.status().pid is None and not app.status().healthy


def test_a_recycled_pid_is_never_signalled(tmp_path: Path) -> None:
    """A PID file naming a live process that is not our app (recycled PID) is removed; the process lives on."""
    config = _settings(tmp_path)
    app = apps.App(SERVER, config)
    app.pid_file.parent.mkdir(parents=True)
    stranger = subprocess.Popen(["sleep", "30"])
    try:
        # A recycled PID belongs to a process long past its exec. Just after Popen the command line can
        # still read empty (mid-exec), which owned_pid accepts on purpose (its own app's first instant).
        deadline = time.monotonic() + 5.0
        while not procs.pid_cmdline(stranger.pid).startswith("sleep") and time.monotonic() < deadline:
            time.sleep(0.01)
        app.pid_file.write_text(f"{stranger.pid} {apps.start_ticks(stranger.pid)}\n")
        assert apps.stop_apps(config, [SERVER]) == []
        assert stranger.poll() is None
        assert not app.pid_file.exists()
    finally:
        stranger.kill()
        stranger.wait()


def test_a_crashed_app_is_restarted_with_backoff_then_given_up_on(tmp_path: Path) -> None:
    """Each exit schedules a restart after the backoff; exits beyond the bound end serving with an error."""
    config = _settings(tmp_path)
    said: list[str] = []
    supervisor = Supervisor(config, [CRASHER], say=said.append)
    app = apps.App(CRASHER, config)
    child = Child(app, app.start(), started_at=0.0)
    supervisor.children.append(child)
    now = 0.0
    for crash in range(1, RESTARTS_IN_A_ROW_MAX + 1):
        assert child.process is not None
        _wait_exit(child.process)
        supervisor.tend(now)
        assert child.process is None and child.restart_at == now + backoff_s(crash)
        assert f"crash {crash} of at most" in said[-1] and "exited with status 0" in said[-1]
        now = child.restart_at
        supervisor.tend(now)  # the delay is over: started again
        assert child.process is not None and child.crashes_in_a_row == crash
    assert child.process is not None
    _wait_exit(child.process)
    with pytest.raises(SandboxError, match="times in a row"):
        supervisor.tend(now)
    supervisor.stop()


def test_an_app_that_stayed_up_starts_again_from_the_shortest_delay(tmp_path: Path) -> None:
    """After STEADY_AFTER_S of running, a crash counts as the first in a row again."""
    config = _settings(tmp_path)
    supervisor = Supervisor(config, [CRASHER], say=lambda _: None)
    app = apps.App(CRASHER, config)
    child = Child(app, app.start(), started_at=0.0, crashes_in_a_row=5)
    supervisor.children.append(child)
    assert child.process is not None
    _wait_exit(child.process)
    supervisor.tend(3_600.0)
    assert child.crashes_in_a_row == 1 and child.restart_at == 3_600.0 + backoff_s(1)


def test_an_app_that_must_not_restart_is_left_finished(tmp_path: Path) -> None:
    """The economy (restart=False) that exits is reported finished and not started again."""
    config = _settings(tmp_path)
    said: list[str] = []
    supervisor = Supervisor(config, [apps.AppSpec("once", "this", None, "a one-off", restart=False)], said.append)
    app = apps.App(supervisor.specs[0], config)
    child = Child(app, app.start(), started_at=time.monotonic())
    supervisor.children.append(child)
    assert child.process is not None
    _wait_exit(child.process)
    supervisor.tend(time.monotonic() + 3_600)
    assert child.finished and "once: finished" in said[-1]
    assert not app.pid_file.exists()


def test_an_empty_command_line_is_waited_for_not_taken_as_a_stranger(tmp_path: Path, monkeypatch) -> None:
    """The exec window, made certain: /proc/PID/cmdline reads empty for the first reads (as it does
    between execve's switch of memory and its copy of the arguments). owned_pid waits for the real
    command line instead of saying None; one that stays empty gives None within EXEC_WAIT_S."""
    pid = procs.spawn(["sleep", "30"], log_file=tmp_path / "sleep.log", pid_file=tmp_path / "sleep.pid")
    real = procs.pid_cmdline
    reads: list[int] = []

    def mid_exec(asked: int) -> str:
        reads.append(asked)
        return "" if len(reads) <= 3 else real(asked)

    try:
        monkeypatch.setattr(procs, "pid_cmdline", mid_exec)
        assert procs.owned_pid(tmp_path / "sleep.pid", "sleep 30") == pid
        assert len(reads) == 4  # three empty reads, then the command line
        monkeypatch.setattr(procs, "pid_cmdline", lambda asked: "")
        began = time.monotonic()
        assert procs.owned_pid(tmp_path / "sleep.pid", "sleep 30") is None
        assert procs.EXEC_WAIT_S <= time.monotonic() - began < procs.EXEC_WAIT_S + 1.0
    finally:
        procs.terminate(pid, timeout_s=5.0)


def test_a_just_spawned_server_is_owned_while_it_execs(tmp_path: Path) -> None:
    """Right after spawning, /proc/PID/cmdline can read empty until exec completes (16 of 300 Popens
    here): owned_pid said None, so a restarted broker was reported "exited during start-up" and
    stopped (CI's test_cluster failure, with an empty server.out). It now waits for the exec. Real
    spawns hit the window only sometimes (this passed before the fix too); the test above makes it
    certain."""
    for attempt in range(60):
        pid_file = tmp_path / f"{attempt}.pid"
        pid = procs.spawn(["sleep", "30"], log_file=tmp_path / "sleep.log", pid_file=pid_file)
        try:
            assert procs.owned_pid(pid_file, "sleep 30") == pid, f"attempt {attempt}"
        finally:
            procs.terminate(pid, timeout_s=5.0)
