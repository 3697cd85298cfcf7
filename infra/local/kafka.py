"""Apache Kafka in KRaft mode (one broker+controller), fetched from Maven Central, run with java -cp.

The jars of `org.apache.kafka:kafka_2.13` and its runtime dependencies are copied by Maven
into `<cache_dir>/kafka-<version>/libs` once (the recipe is infra/kafka/pom.xml). Storage is
formatted with `kafka.tools.StorageTool` and the broker served by `kafka.Kafka`.
"""

from __future__ import annotations

import asyncio
import base64
import os
import re
import secrets
import shutil
import subprocess
import tempfile
import uuid
from collections.abc import Iterable
from pathlib import Path
from typing import Final

from infra.errors import SandboxError
from infra.kafka_clients import LOCAL_MECHANISM, PRINCIPALS, principals_dir, username
from infra.kafka_tls import connection_problem, ensure_tls, tls_files
from infra.local import procs
from infra.local.base import ServiceStatus
from infra.settings import Settings

POM: Final = Path(__file__).resolve().parent.parent / "kafka" / "pom.xml"
LOG4J2: Final = Path(__file__).resolve().parent.parent / "kafka" / "log4j2.properties"
JAVA_MAJOR_MIN: Final = 17
MVN_TIMEOUT_S: Final = 600
VERSION_LINE = re.compile(r"Kafka version: (\S+)")
FORMAT_TIMEOUT_S: Final = 120
# The broker's own principal (inter-broker and controller traffic); a super user, like kp-admin.
BROKER_USER: Final = "kp-broker"
BROKER_PASSWORD_FILE: Final = "broker"  # in principals_dir, beside the sandbox principals' files
PASSWORD_BYTES: Final = 24  # secrets.token_urlsafe: 32 characters of [A-Za-z0-9_-]
PRIVATE_MODE: Final = 0o600
PRIVATE_FOLDER_MODE: Final = 0o700
REDACTED: Final = "[redacted]"


def _server_properties(settings: Settings, data_dir: Path, broker_password: str | None = None) -> str:
    """Broker config sized for a 2-core box; everything bound to 127.0.0.1.

    With `broker_password` (KPSANDBOX_KAFKA_SECURITY=sasl_ssl) the listeners are secured as
    `_secured_listeners` says; otherwise both listeners are PLAINTEXT.
    """
    if broker_password is None:
        listeners = [
            f"listeners=PLAINTEXT://127.0.0.1:{settings.kafka_port},"
            f"CONTROLLER://127.0.0.1:{settings.kafka_controller_port}",
            f"advertised.listeners=PLAINTEXT://127.0.0.1:{settings.kafka_port}",
            "controller.listener.names=CONTROLLER",
            "inter.broker.listener.name=PLAINTEXT",
            "listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
        ]
    else:
        listeners = _secured_listeners(settings, broker_password)
    return "\n".join(
        [
            "process.roles=broker,controller",
            "node.id=1",
            f"controller.quorum.bootstrap.servers=127.0.0.1:{settings.kafka_controller_port}",
            *listeners,
            f"log.dirs={data_dir}",
            "num.partitions=3",
            "num.network.threads=2",
            "num.io.threads=4",
            "offsets.topic.replication.factor=1",
            "offsets.topic.num.partitions=6",
            "transaction.state.log.replication.factor=1",
            "transaction.state.log.min.isr=1",
            "share.coordinator.state.topic.replication.factor=1",
            "share.coordinator.state.topic.min.isr=1",
            "group.initial.rebalance.delay.ms=0",
            "auto.create.topics.enable=false",
            "log.retention.check.interval.ms=60000",
            "",
        ]
    )


