"""The local Kafka cluster's pure parts: port plan, each broker's properties, validation, min ISR."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from infra.errors import SandboxError
from infra.kafka_admin import durability_configs, min_insync_replicas, new_topic
from infra.kafka_ports import PARTITIONED_HOST, SHARED_HOST, kafka_port_clash
from infra.local import kafka_config
from infra.local.kafka import KafkaService
from infra.local.kafka_config import ClusterRecord, brokers, heap_mb, initial_controllers, jvm_options
from infra.local.kafka_quorum import active_controller
from infra.settings import Settings


def _cluster(tmp_path: Path, **overrides: object) -> Settings:
    return Settings(state_dir=tmp_path, **({"kafka_brokers": 3} | overrides))  # type: ignore[arg-type]


def _properties(settings: Settings, node_id: int) -> dict[str, str]:
    text = kafka_config.server_properties(settings, Path("/data"), node_id=node_id)
    return dict(line.split("=", 1) for line in text.splitlines() if "=" in line)


def test_one_broker_keeps_its_ports_name_and_folder(tmp_path: Path) -> None:
    """The default is one broker named kafka in <state>/kafka on 19092/19093, as before clusters existed."""
    (only,) = brokers(Settings(state_dir=tmp_path))
    assert (only.node_id, only.name, only.client_port, only.controller_port) == (1, "kafka", 19092, 19093)
    assert only.home == tmp_path / "kafka" and only.data_dir == tmp_path / "kafka" / "data"
    assert Settings(state_dir=tmp_path).bootstrap_servers == "127.0.0.1:19092"


def test_a_cluster_takes_the_next_port_pair_per_broker(tmp_path: Path) -> None:
    """Broker k uses the base ports + 2(k-1), lives in broker-<k>/, and bootstrap lists every broker."""
    settings = _cluster(tmp_path)
    plan = brokers(settings)
    assert [(b.name, b.client_port, b.controller_port) for b in plan] == [
        ("kafka-1", 19092, 19093),
        ("kafka-2", 19094, 19095),
        ("kafka-3", 19096, 19097),
    ]
    assert [b.home for b in plan] == [tmp_path / "kafka" / f"broker-{k}" for k in (1, 2, 3)]
    assert settings.bootstrap_servers == "127.0.0.1:19092,127.0.0.1:19094,127.0.0.1:19096"
    ports = [port for b in plan for port in (b.client_port, b.controller_port)]
    assert len(set(ports)) == len(ports)


def test_each_broker_is_a_combined_voter_of_one_quorum(tmp_path: Path) -> None:
    """Every broker is broker+controller with its own id and listeners, and all know all three controllers."""
    settings = _cluster(tmp_path)
    for node_id, (client, controller) in enumerate([(19092, 19093), (19094, 19095), (19096, 19097)], start=1):
        props = _properties(settings, node_id)
        assert props["process.roles"] == "broker,controller"
        assert props["node.id"] == str(node_id)
        assert props["listeners"] == f"PLAINTEXT://127.0.0.1:{client},CONTROLLER://127.0.0.1:{controller}"
        assert props["advertised.listeners"] == f"PLAINTEXT://127.0.0.1:{client}"
        assert props["controller.quorum.bootstrap.servers"] == "127.0.0.1:19093,127.0.0.1:19095,127.0.0.1:19097"
        assert "controller.quorum.voters" not in props  # a dynamic (KIP-853) quorum, bootstrapped at format
        assert props["offsets.topic.replication.factor"] == "3"
        assert props["transaction.state.log.replication.factor"] == "3"
        assert props["transaction.state.log.min.isr"] == "2"


def test_internal_topics_follow_the_broker_count(tmp_path: Path) -> None:
    """Kafka's own topics get RF min(3, N): 1 alone, 2 on two brokers (min ISR 1), 3 on five."""
    assert _properties(Settings(state_dir=tmp_path), 1)["offsets.topic.replication.factor"] == "1"
    two = _properties(_cluster(tmp_path, kafka_brokers=2), 2)
    assert (two["offsets.topic.replication.factor"], two["transaction.state.log.min.isr"]) == ("2", "1")
    assert _properties(_cluster(tmp_path, kafka_brokers=5), 5)["offsets.topic.replication.factor"] == "3"


def test_initial_controllers_name_every_voter_with_its_directory(tmp_path: Path) -> None:
    """--initial-controllers lists id@host:controller-port:directory-id for each broker, in order."""
    text = initial_controllers(_cluster(tmp_path), ["AAAA", "BBBB", "CCCC"])
    assert text == "1@127.0.0.1:19093:AAAA,2@127.0.0.1:19095:BBBB,3@127.0.0.1:19097:CCCC"
    record = ClusterRecord(3, "cid", text)
    assert ClusterRecord.parse(record.text()) == record
    assert record.controller_ports() == [19093, 19095, 19097]
    with pytest.raises(ValueError, match=r"cluster\.id"):
        ClusterRecord.parse("brokers=3\n")


