"""Apache Kafka in KRaft mode (one broker+controller), fetched from Maven Central, run with java -cp.

The jars of `org.apache.kafka:kafka_2.13` and its runtime dependencies are copied by Maven
into `<cache_dir>/kafka-<version>/libs` once (the recipe is infra/kafka/pom.xml). Storage is
formatted with `kafka.tools.StorageTool` and the broker served by `kafka.Kafka`.
"""

from __future__ import annotations

import base64
import re
import shutil
import subprocess
import uuid
from pathlib import Path
from typing import Final

from infra.errors import SandboxError
from infra.local import procs
from infra.local.base import ServiceStatus
from infra.settings import Settings

POM: Final = Path(__file__).resolve().parent.parent / "kafka" / "pom.xml"
LOG4J2: Final = Path(__file__).resolve().parent.parent / "kafka" / "log4j2.properties"
JAVA_MAJOR_MIN: Final = 17
MVN_TIMEOUT_S: Final = 600
VERSION_LINE = re.compile(r"Kafka version: (\S+)")


def _server_properties(settings: Settings, data_dir: Path) -> str:
    """Broker config sized for a 2-core box; everything bound to 127.0.0.1."""
    return "\n".join(
        [
            "process.roles=broker,controller",
            "node.id=1",
            f"controller.quorum.bootstrap.servers=127.0.0.1:{settings.kafka_controller_port}",
            f"listeners=PLAINTEXT://127.0.0.1:{settings.kafka_port},"
            f"CONTROLLER://127.0.0.1:{settings.kafka_controller_port}",
            f"advertised.listeners=PLAINTEXT://127.0.0.1:{settings.kafka_port}",
            "controller.listener.names=CONTROLLER",
            "inter.broker.listener.name=PLAINTEXT",
            "listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
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

    @property
    def embedded(self) -> bool:
        return self.settings.kafka_embedded

    @property
    def endpoint(self) -> str:
        return self.settings.bootstrap_servers

    def prepare(self) -> None:
        """Checks Java, fetches the jars if missing, writes the config, formats storage once."""
        java = check_java()
        fetch_jars(self.settings)
        self.home.mkdir(parents=True, exist_ok=True)
        self.config_file.write_text(_server_properties(self.settings, self.data_dir))
        if (self.data_dir / "meta.properties").exists():
            return
        cluster_id = _kafka_uuid(uuid.uuid4())  # 1 in 64 begins with '-': passed as --cluster-id=ID
        completed = subprocess.run(
            [java, "-cp", f"{self.libs}/*", "kafka.tools.StorageTool", "format",
             f"--cluster-id={cluster_id}", "-c", str(self.config_file), "--standalone", "--ignore-formatted"],
            capture_output=True, text=True, timeout=120, check=False,
        )  # fmt: skip
        if completed.returncode != 0:
            raise SandboxError(
                f"formatting Kafka storage in {self.data_dir} failed: {completed.stderr.strip()[-400:]}",
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
            return broker_ready(self.endpoint)

        procs.wait_until(ready, timeout_s=self.settings.service_start_timeout_s, what="Kafka", log_file=self.log_file)

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
        if not self.embedded:
            healthy = broker_ready(self.endpoint)
            return ServiceStatus(self.name, self.endpoint, "external", healthy, "external cluster")
        pid = self._owned_pid()
        healthy = pid is not None and broker_ready(self.endpoint)
        version = f"Apache Kafka {self.version()} (KRaft)" if pid else "-"
        return ServiceStatus(self.name, self.endpoint, "embedded", healthy, version, pid,
                             procs.rss_bytes(pid) if pid else 0)  # fmt: skip


def _kafka_uuid(value: uuid.UUID) -> str:
    """Kafka's cluster id format: URL-safe base64 of the 16 UUID bytes, no padding."""
    return base64.urlsafe_b64encode(value.bytes).decode().rstrip("=")


def broker_ready(bootstrap: str) -> bool:
    """True when the first bootstrap server accepts TCP and answers a metadata request."""
    host, _, port = bootstrap.split(",")[0].strip().rpartition(":")
    if not procs.port_accepts(int(port), host):
        return False
    from infra.kafka_admin import cluster_answers  # lazy: keeps `status` fast when it's down

    return cluster_answers(bootstrap)


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