def _secured_listeners(settings: Settings, broker_password: str) -> list[str]:
    """SASL_SSL everywhere, each listener with the one mechanism it can use, and ACLs enforced.

    - CLIENT (KPSANDBOX_KAFKA_PORT): SCRAM-SHA-512 over TLS, the only way in for clients. It also
      carries inter-broker traffic, as `kp-broker` (a SCRAM user made at format time).
    - CONTROLLER: TLS with SASL PLAIN for the one static user `kp-broker` in its JAAS config —
      KRaft reads SCRAM credentials from the metadata log the controller itself serves, so the
      controller listener cannot use SCRAM.
    - StandardAuthorizer with allow.everyone.if.no.acl.found=false: a principal may do only what
      an ACL grants. The super users are the admin principal and the broker itself; ANONYMOUS is
      not one, and no listener lets an unauthenticated client reach it.
    """
    tls = tls_files(settings)
    user = BROKER_USER
    return [
        f"listeners=CLIENT://127.0.0.1:{settings.kafka_port},CONTROLLER://127.0.0.1:{settings.kafka_controller_port}",
        f"advertised.listeners=CLIENT://127.0.0.1:{settings.kafka_port}",
        "controller.listener.names=CONTROLLER",
        "inter.broker.listener.name=CLIENT",
        "listener.security.protocol.map=CLIENT:SASL_SSL,CONTROLLER:SASL_SSL",
        f"sasl.enabled.mechanisms={LOCAL_MECHANISM}",
        f"listener.name.client.sasl.enabled.mechanisms={LOCAL_MECHANISM}",
        "listener.name.controller.sasl.enabled.mechanisms=PLAIN",
        f"sasl.mechanism.inter.broker.protocol={LOCAL_MECHANISM}",
        "sasl.mechanism.controller.protocol=PLAIN",
        f"listener.name.client.{LOCAL_MECHANISM.lower()}.sasl.jaas.config="
        f'org.apache.kafka.common.security.scram.ScramLoginModule required username="{user}" '
        f'password="{broker_password}";',
        "listener.name.controller.plain.sasl.jaas.config="
        f'org.apache.kafka.common.security.plain.PlainLoginModule required username="{user}" '
        f'password="{broker_password}" user_{user}="{broker_password}";',
        "ssl.keystore.type=PEM",
        f"ssl.keystore.location={tls.broker_keystore}",
        "ssl.truststore.type=PEM",
        f"ssl.truststore.location={tls.ca_cert}",
        "ssl.endpoint.identification.algorithm=https",
        "ssl.client.auth=none",
        "authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer",
        "allow.everyone.if.no.acl.found=false",
        f"super.users=User:{username('admin')};User:{user}",
    ]


