"""What each local Kafka broker is: its node id, ports, folder, `server.properties` and JVM flags.

Pure: no processes, no sockets. One broker (KPSANDBOX_KAFKA_BROKERS=1, the default) keeps the
layout it always had: everything in `<state>/kafka/`, node id 1, a standalone KRaft quorum. A
cluster of N (2–5) runs N combined brokers (`process.roles=broker,controller`), node ids 1..N, each
in `<state>/kafka/broker-<id>/`, all N of them controller voters: the quorum is bootstrapped at
format time with KIP-853's `--initial-controllers` (Kafka 4.x's dynamic quorum; the static
`controller.quorum.voters` is deprecated), so a majority keeps it alive and a new active controller
is elected when the active one dies.
"""

from __future__ import annotations

import base64
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from infra.kafka_admin import min_insync_replicas
from infra.kafka_clients import LOCAL_MECHANISM, username
from infra.kafka_ports import KAFKA_BROKERS_MAX, KAFKA_REPLICATION_FACTOR_DEFAULT_MAX
from infra.kafka_tls import tls_files
from infra.settings import Settings

HOST: Final = "127.0.0.1"  # every broker's address, but in a partitionable cluster (Settings.kafka_hosts)
BROKER_USER: Final = "kp-broker"  # the brokers' own principal (inter-broker and controller traffic)
HEAP_MB_ALONE: Final = 768
HEAP_MB_IN_CLUSTER: Final = 512  # three of them and PostgreSQL fit in a few GiB on a 2-core box
HEAP_MB_INITIAL_MAX: Final = 256
CLUSTER_FILE: Final = "cluster.properties"  # in <state>/kafka: what a cluster's storage was formatted with


@dataclass(frozen=True)
class Broker:
    """One local Kafka process: node id, name in `status`, ports, folder and the address it binds."""

    node_id: int
    name: str
    client_port: int
    controller_port: int
    home: Path
    host: str = HOST

    @property
    def pid_file(self) -> Path:
        return self.home / "kafka.pid"

    @property
    def log_file(self) -> Path:
        return self.home / "server.out"

    @property
    def config_file(self) -> Path:
        return self.home / "server.properties"

    @property
    def data_dir(self) -> Path:
        return self.home / "data"

    @property
    def security_file(self) -> Path:
        """What the storage was formatted for (plaintext or sasl_ssl)."""
        return self.home / "data.security"

    @property
    def endpoint(self) -> str:
        return f"{self.host}:{self.client_port}"


def kafka_home(settings: Settings) -> Path:
    """The folder of the local Kafka: one broker's files, or a cluster's broker-<id> folders."""
    return settings.state_dir / "kafka"


def brokers(settings: Settings) -> tuple[Broker, ...]:
    """The local brokers these settings describe, broker 1 first (ports: Settings.kafka_client_ports)."""
    home = kafka_home(settings)
    if settings.kafka_brokers == 1:
        return (Broker(1, "kafka", settings.kafka_port, settings.kafka_controller_port, home),)
    ports = zip(settings.kafka_client_ports, settings.kafka_controller_ports, settings.kafka_hosts, strict=True)
    return tuple(
        Broker(node_id, f"kafka-{node_id}", client, controller, home / f"broker-{node_id}", host)
        for node_id, (client, controller, host) in enumerate(ports, start=1)
    )


def every_broker_home(settings: Settings) -> list[Path]:
    """Every folder a local broker of this state folder may run from, whatever the broker count
    is now: `down` stops a cluster started with another KPSANDBOX_KAFKA_BROKERS too."""
    home = kafka_home(settings)
    return [home, *(home / f"broker-{node_id}" for node_id in range(1, KAFKA_BROKERS_MAX + 1))]


def internal_replication(settings: Settings) -> int:
    """Replication factor of Kafka's own topics (consumer offsets, transaction state): min(3, N)."""
    return min(KAFKA_REPLICATION_FACTOR_DEFAULT_MAX, settings.kafka_brokers)


def heap_mb(settings: Settings) -> int:
    """Each broker's heap: the setting, or 768 MiB alone and 512 MiB each in a cluster."""
    if settings.kafka_heap_mb is not None:
        return settings.kafka_heap_mb
    return HEAP_MB_ALONE if settings.kafka_brokers == 1 else HEAP_MB_IN_CLUSTER


def jvm_options(settings: Settings) -> list[str]:
    """Heap, GC and thread bounds. In a cluster each JVM gets one parallel and one concurrent GC
    thread: N brokers share two cores, and N JVMs each sizing their GC for the whole box would
    fight over them in every pause."""
    heap = heap_mb(settings)
    options = [
        f"-Xmx{heap}m", f"-Xms{min(HEAP_MB_INITIAL_MAX, heap)}m",
        "-XX:+UseG1GC", "-XX:MaxGCPauseMillis=20", "-XX:MaxMetaspaceSize=192m",
        "-XX:ReservedCodeCacheSize=96m", "-Xss512k", "-XX:ActiveProcessorCount=2",
    ]  # fmt: skip
    if settings.kafka_brokers > 1:
        options += ["-XX:ParallelGCThreads=1", "-XX:ConcGCThreads=1"]
    return options


def initial_controllers(settings: Settings, directory_ids: list[str]) -> str:
    """`--initial-controllers` for formatting a cluster: `id@host:port:directory-id` per voter."""
    return ",".join(
        f"{broker.node_id}@{broker.host}:{broker.controller_port}:{directory_id}"
        for broker, directory_id in zip(brokers(settings), directory_ids, strict=True)
    )