def test_heap_and_gc_threads_are_bounded_in_a_cluster(tmp_path: Path) -> None:
    """768 MiB alone; 512 MiB and one GC thread of each kind per broker in a cluster; the setting wins."""
    assert heap_mb(Settings(state_dir=tmp_path)) == 768
    assert "-XX:ParallelGCThreads=1" not in jvm_options(Settings(state_dir=tmp_path))
    options = jvm_options(_cluster(tmp_path))
    assert "-Xmx512m" in options and "-XX:ParallelGCThreads=1" in options and "-XX:ConcGCThreads=1" in options
    assert heap_mb(_cluster(tmp_path, kafka_heap_mb=300)) == 300


def test_replication_defaults_to_three_with_min_isr_two_on_three_brokers(tmp_path: Path) -> None:
    """With 3 brokers topics get RF 3 and min.insync.replicas=2; alone, RF 1 and the cluster's default."""
    topic = new_topic(_cluster(tmp_path), "t", 6, {"retention.ms": "1"})
    assert topic.replication_factor == 3
    assert topic.topic_configs == {"retention.ms": "1", "min.insync.replicas": "2"}
    alone = new_topic(Settings(state_dir=tmp_path), "t", 6)
    assert (alone.replication_factor, alone.topic_configs) == (1, {})
    external = Settings(kafka_bootstrap_servers="b1:9092,b2:9092", kafka_brokers=1)
    assert external.topic_replication_factor == 1  # an external cluster's size is not known here
    assert _cluster(tmp_path, kafka_brokers=2).topic_replication_factor == 2


@pytest.mark.parametrize(("replication", "min_isr"), [(1, 1), (2, 1), (3, 2), (4, 3), (5, 3), (7, 4)])
def test_min_insync_replicas_is_a_majority_that_survives_one_loss(replication: int, min_isr: int) -> None:
    """min ISR: a majority of the replicas, but never all of them (acks=all survives one broker down)."""
    assert min_insync_replicas(replication) == min_isr
    assert durability_configs(replication) == ({} if replication == 1 else {"min.insync.replicas": str(min_isr)})


@pytest.mark.parametrize("count", [0, 6, -1])
def test_broker_count_outside_one_to_five_is_refused(count: int) -> None:
    """KPSANDBOX_KAFKA_BROKERS=0 or 6: an error naming the allowed range."""
    with pytest.raises(ValidationError) as caught:
        Settings(kafka_brokers=count)
    (problem,) = caught.value.errors()
    assert problem["loc"] == ("kafka_brokers",)
    assert "1 to 5" in problem["msg"]


def test_replication_above_the_local_brokers_is_refused(tmp_path: Path) -> None:
    """RF 4 on 3 local brokers is refused when settings load, before any topic could be created."""
    with pytest.raises(ValidationError) as caught:
        _cluster(tmp_path, kafka_replication_factor=4)
    message = str(caught.value)
    assert "KPSANDBOX_KAFKA_REPLICATION_FACTOR=4" in message and "3 local Kafka broker" in message
    assert "KPSANDBOX_KAFKA_BROKERS" in message
    assert _cluster(tmp_path, kafka_replication_factor=3).topic_replication_factor == 3


def test_colliding_ports_name_the_broker_and_the_setting() -> None:
    """A controller port an even distance from the client port collides in a cluster: both named."""
    problem = kafka_port_clash(19092, 19094, 3)
    assert problem is not None
    assert "19094" in problem and "broker 1's controller port" in problem and "broker 2's client port" in problem
    assert "KPSANDBOX_KAFKA_PORT" in problem and "KPSANDBOX_KAFKA_CONTROLLER_PORT" in problem
    assert kafka_port_clash(19092, 19094, 1) is None  # one broker: no clash
    assert kafka_port_clash(19092, 19093, 5) is None  # the defaults never clash
    assert kafka_port_clash(19092, 19192, 5) is None  # far enough apart
    assert "above 65535" in (kafka_port_clash(65533, 19093, 3) or "")
    with pytest.raises(ValidationError, match="broker 2's client port"):
        Settings(kafka_brokers=3, kafka_controller_port=19094)


def test_busy_port_of_a_later_broker_names_it_and_its_setting(tmp_path: Path) -> None:
    """Port claims of broker 2 say which broker and which setting its port derives from."""
    claims = KafkaService(_cluster(tmp_path)).claims()
    assert [claim.port for claim in claims] == [19092, 19093, 19094, 19095, 19096, 19097]
    assert claims[2].service == "Kafka broker kafka-2 (its port + 2)"
    assert claims[2].setting == "KPSANDBOX_KAFKA_PORT" and claims[3].setting == "KPSANDBOX_KAFKA_CONTROLLER_PORT"
    assert KafkaService(Settings(state_dir=tmp_path)).claims()[0].service == "Kafka"


