"""PostgreSQL from Debian's packages, initialised into the state folder and bound to 127.0.0.1.

When the sandbox runs as root, the server runs as the `postgres` OS user (PostgreSQL refuses
root). If that user cannot reach the state folder (e.g. it sits under /root), the data lives
under /var/tmp/kpsandbox/ and the state folder holds a symlink to it.
"""

from __future__ import annotations

import hashlib
import os
import pwd
import shutil
import subprocess
from pathlib import Path
from typing import Final

from infra.errors import SandboxError
from infra.local import procs
from infra.local.base import ServiceStatus
from infra.settings import Settings

PG_BIN_ROOT: Final = Path("/usr/lib/postgresql")
PG_CTL_TIMEOUT_S: Final = 120
SERVER_USER_WHEN_ROOT: Final = "postgres"


def pg_bin_dir() -> Path:
    """The newest installed PostgreSQL's bin folder, or a SandboxError saying what to install."""
    versions = sorted(
        (p for p in PG_BIN_ROOT.glob("*/bin") if (p / "pg_ctl").exists()),
        key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0,
    )
    if versions:
        return versions[-1]
    on_path = shutil.which("pg_ctl")
    if on_path:
        return Path(on_path).parent
    raise SandboxError(
        "PostgreSQL server binaries (pg_ctl, initdb) were not found",
        "install them (Debian/Ubuntu: `apt-get install postgresql`), or set KPSANDBOX_DATABASE_URL "
        "to an existing PostgreSQL",
    )


def _as_server_user(argv: list[str]) -> list[str]:
    """Prefixes argv so it runs as the postgres user when we are root."""
    if os.geteuid() != 0:
        return argv
    return ["runuser", "-u", SERVER_USER_WHEN_ROOT, "--", *argv]