def server_properties(settings: Settings, data_dir: Path, broker_password: str | None = None, node_id: int = 1) -> str:
    """Broker `node_id`'s config, sized for a 2-core box; everything bound to the broker's address
    (127.0.0.1, or Settings.kafka_hosts in a partitionable cluster).

    With `broker_password` (KPSANDBOX_KAFKA_SECURITY=sasl_ssl) the listeners are secured as
    `_secured_listeners` says; otherwise both listeners are PLAINTEXT.
    """
    broker = brokers(settings)[node_id - 1]
    if broker_password is None:
        listeners = [
            f"listeners=PLAINTEXT://{broker.host}:{broker.client_port},"
            f"CONTROLLER://{broker.host}:{broker.controller_port}",
            f"advertised.listeners=PLAINTEXT://{broker.host}:{broker.client_port}",
            "controller.listener.names=CONTROLLER",
            "inter.broker.listener.name=PLAINTEXT",
            "listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
        ]
    else:
        listeners = _secured_listeners(settings, broker, broker_password)
    voters = ",".join(f"{other.host}:{other.controller_port}" for other in brokers(settings))
    replication = internal_replication(settings)
    min_isr = min_insync_replicas(replication)
    return "\n".join(
        [
            "process.roles=broker,controller",
            f"node.id={node_id}",
            f"controller.quorum.bootstrap.servers={voters}",
            *listeners,
            f"log.dirs={data_dir}",
            "num.partitions=3",
            "num.network.threads=2",
            "num.io.threads=4",
            f"offsets.topic.replication.factor={replication}",
            "offsets.topic.num.partitions=6",
            f"transaction.state.log.replication.factor={replication}",
            f"transaction.state.log.min.isr={min_isr}",
            f"share.coordinator.state.topic.replication.factor={replication}",
            f"share.coordinator.state.topic.min.isr={min_isr}",
            "group.initial.rebalance.delay.ms=0",
            "auto.create.topics.enable=false",
            "log.retention.check.interval.ms=60000",
            "",
        ]
    )


def _secured_listeners(settings: Settings, broker: Broker, broker_password: str) -> list[str]:
    """SASL_SSL everywhere, each listener with the one mechanism it can use, and ACLs enforced.

    - CLIENT (KPSANDBOX_KAFKA_PORT): SCRAM-SHA-512 over TLS, the only way in for clients. It also
      carries inter-broker traffic, as `kp-broker` (a SCRAM user made at format time, the same
      on every broker of a cluster).
    - CONTROLLER: TLS with SASL PLAIN for the one static user `kp-broker` in its JAAS config —
      KRaft reads SCRAM credentials from the metadata log the controller itself serves, so the
      controller listener cannot use SCRAM.
    - StandardAuthorizer with allow.everyone.if.no.acl.found=false: a principal may do only what
      an ACL grants. The super users are the admin principal and the broker itself; ANONYMOUS is
      not one, and no listener lets an unauthenticated client reach it.

    Every broker of a cluster serves the same certificate: it names 127.0.0.1 and localhost, the
    only address any of them binds, whatever the port.
    """
    tls = tls_files(settings)
    user = BROKER_USER
    return [
        f"listeners=CLIENT://{HOST}:{broker.client_port},CONTROLLER://{HOST}:{broker.controller_port}",
        f"advertised.listeners=CLIENT://{HOST}:{broker.client_port}",
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


@dataclass(frozen=True)
class ClusterRecord:
    """What a local cluster's storage was formatted with (`<state>/kafka/cluster.properties`).

    Every broker must be formatted with one cluster id and one voter set; a broker whose storage
    is made later (its format failed, its folder was removed) gets the same ones from here. The
    voter set names each controller's port, so a changed port or broker count is refused.
    """

    brokers: int
    cluster_id: str
    initial_controllers: str

    def text(self) -> str:
        return f"brokers={self.brokers}\ncluster.id={self.cluster_id}\ninitial.controllers={self.initial_controllers}\n"

    @classmethod
    def parse(cls, text: str) -> ClusterRecord:
        """Reads `text()`'s form back; a ValueError when a line is missing."""
        values = dict(line.split("=", 1) for line in text.splitlines() if "=" in line)
        try:
            return cls(int(values["brokers"]), values["cluster.id"], values["initial.controllers"])
        except (KeyError, ValueError) as error:
            raise ValueError(f"{CLUSTER_FILE} lacks a valid {error}") from error

    def controller_ports(self) -> list[int]:
        """The controller port of each voter, as formatted."""
        return [int(voter.split(":")[1]) for voter in self.initial_controllers.split(",")]


def listener_description(settings: Settings) -> str:
    """The client listener's protocol as `status` shows it, e.g. 'SASL_SSL (SCRAM-SHA-512)'."""
    protocol = settings.kafka_protocol
    if protocol.startswith("SASL_"):
        return f"{protocol} ({settings.kafka_sasl_mechanism or LOCAL_MECHANISM})"
    return protocol


def kafka_uuid(value: uuid.UUID) -> str:
    """Kafka's cluster id format: URL-safe base64 of the 16 UUID bytes, no padding."""
    return base64.urlsafe_b64encode(value.bytes).decode().rstrip("=")