class KafkaService:
    """The local Kafka broker, or a check of an external cluster."""

    name = "kafka"

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.home = settings.state_dir / "kafka"
        self.libs = settings.cache_dir / f"kafka-{settings.kafka_version}" / "libs"
        self.pid_file = self.home / "kafka.pid"
        self.log_file = self.home / "server.out"
        self.config_file = self.home / "server.properties"
        self.data_dir = self.home / "data"
        self.security_file = self.home / "data.security"  # what the storage was formatted for

    @property
    def embedded(self) -> bool:
        return self.settings.kafka_embedded

    @property
    def endpoint(self) -> str:
        return self.settings.bootstrap_servers

    def prepare(self) -> None:
        """Checks Java, fetches the jars if missing, writes the config, formats storage once.

        Secured (KPSANDBOX_KAFKA_SECURITY=sasl_ssl): also makes the CA and broker certificate
        (kept while valid) and, at format time only, one random password per sandbox principal.
        """
        java = check_java()
        fetch_jars(self.settings)
        self.home.mkdir(parents=True, exist_ok=True)
        formatted = (self.data_dir / "meta.properties").exists()
        if formatted:
            self._check_formatted_security()
        broker_password = None
        if self.settings.kafka_security == "sasl_ssl":
            ensure_tls(self.settings)
            broker_password = self._broker_password(create=not formatted)
        _write_private(self.config_file, _server_properties(self.settings, self.data_dir, broker_password))
        if formatted:
            return
        users: dict[str, str] = {}
        if broker_password is not None:
            users = {BROKER_USER: broker_password} | _new_principal_passwords(self.settings)
        self._format(java, users)
        self.security_file.write_text(self.settings.kafka_security + "\n")

    def _check_formatted_security(self) -> None:
        """Formatted storage keeps the security it was made with (SCRAM users live in its metadata)."""
        was = self.formatted_security()
        wanted = self.settings.kafka_security
        if was != wanted:
            raise SandboxError(
                f"the local Kafka data in {self.data_dir} was made with KPSANDBOX_KAFKA_SECURITY={was}, not {wanted}",
                f"set KPSANDBOX_KAFKA_SECURITY={was} again; or `kpsandbox down`, remove {self.data_dir} (its "
                "topics and messages are lost) and `kpsandbox up`; or use another KPSANDBOX_STATE_DIR",
            )
        if wanted == "sasl_ssl":
            missing = [p for p in PRINCIPALS if not (principals_dir(self.settings) / p).is_file()]
            if missing or not self._broker_password_file.is_file():
                raise SandboxError(
                    f"the secured local Kafka in {self.data_dir} has lost principal passwords "
                    f"({principals_dir(self.settings)}: {', '.join(missing) or 'broker'} missing)",
                    f"`kpsandbox down`, remove {self.data_dir} and `kpsandbox up` (new passwords are made at "
                    "format time; its topics and messages are lost)",
                )

    def formatted_security(self) -> str:
        """What the storage was formatted for; storage made before security existed is plaintext."""
        try:
            return self.security_file.read_text().strip() or "plaintext"
        except FileNotFoundError:
            return "plaintext"

    @property
    def _broker_password_file(self) -> Path:
        return principals_dir(self.settings) / BROKER_PASSWORD_FILE

    def _broker_password(self, *, create: bool) -> str:
        if create:
            principals_dir(self.settings).mkdir(parents=True, exist_ok=True, mode=PRIVATE_FOLDER_MODE)
            password = secrets.token_urlsafe(PASSWORD_BYTES)
            _write_private(self._broker_password_file, password + "\n")
            return password
        return self._broker_password_file.read_text().strip()

    def _format(self, java: str, scram_users: dict[str, str]) -> None:
        """Runs `StorageTool format`, with the SCRAM users, if any, created in the same step.

        The command line would carry every password, so it goes to the JVM in a private argument
        file (`java @file`, expanded by the launcher): `ps` shows only the file's name, and the
        file is removed as soon as the tool exits. Errors are redacted before they are raised.
        """
        cluster_id = _kafka_uuid(uuid.uuid4())  # 1 in 64 begins with '-': passed as --cluster-id=ID
        args = ["kafka.tools.StorageTool", "format", f"--cluster-id={cluster_id}", "-c", str(self.config_file),
                "--standalone", "--ignore-formatted"]  # fmt: skip
        for user, password in scram_users.items():
            args += ["--add-scram", f"{LOCAL_MECHANISM}=[name={user},password={password}]"]
        with tempfile.TemporaryDirectory(prefix="kpsandbox-format-") as folder:  # mode 0700
            argfile = Path(folder) / "format.args"
            _write_private(argfile, "\n".join(_java_arg_quoted(arg) for arg in args) + "\n")
            completed = subprocess.run(
                [java, "-cp", f"{self.libs}/*", f"@{argfile}"],
                capture_output=True, text=True, timeout=FORMAT_TIMEOUT_S, check=False,
            )  # fmt: skip
        if completed.returncode != 0:
            reason = redact(completed.stderr.strip() or completed.stdout.strip(), scram_users.values())
            raise SandboxError(
                f"formatting Kafka storage in {self.data_dir} failed: {reason[-400:]}",
                f"remove {self.data_dir} and run `kpsandbox up` again",
            )

    def _owned_pid(self) -> int | None:
        return procs.owned_pid(self.pid_file, str(self.home))

    def claims(self) -> list[procs.PortClaim]:
        """The ports the broker binds."""
        return [
            procs.PortClaim(self.settings.kafka_port, "Kafka", "KPSANDBOX_KAFKA_PORT"),
            procs.PortClaim(
                self.settings.kafka_controller_port, "the Kafka controller", "KPSANDBOX_KAFKA_CONTROLLER_PORT"
            ),
        ]

    def start(self) -> bool:
        if self._owned_pid() is not None:
            return False
        procs.check_ports_free(self.claims())
        heap = f"-Xmx{self.settings.kafka_heap_mb}m"
        argv = [
            check_java(), heap, f"-Xms{min(256, self.settings.kafka_heap_mb)}m",
            "-XX:+UseG1GC", "-XX:MaxGCPauseMillis=20", "-XX:MaxMetaspaceSize=192m",
            "-XX:ReservedCodeCacheSize=96m", "-Xss512k", "-XX:ActiveProcessorCount=2",
            "-Djava.awt.headless=true", f"-Dlog4j2.configurationFile={LOG4J2}",
            f"-Dkafka.logs.dir={self.home / 'logs'}",
            "-cp", f"{self.libs}/*", "kafka.Kafka", str(self.config_file),
        ]  # fmt: skip
        self.log_file.unlink(missing_ok=True)
        procs.spawn(argv, log_file=self.log_file, pid_file=self.pid_file)
        return True

    def wait_healthy(self) -> None:
        def ready() -> bool:
            if self.embedded and self._owned_pid() is None:
                raise SandboxError(
                    f"the Kafka broker exited during start-up; see {self.log_file}",
                    "read the log's last lines; `kpsandbox down` then `kpsandbox up` retries",
                )
            if broker_ready(self.settings):
                return True
            self._raise_if_refused()
            return False

        procs.wait_until(ready, timeout_s=self.settings.service_start_timeout_s, what="Kafka", log_file=self.log_file)

    def _raise_if_refused(self) -> None:
        """A secured broker that listens but refuses our login or our CA will not change its mind:
        say why now instead of waiting out the start timeout."""
        if self.settings.kafka_protocol == "PLAINTEXT" or not procs.port_accepts(self.settings.kafka_port):
            return
        problem = asyncio.run(connection_problem(self.settings, "admin"))
        if problem is not None:
            raise problem

    def stop(self) -> bool:
        pid = self._owned_pid()
        if pid is None:
            self.pid_file.unlink(missing_ok=True)
            return False
        procs.terminate(pid, timeout_s=30)
        self.pid_file.unlink(missing_ok=True)
        return True

    def version(self) -> str:
        """The version the broker logged at start-up ('Kafka version: X')."""
        try:
            text = self.log_file.read_text(errors="replace")
        except FileNotFoundError:
            return "unknown"
        found = VERSION_LINE.findall(text)
        return found[-1] if found else "unknown"

    def status(self) -> ServiceStatus:
        listener = listener_description(self.settings)
        if not self.embedded:
            healthy = broker_ready(self.settings)
            return ServiceStatus(self.name, self.endpoint, "external", healthy, f"external cluster, {listener}")
        pid = self._owned_pid()
        healthy = pid is not None and broker_ready(self.settings)
        version = f"Apache Kafka {self.version()} (KRaft), {listener}" if pid else "-"
        return ServiceStatus(self.name, self.endpoint, "embedded", healthy, version, pid,
                             procs.rss_bytes(pid) if pid else 0)  # fmt: skip


