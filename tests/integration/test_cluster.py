"""A local 3-broker KRaft cluster (KPSANDBOX_KAFKA_BROKERS=3) under faults: a broker SIGKILLed and
the active controller killed while requests are produced and the ledger settles lose and double
nothing, and the digest equals a clean re-settle; killed brokers come back into every ISR.

The cluster is this module's own (state folder under tmp, ports 39392+ / 39492+, two apart per
broker), started once through the real `up` path with PostgreSQL and Prometheus left out: the
shared test stack's PostgreSQL holds a fresh database per test.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import random
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Final

import asyncpg
import pytest
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

from consumers.ledger.digest import ledger_digest
from infra import kafka_clients
from infra.db import create_database, migrate
from infra.errors import SandboxError
from infra.kafka_admin import ensure_topics
from infra.local import procs, stack
from infra.local.kafka import KafkaService
from infra.local.kafka_quorum import active_controller
from infra.settings import Settings, with_overrides
from schemas.accounts import AccountOpened
from schemas.events import dump_event
from schemas.topics import ACCOUNTS, CATALOG, PAYMENT_OUTCOMES, PAYMENT_REQUESTS
from tests.conftest import RUN_ID
from tests.integration.test_ledger_support import (
    assert_exactly_once,
    make_accounts,
    make_requests,
    partition_for,
    run_settle,
    scalar,
    settled_count,
)

CLUSTER_PORTS: Final = (39392, 39492)  # client, controller of broker 1; broker k adds 2(k-1)
BROKEN_PORTS: Final = (39592, 39692)
BROKERS: Final = 3
REQUESTS: Final = 2_400  # per fault test, half before the fault and half after it
PROGRESS_WAIT_S_MAX: Final = 90.0
ISR_WAIT_S_MAX: Final = 60.0
ELECTION_WAIT_S_MAX: Final = 30.0
SETTLE_STOP_S_MAX: Final = 60.0
_databases = itertools.count()


async def _no_migrations(dsn: str) -> list[str]:
    return []


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory, settings: Settings) -> Iterator[Settings]:
    """Settings of this module's running 3-broker cluster (catalog topics made by `up`)."""
    if os.environ.get("KPSANDBOX_TEST_EXTERNAL") == "1":
        pytest.skip("starts a local cluster of its own")
    config = Settings(
        state_dir=tmp_path_factory.mktemp("cluster"),
        kafka_brokers=BROKERS,
        topic_prefix=f"c{RUN_ID}.",
        database_url=settings.dsn,  # `up` starts Kafka only; PostgreSQL is the shared stack's
        kafka_port=CLUSTER_PORTS[0],
        kafka_controller_port=CLUSTER_PORTS[1],
    )
    with running_kafka_only(config):
        yield config


@contextlib.contextmanager
def running_kafka_only(config: Settings) -> Iterator[None]:
    """`config`'s local Kafka started through the real `up` path, alone (PostgreSQL and Prometheus
    left out: the shared test stack's PostgreSQL holds a fresh database per test); stopped after."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(stack, "services", lambda settings: [KafkaService(settings)])
        patch.setattr(stack, "migrate", _no_migrations)
        try:
            stack.up(config)
            yield
        finally:
            KafkaService(config).stop()


def _fresh(cluster: Settings, settings: Settings) -> Settings:
    """The cluster with a new topic prefix (catalog topics made) and a new migrated database."""
    n = next(_databases)
    dsn = asyncio.run(create_database(settings, f"c_{RUN_ID}_{n}"))
    config = with_overrides(cluster, topic_prefix=f"c{RUN_ID}f{n}.", database_url=dsn)
    asyncio.run(migrate(dsn))
    asyncio.run(ensure_topics(config))
    return config


async def _describe(config: Settings, names: list[str]) -> list[dict]:
    admin = kafka_clients.admin(config, "admin")
    await admin.start()
    try:
        return list(await admin.describe_topics(names))
    finally:
        await admin.close()


async def _min_isr(config: Settings, name: str) -> int:
    admin = kafka_clients.admin(config, "admin")
    await admin.start()
    try:
        (response,) = await admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, name)])
    finally:
        await admin.close()
    entries = response.resources[0][4]  # (name, value, read_only, source, sensitive, synonyms) each
    return int(dict((entry[0], entry[1]) for entry in entries)["min.insync.replicas"])


async def _produce(config: Settings, events: list, *, requests_partition: int | None = None) -> None:
    """acks=all and idempotent, so a retry after a broker died cannot write a request twice.
    Requests go to `requests_partition` when given (accounts always to their own partitions)."""
    producer = kafka_clients.producer(config, "admin", acks="all", enable_idempotence=True, linger_ms=5)
    await producer.start()
    try:
        sends = []
        for event in events:
            spec = ACCOUNTS if isinstance(event, AccountOpened) else PAYMENT_REQUESTS
            key = event.partition_key
            partition = partition_for(key, spec.partitions)
            if spec is PAYMENT_REQUESTS and requests_partition is not None:
                partition = requests_partition
            sends.append(
                await producer.send(config.topic(spec), dump_event(event), key=key.encode(), partition=partition)
            )
        await asyncio.gather(*sends)
    finally:
        await producer.stop()


async def _wait_for(config: Settings, query: str, *, at_least: int) -> None:
    deadline = time.monotonic() + PROGRESS_WAIT_S_MAX
    while time.monotonic() < deadline:
        if int(await scalar(config, query) or 0) >= at_least:  # type: ignore[call-overload]
            return
        await asyncio.sleep(0.2)
    raise AssertionError(f"no progress: {query} stayed below {at_least}")


async def _wait_full_isr(config: Settings) -> float:
    """Seconds until every partition of the test's topics has all three replicas in its ISR."""
    names = [config.topic(spec) for spec in (ACCOUNTS, PAYMENT_REQUESTS, PAYMENT_OUTCOMES)]
    began = time.monotonic()
    while time.monotonic() - began < ISR_WAIT_S_MAX:
        described = await _describe(config, names)
        if all(len(p["isr"]) == BROKERS for topic in described for p in topic["partitions"]):
            return time.monotonic() - began
        await asyncio.sleep(0.5)
    raise AssertionError(f"a restarted broker's replicas were not back in every ISR within {ISR_WAIT_S_MAX:.0f} s")


