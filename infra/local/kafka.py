"""Apache Kafka in KRaft mode (one broker+controller, or a cluster of them), fetched from Maven
Central, run with java -cp.

Storage is formatted with `kafka.tools.StorageTool` and each broker served by `kafka.Kafka`, with
the jars and Java of kafka_jars.py, the layout and properties of kafka_config.py and, when secured,
the passwords of kafka_secrets.py; kafka_quorum.py reads which controller is active.
"""

from __future__ import annotations

import asyncio
import re
import secrets
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Final

from infra.errors import SandboxError
from infra.kafka_admin import live_broker_ids
from infra.kafka_clients import LOCAL_MECHANISM, PRINCIPALS, principals_dir
from infra.kafka_ports import KAFKA_PORT_STEP
from infra.kafka_tls import connection_problem, ensure_tls
from infra.local import netns, procs
from infra.local.base import ServiceStatus
from infra.local.kafka_config import (
    BROKER_USER,
    CLUSTER_FILE,
    Broker,
    ClusterRecord,
    brokers,
    every_broker_home,
    initial_controllers,
    jvm_options,
    kafka_home,
    kafka_uuid,
    listener_description,
    server_properties,
)
from infra.local.kafka_jars import check_java, fetch_jars
from infra.local.kafka_quorum import active_controller
from infra.local.kafka_secrets import (
    PASSWORD_BYTES,
    PRIVATE_FOLDER_MODE,
    java_arg_quoted,
    known_principal_passwords,
    new_principal_passwords,
    redact,
    write_private,
)
from infra.settings import Settings

LOG4J2: Final = Path(__file__).resolve().parent.parent / "kafka" / "log4j2.properties"
VERSION_LINE = re.compile(r"Kafka version: (\S+)")
FORMAT_TIMEOUT_S: Final = 120
BROKER_PASSWORD_FILE: Final = "broker"  # in principals_dir, beside the sandbox principals' files
STOP_TIMEOUT_S: Final = 30.0
# Brokers stopped because one of them never came up: without a quorum a controlled shutdown can
# only wait, and SIGKILL loses nothing a restart's log recovery does not bring back.
FAILED_START_STOP_S: Final = 10.0
BROKER_WAIT_S_MIN: Final = 5.0  # each broker gets at least this long, even after a slow one before it