class PostgresService:
    """The local PostgreSQL server, or a check of an external one."""

    name = "postgres"

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.home = settings.state_dir / "postgres"

    @property
    def embedded(self) -> bool:
        return self.settings.postgres_embedded

    @property
    def endpoint(self) -> str:
        return self.settings.dsn

    @property
    def data_dir(self) -> Path:
        # Resolved: when home is a symlink to /var/tmp, the server user must not walk the link's parents.
        return self.home.resolve() / "data"

    @property
    def log_file(self) -> Path:
        return self.home.resolve() / "server.log"

    def prepare(self) -> None:
        """Creates the data folder (owned by the server user) and runs initdb once."""
        bin_dir = pg_bin_dir()
        self._make_home()
        if (self.data_dir / "PG_VERSION").exists():
            return
        completed = subprocess.run(
            _as_server_user([str(bin_dir / "initdb"), "-D", str(self.data_dir), "-A", "trust",
                             "-U", "postgres", "-E", "UTF8", "--no-instructions"]),
            capture_output=True, text=True, timeout=PG_CTL_TIMEOUT_S, check=False,
        )  # fmt: skip
        if completed.returncode != 0:
            raise SandboxError(
                f"initdb into {self.data_dir} failed: {completed.stderr.strip()[-400:]}",
                f"remove {self.home} and run `kpsandbox up` again",
            )

    def _make_home(self) -> None:
        if self.home.exists() or self.home.is_symlink():
            return
        self.settings.state_dir.mkdir(parents=True, exist_ok=True)
        if os.geteuid() != 0:
            self.home.mkdir()
            return
        target = self.home
        if not self._state_reachable():
            digest = hashlib.sha1(str(self.settings.state_dir.resolve()).encode()).hexdigest()[:12]
            target = Path("/var/tmp/kpsandbox") / digest / "postgres"
            target.parent.mkdir(parents=True, exist_ok=True)
            os.chmod(target.parent.parent, 0o755)
            os.chmod(target.parent, 0o755)
        target.mkdir(parents=True, exist_ok=True)
        server = pwd.getpwnam(SERVER_USER_WHEN_ROOT)
        os.chown(target, server.pw_uid, server.pw_gid)
        if target != self.home:
            self.home.symlink_to(target, target_is_directory=True)

    def _state_reachable(self) -> bool:
        probe = subprocess.run(_as_server_user(["test", "-x", str(self.settings.state_dir)]), check=False)
        return probe.returncode == 0

    def _postmaster_pid(self) -> int | None:
        pid = procs.read_pid(self.data_dir / "postmaster.pid")
        return pid if pid is not None and procs.pid_alive(pid) else None

    def start(self) -> bool:
        if self._postmaster_pid() is not None:
            return False
        procs.check_ports_free([procs.PortClaim(self.settings.postgres_port, "PostgreSQL", "KPSANDBOX_POSTGRES_PORT")])
        options = (
            f"-p {self.settings.postgres_port} -c listen_addresses=127.0.0.1 "
            f"-c unix_socket_directories={self.home.resolve()} -c max_connections=100 "
            "-c shared_buffers=128MB -c synchronous_commit=on -c fsync=on"
        )
        completed = subprocess.run(
            _as_server_user([str(pg_bin_dir() / "pg_ctl"), "-D", str(self.data_dir), "-o", options,
                             "-l", str(self.log_file), "-w", "-t", "60", "start"]),
            capture_output=True, text=True, timeout=PG_CTL_TIMEOUT_S, check=False,
        )  # fmt: skip
        if completed.returncode != 0:
            raise SandboxError(
                f"PostgreSQL did not start: {completed.stdout.strip()[-300:]}; see {self.log_file}",
                "read the log's last lines, fix the cause, then run `kpsandbox up` again",
            )
        return True

    def wait_healthy(self) -> None:
        from infra.db import admin_dsn, database_answers, ensure_database

        if self.embedded:
            # The server first (its superuser database), then our role and database, then our DSN.
            procs.wait_until(
                lambda: database_answers(admin_dsn(self.settings)) is not None,
                timeout_s=self.settings.service_start_timeout_s,
                what="PostgreSQL",
                log_file=self.log_file,
            )
            ensure_database(self.settings)
        procs.wait_until(
            lambda: database_answers(self.endpoint) is not None,
            timeout_s=self.settings.service_start_timeout_s,
            what="PostgreSQL",
            log_file=self.log_file,
        )

    def restart(self) -> None:
        """Restarts the server in place (fast shutdown); used to prove clients survive it."""
        subprocess.run(
            _as_server_user([str(pg_bin_dir() / "pg_ctl"), "-D", str(self.data_dir), "-m", "fast",
                             "-l", str(self.log_file), "-w", "-t", "60", "restart"]),
            capture_output=True, text=True, timeout=PG_CTL_TIMEOUT_S, check=True,
        )  # fmt: skip

    def stop(self) -> bool:
        if self._postmaster_pid() is None:
            return False
        subprocess.run(
            _as_server_user([str(pg_bin_dir() / "pg_ctl"), "-D", str(self.data_dir), "-m", "fast",
                             "-w", "-t", "60", "stop"]),
            capture_output=True, text=True, timeout=PG_CTL_TIMEOUT_S, check=False,
        )  # fmt: skip
        return True

    def status(self) -> ServiceStatus:
        from infra.db import database_answers

        redacted = _redact(self.endpoint)
        if not self.embedded:
            version = database_answers(self.endpoint)
            return ServiceStatus(self.name, redacted, "external", version is not None, version or "-")
        pid = self._postmaster_pid()
        version = database_answers(self.endpoint) if pid else None
        return ServiceStatus(self.name, redacted, "embedded", version is not None, version or "-", pid,
                             procs.rss_bytes(pid) if pid else 0)  # fmt: skip


def _redact(dsn: str) -> str:
    """Hides a password in a DSN before printing it."""
    head, at, tail = dsn.rpartition("@")
    if not at or ":" not in head.split("//", 1)[-1]:
        return dsn
    scheme, _, userinfo = head.partition("//")
    return f"{scheme}//{userinfo.split(':')[0]}:***@{tail}"