def _kafka_uuid(value: uuid.UUID) -> str:
    """Kafka's cluster id format: URL-safe base64 of the 16 UUID bytes, no padding."""
    return base64.urlsafe_b64encode(value.bytes).decode().rstrip("=")


def broker_ready(settings: Settings) -> bool:
    """True when the first bootstrap server accepts TCP and answers a metadata request, asked the
    way every client of these settings asks (SASL_SSL as the admin principal when secured)."""
    host, _, port = settings.bootstrap_servers.split(",")[0].strip().rpartition(":")
    if not procs.port_accepts(int(port), host):
        return False
    from infra.kafka_admin import cluster_answers  # lazy: keeps `status` fast when it's down

    return cluster_answers(settings)


def listener_description(settings: Settings) -> str:
    """The client listener's protocol as `status` shows it, e.g. 'SASL_SSL (SCRAM-SHA-512)'."""
    protocol = settings.kafka_protocol
    if protocol.startswith("SASL_"):
        return f"{protocol} ({settings.kafka_sasl_mechanism or LOCAL_MECHANISM})"
    return protocol


def redact(text: str, secret_values: Iterable[str]) -> str:
    """`text` with every secret replaced by a marker, for errors that quote a tool's output."""
    for value in secret_values:
        if value:
            text = text.replace(value, REDACTED)
    return text