class KafkaService:
    """The local Kafka — one broker, or a cluster of KPSANDBOX_KAFKA_BROKERS — or a check of an
    external cluster. Each broker's files and ports are in infra/local/kafka_config.py."""

    name = "kafka"

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.home = kafka_home(settings)
        self.brokers = brokers(settings)
        self.libs = settings.cache_dir / f"kafka-{settings.kafka_version}" / "libs"
        self.cluster_file = self.home / CLUSTER_FILE
        # Broker 1's files (the only broker's by default), for tools that look at one broker.
        first = self.brokers[0]
        self.pid_file, self.log_file, self.data_dir = first.pid_file, first.log_file, first.data_dir
        self.config_file, self.security_file = first.config_file, first.security_file
        self._started: list[int] = []  # PIDs spawned by this object's start(): stopped again if one never comes up

    @property
    def embedded(self) -> bool:
        return self.settings.kafka_embedded

    @property
    def endpoint(self) -> str:
        return self.settings.bootstrap_servers

    def prepare(self) -> None:
        """Checks Java, fetches the jars if missing, writes each broker's config, formats storage once.

        Secured (KPSANDBOX_KAFKA_SECURITY=sasl_ssl): also makes the CA and broker certificate
        (kept while valid) and, when no broker is formatted yet, one random password per sandbox
        principal; every broker of a cluster is formatted with the same SCRAM users.
        """
        java = check_java()
        fetch_jars(self.settings)
        self.home.mkdir(parents=True, exist_ok=True)
        record = self._cluster_record()
        formatted = [broker for broker in self.brokers if (broker.data_dir / "meta.properties").exists()]
        for broker in formatted:
            self._check_formatted_security(broker)
        broker_password = None
        if self.settings.kafka_security == "sasl_ssl":
            ensure_tls(self.settings)
            broker_password = self._broker_password(create=not formatted)
        for broker in self.brokers:
            text = server_properties(self.settings, broker.data_dir, broker_password, broker.node_id)
            write_private(broker.config_file, text)
        unformatted = [broker for broker in self.brokers if broker not in formatted]
        if not unformatted:
            return
        users: dict[str, str] = {}
        if broker_password is not None:
            principals = known_principal_passwords(self.settings) if formatted else None
            users = {BROKER_USER: broker_password} | (principals or new_principal_passwords(self.settings))
        if record is None:  # one broker: a standalone quorum, as it always was
            quorum = ["--standalone"]
            cluster_id = kafka_uuid(uuid.uuid4())  # 1 in 64 begins with '-': passed as --cluster-id=ID
        else:
            quorum = ["--initial-controllers", record.initial_controllers]
            cluster_id = record.cluster_id
        # One JVM each, side by side: a cluster formats in the time of one broker.
        with ThreadPoolExecutor(max_workers=len(unformatted)) as pool:
            list(pool.map(lambda broker: self._format(java, broker, cluster_id, quorum, users), unformatted))
        for broker in unformatted:
            broker.security_file.write_text(self.settings.kafka_security + "\n")

    def _cluster_record(self) -> ClusterRecord | None:
        """The cluster's record (made now for a new cluster); None for one broker. Refuses storage
        formatted for another broker count or other controller ports: its voter set names them."""
        wanted = self.settings.kafka_brokers
        record = None
        if self.cluster_file.exists():
            try:
                record = ClusterRecord.parse(self.cluster_file.read_text())
            except ValueError as error:
                raise SandboxError(
                    f"{self.cluster_file} is damaged ({error})",
                    f"`kpsandbox down`, remove {self.home} (its topics and messages are lost) and `kpsandbox up`",
                ) from error
        was = record.brokers if record else (1 if (self.home / "data" / "meta.properties").exists() else None)
        if was is not None and was != wanted:
            raise SandboxError(
                f"the local Kafka in {self.home} was made with KPSANDBOX_KAFKA_BROKERS={was}, not {wanted}",
                f"set KPSANDBOX_KAFKA_BROKERS={was} again; or `kpsandbox down`, remove {self.home} (its topics, "
                "messages and a secured broker's passwords are lost) and `kpsandbox up`; or use another "
                "KPSANDBOX_STATE_DIR",
            )
        if record is not None and record.controller_ports() != list(self.settings.kafka_controller_ports):
            raise SandboxError(
                f"the local Kafka cluster in {self.home} was made with controller ports "
                f"{', '.join(map(str, record.controller_ports()))} (its voters), not "
                f"{', '.join(map(str, self.settings.kafka_controller_ports))}",
                f"set KPSANDBOX_KAFKA_CONTROLLER_PORT={record.controller_ports()[0]} again; or `kpsandbox down`, "
                f"remove {self.home} and `kpsandbox up`",
            )
        if record is None and wanted > 1:
            directory_ids = [kafka_uuid(uuid.uuid4()) for _ in self.brokers]
            record = ClusterRecord(wanted, kafka_uuid(uuid.uuid4()), initial_controllers(self.settings, directory_ids))
            self.cluster_file.write_text(record.text())
        return record

    def _check_formatted_security(self, broker: Broker) -> None:
        """Formatted storage keeps the security it was made with (SCRAM users live in its metadata)."""
        was = self.formatted_security(broker)
        wanted = self.settings.kafka_security
        if was != wanted:
            raise SandboxError(
                f"the local Kafka data in {broker.data_dir} was made with KPSANDBOX_KAFKA_SECURITY={was}, not {wanted}",
                f"set KPSANDBOX_KAFKA_SECURITY={was} again; or `kpsandbox down`, remove {broker.data_dir} (its "
                "topics and messages are lost) and `kpsandbox up`; or use another KPSANDBOX_STATE_DIR",
            )
        if wanted == "sasl_ssl":
            missing = [p for p in PRINCIPALS if not (principals_dir(self.settings) / p).is_file()]
            if missing or not self._broker_password_file.is_file():
                raise SandboxError(
                    f"the secured local Kafka in {broker.data_dir} has lost principal passwords "
                    f"({principals_dir(self.settings)}: {', '.join(missing) or 'broker'} missing)",
                    f"`kpsandbox down`, remove {broker.data_dir} and `kpsandbox up` (new passwords are made at "
                    "format time; its topics and messages are lost)",
                )

    def formatted_security(self, broker: Broker | None = None) -> str:
        """What a broker's storage was formatted for; storage made before security existed is plaintext."""
        try:
            return (broker or self.brokers[0]).security_file.read_text().strip() or "plaintext"
        except FileNotFoundError:
            return "plaintext"

    @property
    def _broker_password_file(self) -> Path:
        return principals_dir(self.settings) / BROKER_PASSWORD_FILE

    def _broker_password(self, *, create: bool) -> str:
        if create:
            principals_dir(self.settings).mkdir(parents=True, exist_ok=True, mode=PRIVATE_FOLDER_MODE)
            password = secrets.token_urlsafe(PASSWORD_BYTES)
            write_private(self._broker_password_file, password + "\n")
            return password
        return self._broker_password_file.read_text().strip()

    def _format(
        self, java: str, broker: Broker, cluster_id: str, quorum: list[str], scram_users: dict[str, str]
    ) -> None:
        """Runs `StorageTool format` for one broker, with the SCRAM users, if any, created in the same step.

        The command line would carry every password, so it goes to the JVM in a private argument
        file (`java @file`, expanded by the launcher): `ps` shows only the file's name, and the
        file is removed as soon as the tool exits. Errors are redacted before they are raised.
        """
        args = ["kafka.tools.StorageTool", "format", f"--cluster-id={cluster_id}", "-c", str(broker.config_file),
                *quorum, "--ignore-formatted"]  # fmt: skip
        for user, password in scram_users.items():
            args += ["--add-scram", f"{LOCAL_MECHANISM}=[name={user},password={password}]"]
        with tempfile.TemporaryDirectory(prefix="kpsandbox-format-") as folder:  # mode 0700
            argfile = Path(folder) / "format.args"
            write_private(argfile, "\n".join(java_arg_quoted(arg) for arg in args) + "\n")
            completed = subprocess.run(
                [java, "-cp", f"{self.libs}/*", f"@{argfile}"],
                capture_output=True, text=True, timeout=FORMAT_TIMEOUT_S, check=False,
            )  # fmt: skip
        if completed.returncode != 0:
            reason = redact(completed.stderr.strip() or completed.stdout.strip(), scram_users.values())
            raise SandboxError(
                f"formatting Kafka storage in {broker.data_dir} failed: {reason[-400:]}",
                f"remove {broker.data_dir} and run `kpsandbox up` again",
            )

    def broker_pid(self, broker: Broker) -> int | None:
        """The PID of a running broker of ours, or None."""
        return procs.owned_pid(broker.pid_file, str(broker.home))

    def _owned_pid(self) -> int | None:
        return self.broker_pid(self.brokers[0])

    def claims(self, which: Iterable[Broker] | None = None) -> list[procs.PortClaim]:
        """The ports the brokers bind, each naming the broker and the setting it derives from."""
        claims: list[procs.PortClaim] = []
        for broker in self.brokers if which is None else which:
            offset = KAFKA_PORT_STEP * (broker.node_id - 1)
            label = "" if len(self.brokers) == 1 else f" broker {broker.name}"
            derived = f" (its port + {offset})" if offset else ""
            claims += [
                procs.PortClaim(broker.client_port, f"Kafka{label}{derived}", "KPSANDBOX_KAFKA_PORT"),
                procs.PortClaim(
                    broker.controller_port, f"the Kafka controller{label}{derived}", "KPSANDBOX_KAFKA_CONTROLLER_PORT"
                ),
            ]
        return claims

    def start(self) -> bool:
        """Starts every broker that is not running (all ports checked first); True if any started."""
        idle = [broker for broker in self.brokers if self.broker_pid(broker) is None]
        if not idle:
            return False
        procs.check_ports_free(self.claims(idle))
        java = check_java()
        isolated = self.settings.kafka_partitionable_broker
        if isolated is not None:
            netns.ensure()  # its namespace and link, and the other brokers' address
        for broker in idle:
            argv = [
                *(netns.command_prefix() if broker.node_id == isolated else []),
                java, *jvm_options(self.settings),
                "-Djava.awt.headless=true", f"-Dlog4j2.configurationFile={LOG4J2}",
                f"-Dkafka.logs.dir={broker.home / 'logs'}",
                "-cp", f"{self.libs}/*", "kafka.Kafka", str(broker.config_file),
            ]  # fmt: skip
            broker.log_file.unlink(missing_ok=True)
            self._started.append(procs.spawn(argv, log_file=broker.log_file, pid_file=broker.pid_file))
        return True

    def wait_healthy(self) -> None:
        """Waits (one start timeout for all) until every broker runs, listens and is registered
        with the cluster. One that never does is named with its log, and every broker this object
        started is stopped again: nothing is left half-up."""
        deadline = time.monotonic() + self.settings.service_start_timeout_s
        try:
            for broker in self.brokers:
                self._wait_broker(broker, deadline)
        except SandboxError:
            self._stop(self._started, timeout_s=FAILED_START_STOP_S)  # the spawned PIDs, whatever their state
            raise
        finally:
            self._started = []

    def _wait_broker(self, broker: Broker, deadline: float) -> None:
        """Waits for one broker; any broker that has exited meanwhile is named at once (in a cluster
        the one waited for may be stuck only because another, needed for a quorum, is gone)."""
        what = self._what(broker)

        def ready() -> bool:
            for other in self.brokers:
                if self.broker_pid(other) is None:
                    raise SandboxError(
                        f"{self._what(other)} exited during start-up; see {other.log_file}",
                        "read the log's last lines; `kpsandbox down` then `kpsandbox up` retries",
                    )
            if not procs.port_accepts(broker.client_port, broker.host):
                return False
            if broker.node_id in live_broker_ids(self.settings):
                return True
            self._raise_if_refused(broker)
            return False

        remaining = max(BROKER_WAIT_S_MIN, deadline - time.monotonic())
        procs.wait_until(ready, timeout_s=remaining, what=what, log_file=broker.log_file)

    def _what(self, broker: Broker) -> str:
        """How errors name a broker: 'Kafka' alone, 'Kafka broker kafka-2 (127.0.0.1:19094)' in a cluster."""
        return "Kafka" if len(self.brokers) == 1 else f"Kafka broker {broker.name} ({broker.endpoint})"

    def _raise_if_refused(self, broker: Broker) -> None:
        """A secured broker that listens but refuses our login or our CA will not change its mind:
        say why now instead of waiting out the start timeout."""
        if self.settings.kafka_protocol == "PLAINTEXT" or not procs.port_accepts(broker.client_port, broker.host):
            return
        problem = asyncio.run(connection_problem(self.settings, "admin"))
        if problem is not None:
            raise problem

    def stop(self) -> bool:
        """Stops every broker of this state folder, whatever KPSANDBOX_KAFKA_BROKERS is now."""
        pids = [procs.owned_pid(home / "kafka.pid", str(home)) for home in every_broker_home(self.settings)]
        stopped = self._stop(pids)
        for home in every_broker_home(self.settings):
            if procs.owned_pid(home / "kafka.pid", str(home)) is None:
                (home / "kafka.pid").unlink(missing_ok=True)
        if self.settings.kafka_partitionable_broker is not None:
            netns.remove()
        return stopped

    @staticmethod
    def _stop(pids: Iterable[int | None], *, timeout_s: float = STOP_TIMEOUT_S) -> bool:
        """SIGTERM to all at once, then wait for all (SIGKILL after `timeout_s`): a broker stopped
        alone after the others would wait for a controller quorum that is gone. True if anything was stopped."""
        running = [pid for pid in pids if pid is not None]
        if running:
            with ThreadPoolExecutor(max_workers=len(running)) as pool:
                list(pool.map(lambda pid: procs.terminate(pid, timeout_s=timeout_s), running))
        return bool(running)

    def version(self, broker: Broker | None = None) -> str:
        """The version a broker logged at start-up ('Kafka version: X')."""
        try:
            text = (broker or self.brokers[0]).log_file.read_text(errors="replace")
        except FileNotFoundError:
            return "unknown"
        found = VERSION_LINE.findall(text)
        return found[-1] if found else "unknown"

    def status(self) -> ServiceStatus:
        """One line for the whole of Kafka: the broker, or a cluster's summary (`statuses` has each broker)."""
        listener = listener_description(self.settings)
        if not self.embedded:
            healthy = broker_ready(self.settings)
            return ServiceStatus(self.name, self.endpoint, "external", healthy, f"external cluster, {listener}")
        lines = self.statuses()
        if len(lines) == 1:
            return lines[0]
        up = sum(line.healthy for line in lines)
        return ServiceStatus(self.name, self.endpoint, "embedded", up == len(lines),
                             f"{up} of {len(lines)} brokers healthy, {listener}", None,
                             sum(line.rss_bytes for line in lines))  # fmt: skip

    def statuses(self) -> list[ServiceStatus]:
        """One line per broker (name kafka, or kafka-1 … kafka-N): pid, health, endpoint, version;
        in a cluster the active controller is marked. Healthy: runs, listens and is registered."""
        if not self.embedded:
            return [self.status()]
        listener = listener_description(self.settings)
        pids = {broker.node_id: self.broker_pid(broker) for broker in self.brokers}
        listening = {b.node_id for b in self.brokers if pids[b.node_id] and procs.port_accepts(b.client_port, b.host)}
        live = live_broker_ids(self.settings) if listening else frozenset()
        leader = active_controller(self.settings) if len(self.brokers) > 1 else None
        lines = []
        for broker in self.brokers:
            pid = pids[broker.node_id]
            version = f"Apache Kafka {self.version(broker)} (KRaft), {listener}" if pid else "-"
            if pid and broker.node_id == leader:
                version += ", active controller"
            healthy = broker.node_id in listening and broker.node_id in live
            lines.append(ServiceStatus(broker.name, broker.endpoint, "embedded", healthy, version, pid,
                                       procs.rss_bytes(pid) if pid else 0))  # fmt: skip
        return lines


def broker_ready(settings: Settings) -> bool:
    """True when the first bootstrap server accepts TCP and answers a metadata request, asked the
    way every client of these settings asks (SASL_SSL as the admin principal when secured)."""
    host, _, port = settings.bootstrap_servers.split(",")[0].strip().rpartition(":")
    if not procs.port_accepts(int(port), host):
        return False
    return bool(live_broker_ids(settings))