async def _leaders(config: Settings) -> dict[int, int]:
    """Requests partition → the node id of its leader."""
    (requests,) = await _describe(config, [config.topic(PAYMENT_REQUESTS)])
    return {p["partition"]: p["leader"] for p in requests["partitions"]}


async def _digest(config: Settings) -> tuple[str, int]:
    connection = await asyncpg.connect(config.dsn)
    try:
        digest = await ledger_digest(connection)
        return digest.sha256, digest.transfers
    finally:
        await connection.close()


async def _clean_resettle(config: Settings, settings: Settings) -> tuple[str, int]:
    """The digest of a fresh database settling the same topics from the start (another group)."""
    clean_dsn = await create_database(settings, f"c_{RUN_ID}_{next(_databases)}_clean")
    await migrate(clean_dsn)
    clean = with_overrides(config, database_url=clean_dsn)
    process = await run_settle(clean, KPSANDBOX_LEDGER_GROUP="kp-ledger-clean")
    assert process.returncode == 0
    return await _digest(clean)


async def _settle_through(config: Settings, settings: Settings, fault, *, seed: int, partition: int) -> None:  # type: ignore[no-untyped-def]
    """Produces half the stream, runs `fault` once the ledger is settling, produces the rest, and
    checks exactly-once, the ledger's invariants, the digest, and that every ISR is full again.

    Every request goes to one partition (the one the fault hits): its decision order is then the
    log's order whatever the timing, so the live run and the clean re-settle must decide alike and
    a different digest can only come from the fault. (Across partitions the ledger merges by event
    time only among partitions it knows to have unread data, so a stream produced while it is
    caught up may be decided in another order than its replay: a property of the live merge,
    not of the brokers.)"""
    rng = random.Random(seed)
    accounts, citizens, merchants, agents, employer = make_accounts(rng, citizens=80, merchants=8)
    requests = make_requests(
        rng, count=REQUESTS, citizens=citizens, merchants=merchants, agents=agents, employer=employer
    )
    await _produce(config, accounts)
    await _produce(config, requests[: REQUESTS // 2], requests_partition=partition)
    ledger = await run_settle(config, until_idle=False)
    try:
        await _wait_for(config, "SELECT count(*) FROM ledger_requests", at_least=1)
        restart = await fault()
        await _produce(config, requests[REQUESTS // 2 :], requests_partition=partition)
        restarted = asyncio.create_task(asyncio.to_thread(restart))  # rejoins while the ledger settles
        await _wait_for(config, "SELECT count(*) FROM ledger_requests", at_least=REQUESTS)
    finally:
        ledger.send_signal(signal.SIGTERM)
    assert await asyncio.wait_for(settled_count(ledger), SETTLE_STOP_S_MAX) == REQUESTS
    assert ledger.returncode == 0
    await restarted
    await _wait_full_isr(config)
    await assert_exactly_once(config, requests)
    # The clean re-settle runs on the healed cluster: started while the killed broker was rejoining,
    # its one member was once given no partition and took that for drained (fresh-clone CI).
    assert await _clean_resettle(config, settings) == await _digest(config)


def _kill(service: KafkaService, node_id: int) -> None:
    """SIGKILL one broker (no controlled shutdown) and wait until it is gone."""
    broker = service.brokers[node_id - 1]
    pid = service.broker_pid(broker)
    assert pid is not None, f"{broker.name} is not running"
    os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while procs.pid_alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not procs.pid_alive(pid)


def _restart(service: KafkaService) -> None:
    """Starts the brokers that are down (only those) and waits until all are healthy."""
    assert service.start()
    service.wait_healthy()


def test_cluster_runs_three_healthy_brokers_with_replicated_topics(cluster: Settings) -> None:
    """status shows kafka-1..3 healthy with pids and their endpoints; topics have RF 3 and min ISR 2."""
    lines = stack.status(cluster)
    assert [line.name for line in lines] == ["kafka-1", "kafka-2", "kafka-3"]
    assert all(line.healthy and line.pid for line in lines), lines
    assert [line.endpoint for line in lines] == ["127.0.0.1:39392", "127.0.0.1:39394", "127.0.0.1:39396"]
    assert sum("active controller" in line.version for line in lines) == 1
    assert cluster.bootstrap_servers == "127.0.0.1:39392,127.0.0.1:39394,127.0.0.1:39396"
    names = [cluster.topic(spec) for spec in CATALOG]
    for topic in asyncio.run(_describe(cluster, names)):
        assert all(len(p["replicas"]) == BROKERS for p in topic["partitions"]), topic
        assert len({p["leader"] for p in topic["partitions"]}) == min(BROKERS, len(topic["partitions"])), topic
    assert asyncio.run(_min_isr(cluster, cluster.topic(PAYMENT_REQUESTS))) == 2


async def test_sigkill_of_a_broker_mid_run_loses_and_doubles_nothing(cluster: Settings, settings: Settings) -> None:
    """The leader of the stream's partition (not the controller) SIGKILLed while producing and settling."""
    config = await asyncio.to_thread(_fresh, cluster, settings)
    service = KafkaService(config)
    controller = active_controller(config)
    partition, victim = next((p, node) for p, node in sorted((await _leaders(config)).items()) if node != controller)

    async def fault():  # type: ignore[no-untyped-def]
        await asyncio.to_thread(_kill, service, victim)
        return lambda: _restart(service)

    await _settle_through(config, settings, fault, seed=61, partition=partition)
    assert service.broker_pid(service.brokers[victim - 1]) is not None


async def test_controller_failover_mid_run_loses_and_doubles_nothing(cluster: Settings, settings: Settings) -> None:
    """The active KRaft controller killed mid-run: another is elected, and the ledger stays exact."""
    config = await asyncio.to_thread(_fresh, cluster, settings)
    service = KafkaService(config)
    old = active_controller(config)
    assert old is not None
    led = [p for p, node in sorted((await _leaders(config)).items()) if node == old]
    partition = led[0] if led else 0  # the stream's partition moves with the controller when it can
    elected: list[int | None] = []

    async def fault():  # type: ignore[no-untyped-def]
        await asyncio.to_thread(_kill, service, old)
        deadline = time.monotonic() + ELECTION_WAIT_S_MAX
        while time.monotonic() < deadline:
            new = active_controller(config)
            if new is not None and new != old:
                elected.append(new)
                break
            await asyncio.sleep(0.2)
        return lambda: _restart(service)

    await _settle_through(config, settings, fault, seed=62, partition=partition)
    assert elected and elected[0] != old, "no new active controller was elected"


def test_replication_factor_above_the_brokers_is_refused_before_any_topic(cluster: Settings) -> None:
    """RF 4 on the 3 brokers, asked as of an external cluster: refused, and no topic was created."""
    external = Settings(
        kafka_bootstrap_servers=cluster.bootstrap_servers, kafka_replication_factor=4, topic_prefix=f"c{RUN_ID}rf4."
    )
    with pytest.raises(SandboxError) as caught:
        asyncio.run(ensure_topics(external))
    assert "replication factor 4" in caught.value.message and "3 broker" in caught.value.message
    assert "KPSANDBOX_KAFKA_REPLICATION_FACTOR" in caught.value.hint

    async def listed() -> set[str]:
        admin = kafka_clients.admin(cluster, "admin")
        await admin.start()
        try:
            return set(await admin.list_topics())
        finally:
            await admin.close()

    assert not any(name.startswith(external.topic_prefix) for name in asyncio.run(listed()))


def test_a_broker_that_never_comes_up_is_named_and_the_others_stopped(tmp_path: Path) -> None:
    """Broker 2 of a 2-broker cluster cannot start: the error names kafka-2 and its log; broker 1 is stopped."""
    config = Settings(
        state_dir=tmp_path, kafka_brokers=2, kafka_port=BROKEN_PORTS[0], kafka_controller_port=BROKEN_PORTS[1]
    )
    service = KafkaService(config)
    service.prepare()
    broken = service.brokers[1]
    broken.config_file.write_text(broken.config_file.read_text().replace("node.id=2", "node.id=two"))
    service.start()
    pids = [service.broker_pid(broker) for broker in service.brokers]
    with pytest.raises(SandboxError) as caught:
        service.wait_healthy()
    assert "kafka-2" in caught.value.message and str(broken.log_file) in caught.value.message
    left = {pid: _proc_state(pid) for pid in pids if pid is None or procs.pid_alive(pid)}
    assert not left, f"brokers still running after the failed start (PID: state): {left}"
    assert service.stop() is False  # nothing was left running


def _proc_state(pid: int | None) -> str:
    """The /proc state and thread count of a PID, for a failure message."""
    if pid is None:
        return "no PID recorded at start"
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]
        return f"{state}, {len(list(Path(f'/proc/{pid}/task').iterdir()))} threads"
    except FileNotFoundError:
        return "gone"