def _new_principal_passwords(settings: Settings) -> dict[str, str]:
    """A fresh random password for every sandbox principal, each written to its own 0600 file
    first (the clients read them there); returns SCRAM user name → password."""
    folder = principals_dir(settings)
    folder.mkdir(parents=True, exist_ok=True, mode=PRIVATE_FOLDER_MODE)
    users: dict[str, str] = {}
    for principal in PRINCIPALS:
        password = secrets.token_urlsafe(PASSWORD_BYTES)
        _write_private(folder / principal, password + "\n")
        users[username(principal)] = password
    return users


def _write_private(path: Path, text: str) -> None:
    """Writes `text` to a file only this user can read (mode 0600 from its creation on)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    temporary.unlink(missing_ok=True)
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, PRIVATE_MODE)
    with os.fdopen(descriptor, "w") as handle:
        handle.write(text)
    os.replace(temporary, path)


def _java_arg_quoted(arg: str) -> str:
    """One argument as a `java @argfile` line: double-quoted, backslashes and quotes escaped."""
    return '"' + arg.replace("\\", "\\\\").replace('"', '\\"') + '"'


def check_java() -> str:
    """Path of a Java 17+ runtime, or a SandboxError saying what to install."""
    java = shutil.which("java")
    if java is None:
        raise SandboxError(
            "Java was not found on PATH; the local Kafka broker needs a Java 17+ runtime",
            "install one (Debian/Ubuntu: `apt-get install openjdk-17-jre-headless`), or point "
            "KPSANDBOX_KAFKA_BOOTSTRAP_SERVERS at an existing Kafka cluster",
        )
    completed = subprocess.run([java, "-version"], capture_output=True, text=True, timeout=30, check=False)
    match = re.search(r'version "(\d+)', completed.stderr + completed.stdout)
    if match is None or int(match.group(1)) < JAVA_MAJOR_MIN:
        found = match.group(1) if match else "unknown"
        raise SandboxError(
            f"Java {found} found at {java}; Kafka 4.x needs Java {JAVA_MAJOR_MIN} or newer",
            "install a newer JDK (Debian/Ubuntu: `apt-get install openjdk-17-jre-headless`) and put it first on PATH",
        )
    return java


ANSI = re.compile(r"\x1b\[[0-9;]*m")


def _maven_reason(output: str) -> str:
    """The first meaningful [ERROR] line of Maven's output."""
    for line in ANSI.sub("", output).splitlines():
        text = line.removeprefix("[ERROR]").strip()
        if line.startswith("[ERROR]") and text and not text.startswith(("For more", "[Help", "Re-run", "To see")):
            return text[:400]
    return "mvn failed without an [ERROR] line"


def jars_present(libs: Path) -> bool:
    """True when the cache holds the broker jar."""
    return any(libs.glob("kafka_2.13-*.jar"))


def fetch_jars(settings: Settings) -> Path:
    """Copies the pinned Kafka and its runtime dependencies from Maven Central into the cache, once."""
    libs = settings.cache_dir / f"kafka-{settings.kafka_version}" / "libs"
    if jars_present(libs):
        return libs
    mvn = shutil.which("mvn")
    if mvn is None:
        raise SandboxError(
            "Maven (`mvn`) was not found on PATH; it fetches the Kafka jars from Maven Central",
            f"install it (Debian/Ubuntu: `apt-get install maven`), or place the jars in {libs}",
        )
    staging = libs.with_name("libs.partial")
    shutil.rmtree(staging, ignore_errors=True)
    completed = subprocess.run(
        [mvn, "-B", "-q", "-f", str(POM), f"-Dkafka.version={settings.kafka_version}",
         "dependency:copy-dependencies", "-DincludeScope=runtime", f"-DoutputDirectory={staging}"],
        capture_output=True, text=True, timeout=MVN_TIMEOUT_S, check=False,
    )  # fmt: skip
    if completed.returncode != 0 or not jars_present(staging):
        raise SandboxError(
            f"could not fetch Kafka {settings.kafka_version} from Maven Central: "
            f"{_maven_reason(completed.stdout + completed.stderr)}",
            f"check that Maven Central is reachable (mvn settings, proxy), or place the jars in {libs}",
        )
    shutil.rmtree(libs, ignore_errors=True)
    staging.rename(libs)
    return libs