def test_active_controller_is_the_newest_epochs_leader(tmp_path: Path) -> None:
    """The quorum-state with the highest epoch names the leader; a running election names none."""
    settings = _cluster(tmp_path)

    def write(node_id: int, epoch: int, leader: int) -> None:
        folder = brokers(settings)[node_id - 1].data_dir / "__cluster_metadata-0"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "quorum-state").write_text(f'{{"leaderId":{leader},"leaderEpoch":{epoch},"votedId":-1}}')

    assert active_controller(settings) is None
    write(1, 3, 1)  # the dead old leader's stale view
    write(2, 4, 3)
    write(3, 4, 3)
    assert active_controller(settings) == 3
    write(2, 5, -1)  # broker 2 is a candidate in epoch 5: no leader yet
    assert active_controller(settings) is None


def test_a_cluster_refuses_storage_made_for_another_broker_count(tmp_path: Path) -> None:
    """Storage formatted for one broker is not silently joined to a new cluster (and the reverse)."""
    single = tmp_path / "kafka" / "data"
    single.mkdir(parents=True)
    (single / "meta.properties").write_text("node.id=1\n")
    service = KafkaService(_cluster(tmp_path))
    with pytest.raises(SandboxError, match="KPSANDBOX_KAFKA_BROKERS=1, not 3") as caught:
        service._cluster_record()
    assert "KPSANDBOX_KAFKA_BROKERS=1 again" in caught.value.hint
    (single / "meta.properties").unlink()
    record = KafkaService(_cluster(tmp_path))._cluster_record()
    assert record is not None and record.brokers == 3 and len(record.initial_controllers.split(",")) == 3
    assert KafkaService(_cluster(tmp_path))._cluster_record() == record  # read back, not made anew
    with pytest.raises(SandboxError, match="KPSANDBOX_KAFKA_BROKERS=3, not 5"):
        KafkaService(_cluster(tmp_path, kafka_brokers=5))._cluster_record()
    with pytest.raises(SandboxError, match="controller ports 19093, 19095, 19097"):
        KafkaService(_cluster(tmp_path, kafka_controller_port=19193))._cluster_record()


def test_a_partitionable_broker_listens_apart_and_every_voter_names_its_address(tmp_path: Path) -> None:
    """KPSANDBOX_KAFKA_PARTITIONABLE_BROKER=3: broker 3 on its namespace's address, the others on the
    shared one; listeners, advertised listeners, voters, initial controllers and bootstrap agree."""
    settings = _cluster(tmp_path, kafka_partitionable_broker=3)
    assert [b.host for b in brokers(settings)] == [SHARED_HOST, SHARED_HOST, PARTITIONED_HOST]
    assert settings.bootstrap_servers == f"{SHARED_HOST}:19092,{SHARED_HOST}:19094,{PARTITIONED_HOST}:19096"
    third = _properties(settings, 3)
    assert third["listeners"] == f"PLAINTEXT://{PARTITIONED_HOST}:19096,CONTROLLER://{PARTITIONED_HOST}:19097"
    assert third["advertised.listeners"] == f"PLAINTEXT://{PARTITIONED_HOST}:19096"
    voters = f"{SHARED_HOST}:19093,{SHARED_HOST}:19095,{PARTITIONED_HOST}:19097"
    assert _properties(settings, 1)["controller.quorum.bootstrap.servers"] == voters
    assert initial_controllers(settings, ["a", "b", "c"]).split(",")[2] == f"3@{PARTITIONED_HOST}:19097:c"
    assert all(b.host == "127.0.0.1" for b in brokers(_cluster(tmp_path)))


@pytest.mark.parametrize(
    ("overrides", "named"),
    [
        ({"kafka_brokers": 1, "kafka_partitionable_broker": 1}, "KPSANDBOX_KAFKA_BROKERS=1"),
        ({"kafka_partitionable_broker": 4}, "KPSANDBOX_KAFKA_PARTITIONABLE_BROKER=4"),
        ({"kafka_partitionable_broker": 2, "kafka_security": "sasl_ssl"}, "KPSANDBOX_KAFKA_SECURITY=plaintext"),
    ],
)
def test_a_partitionable_broker_the_cluster_cannot_cut_off_is_refused(
    tmp_path: Path, overrides: dict[str, object], named: str
) -> None:
    """One broker (nobody to be cut off from), a broker number past the count, or TLS (whose
    certificate names 127.0.0.1 only): refused with the setting to change, before anything starts."""
    with pytest.raises(ValidationError) as caught:
        _cluster(tmp_path, **overrides)
    assert named in str(caught.value)
