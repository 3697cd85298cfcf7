"""A network partition, not a crash: broker 3 of a local 3-broker cluster runs in its own network
namespace (KPSANDBOX_KAFKA_PARTITIONABLE_BROKER=3), and its veth link is taken down while requests
are produced and the ledger settles. The broker process keeps running, cut off: the controller fences
it and moves its leaderships, clients time out on it and move on; the link comes back, it catches up.
Nothing is lost or doubled, and the digest equals a clean re-settle (the checks of test_cluster.py).

This module's cluster is its own (ports 39792+ / 39892+), started through the real `up` path after
test_cluster.py's is gone. Network namespaces need root: CI runs as root; elsewhere it is skipped.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Final

import pytest
from aiokafka.errors import KafkaError

from consumers.gateway.bridge import GatewaySummary, run_gateway
from consumers.ledger.publisher import DELIVERY_TIMEOUT_MS
from consumers.metrics.consumer import MetricsConsumer
from consumers.views.consumer import ViewsConsumer
from infra import kafka_clients
from infra.kafka_admin import ensure_topics
from infra.kafka_ports import PARTITIONED_HOST, SHARED_HOST
from infra.local import netns, procs, stack
from infra.local.kafka import KafkaService
from infra.settings import Settings, settings_env
from schemas.events import dump_event
from schemas.topics import PAYMENT_REQUESTS, TENANT_HEADER, tenant_topics
from tests.conftest import RUN_ID
from tests.integration.test_cluster import (
    REQUESTS,
    _describe,
    _fresh,
    _leaders,
    _settle_through,
    _wait_for,
    running_kafka_only,
)
from tests.integration.test_ledger_support import make_accounts, make_requests, read_all, scalar

PORTS: Final = (39792, 39892)  # client, controller of broker 1; broker k adds 2(k-1)
CUT_OFF: Final = 3
LEADER_MOVE_WAIT_S_MAX: Final = 60.0  # the controller fences a silent broker after 9 s (broker.session.timeout.ms)
DESCRIBE_WAIT_S_MAX: Final = 10.0
COMMAND_WAIT_S_MAX: Final = 30.0
# Outcomes sent to the cut-off leader wait out librdkafka's request timeout (publisher.REQUEST_TIMEOUT_MS,
# 10 s; with its 30 s default the outbox emptied 11–31 s after the stream was settled; measured now: at
# once), then go to the new leader; at worst the relay publishes the batch again after the delivery timeout.
PUBLISH_WAIT_S_MAX: Final = 2 * DELIVERY_TIMEOUT_MS / 1000 + 30
# From the cut until every request is settled: the leadership moves (9–15 s measured), the ledger's
# clients learn it (metadata every 10 s, each request bounded at 10 s) and the rest of the stream is
# settled. Measured 18–22 s; it was 41–48 s while aiokafka's 40 s request timeout held the ledger on
# the cut-off broker (each offset lookup, then the metadata refresh itself).
SETTLED_AFTER_CUT_S_MAX: Final = 35.0
# The views and metrics consumers run beside the ledger and read its outcomes: from the cut until each
# has read the whole stream's outcomes (and the metrics consumer its requests too). Measured with their
# offset lookups bounded (infra/kafka_lookups.py): views 13.6–21.5 s, metrics 16.6–38.7 s (it has three
# clients whose metadata must move off the cut-off broker). Before, the views consumer died of aiokafka's
# 40 s request timeout on an end-offsets lookup, and the metrics consumer read everything after 39.5 s.
READ_AFTER_CUT_S_MAX: Final = 60.0
READ_WAIT_S_MAX: Final = 120.0  # how long the test waits for them at all (then it fails with the figures)
CONSUMER_STOP_S_MAX: Final = 30.0
GATEWAY_REQUESTS: Final = 600  # a tenant's requests: half before the cut, half while broker 3 is cut off
# From the cut until the tenant gateway has copied (and committed) every one of them: the ledger's bound.
# With aiokafka's 40 s request timeout on the gateway's clients it took 48.3 s.
COPIED_AFTER_CUT_S_MAX: Final = SETTLED_AFTER_CUT_S_MAX


@pytest.fixture(scope="module")
def partitionable(tmp_path_factory: pytest.TempPathFactory, settings: Settings) -> Iterator[Settings]:
    """Settings of this module's running cluster, broker 3 in its own network namespace."""
    if os.environ.get("KPSANDBOX_TEST_EXTERNAL") == "1":
        pytest.skip("starts a local cluster of its own")
    if os.geteuid() != 0 or shutil.which("ip") is None:
        pytest.skip("a network namespace needs root and iproute2 (CI runs as root)")
    config = Settings(
        state_dir=tmp_path_factory.mktemp("partitionable"),
        kafka_brokers=3,
        kafka_partitionable_broker=CUT_OFF,
        topic_prefix=f"p{RUN_ID}.",
        database_url=settings.dsn,  # `up` starts Kafka only; PostgreSQL is the shared stack's
        kafka_port=PORTS[0],
        kafka_controller_port=PORTS[1],
    )
    with running_kafka_only(config):
        yield config
    assert not netns.exists(), "`down` leaves no network namespace behind"


async def _leader_moved(config: Settings, partition: int, away_from: int) -> int:
    """Waits until `partition` of the requests topic is led by another broker than `away_from`."""
    deadline = time.monotonic() + LEADER_MOVE_WAIT_S_MAX
    while time.monotonic() < deadline:
        try:
            leader = (await asyncio.wait_for(_leaders(config), DESCRIBE_WAIT_S_MAX)).get(partition)
        except (TimeoutError, KafkaError):
            leader = None  # the admin client asked the cut-off broker: ask again
        if leader is not None and leader not in (away_from, -1):
            return leader
        await asyncio.sleep(0.5)
    waited = f"{LEADER_MOVE_WAIT_S_MAX:.0f} s"
    raise AssertionError(f"partition {partition} still led by broker {away_from} {waited} after the cut")


async def _outbox_emptied(config: Settings) -> None:
    """Waits until the relay has published every committed outcome (the outbox has no row left)."""
    deadline = time.monotonic() + PUBLISH_WAIT_S_MAX
    while time.monotonic() < deadline:
        if await scalar(config, "SELECT count(*) FROM ledger_outbox") == 0:
            return
        await asyncio.sleep(0.2)
    raise AssertionError(f"outcomes still unpublished {PUBLISH_WAIT_S_MAX:.0f} s after the stream was settled")


def _partition_command(config: Settings, action: str) -> str:
    """`kpsandbox partition ACTION` as a user runs it, with the cluster's settings; its output."""
    done = subprocess.run(
        [sys.executable, "-m", "kpsandbox", "partition", action],
        env=os.environ | settings_env(config),
        capture_output=True,
        text=True,
        timeout=COMMAND_WAIT_S_MAX,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return " ".join(done.stdout.split())


def test_the_partitionable_broker_listens_in_its_own_namespace(partitionable: Settings) -> None:
    """Brokers 1 and 2 on the shared address, broker 3 on its namespace's; all healthy; link up."""
    lines = stack.status(partitionable)
    hosts = [SHARED_HOST, SHARED_HOST, PARTITIONED_HOST]
    assert [line.endpoint for line in lines] == [f"{host}:{39792 + 2 * k}" for k, host in enumerate(hosts)]
    assert all(line.healthy and line.pid for line in lines), lines
    assert netns.exists() and not netns.is_cut()
    assert os.readlink(f"/proc/{lines[2].pid}/ns/net") != os.readlink("/proc/self/ns/net")
    assert os.readlink(f"/proc/{lines[0].pid}/ns/net") == os.readlink("/proc/self/ns/net")


async def test_a_broker_cut_off_the_network_mid_run_loses_and_doubles_nothing(
    partitionable: Settings, settings: Settings
) -> None:
    """Broker 3, leader of the stream's partition, loses its link while producing and settling; the
    second half of the stream is produced and settled while it is cut off, then the link comes back.
    The views and metrics consumers read beside the ledger: neither dies of the cut, and each reads
    the whole stream (metrics: requests and outcomes, at least) while the broker is still cut off."""
    config = await asyncio.to_thread(_fresh, partitionable, settings)
    service = KafkaService(config)
    victim = service.brokers[CUT_OFF - 1]
    pid = service.broker_pid(victim)
    partition = next(p for p, node in sorted((await _leaders(config)).items()) if node == CUT_OFF)
    moved: list[int] = []
    cut_at: list[float] = []
    settled_after: list[float] = []
    read_after: dict[str, float] = {}
    views, metrics = ViewsConsumer(config), MetricsConsumer(config, yield_to_ledger=False)
    stop = asyncio.Event()
    readers = {
        "views": asyncio.create_task(views.run(stop=stop)),
        "metrics": asyncio.create_task(metrics.run(stop=stop, serve_http=False)),
    }
    wanted = {
        "views": lambda: views.summary.records >= REQUESTS,
        "metrics": lambda: metrics.summary.records >= 2 * REQUESTS,
    }

    async def fault():  # type: ignore[no-untyped-def]
        said = await asyncio.to_thread(_partition_command, config, "cut")
        cut_at.append(time.monotonic())
        assert netns.is_cut() and f"kafka-{CUT_OFF} ({victim.endpoint}) is cut off" in said
        assert not await asyncio.to_thread(procs.port_accepts, victim.client_port, victim.host, 2.0)
        moved.append(await _leader_moved(config, partition, away_from=CUT_OFF))
        assert service.broker_pid(victim) == pid, "the cut-off broker is still running"

        def heal() -> None:  # runs once the rest is produced: all settled and published before the link is back
            asyncio.run(_wait_for(config, "SELECT count(*) FROM ledger_requests", at_least=REQUESTS))
            settled_after.append(time.monotonic() - cut_at[0])
            asyncio.run(_outbox_emptied(config))  # a row goes once Kafka acknowledged every outcome (acks=all)
            print(f"settled {settled_after[0]:.1f} s, outbox empty {time.monotonic() - cut_at[0]:.1f} s after the cut")
            deadline = time.monotonic() + READ_WAIT_S_MAX
            while len(read_after) < len(wanted) and time.monotonic() < deadline:
                for name, done in wanted.items():
                    if name not in read_after and (done() or readers[name].done()):
                        read_after[name] = time.monotonic() - cut_at[0]
                time.sleep(0.2)
            print("read after the cut: " + ", ".join(f"{name} {s:.1f} s" for name, s in read_after.items()))
            assert netns.is_cut(), "the whole stream was settled and its outcomes published with broker 3 cut off"
            assert "is reconnected" in _partition_command(config, "heal")
            service.wait_healthy()

        return heal

    try:
        await _settle_through(config, settings, fault, seed=63, partition=partition)
    finally:
        stop.set()
        await asyncio.wait_for(asyncio.gather(*readers.values(), return_exceptions=True), CONSUMER_STOP_S_MAX)
    failed = {name: repr(task.exception()) for name, task in readers.items() if task.exception() is not None}
    assert not failed, f"consumers failed while a leader was cut off: {failed}"
    assert views.summary.records >= REQUESTS and metrics.summary.records >= 2 * REQUESTS
    assert all(s <= READ_AFTER_CUT_S_MAX for s in read_after.values()) and len(read_after) == len(wanted), (
        f"read the outcomes after the cut: {read_after} (at most {READ_AFTER_CUT_S_MAX:.0f} s each)"
    )
    assert moved and moved[0] != CUT_OFF
    assert settled_after[0] <= SETTLED_AFTER_CUT_S_MAX, (
        f"the stream was settled {settled_after[0]:.1f} s after the cut: the ledger kept asking the cut-off leader"
    )
    assert service.broker_pid(victim) == pid, "the broker came back without a restart"
    assert not netns.is_cut()


async def _no_partition_led_by(config: Settings, names: list[str], node: int) -> None:
    """Waits until no partition of `names` is led by `node` (nor leaderless)."""
    deadline = time.monotonic() + LEADER_MOVE_WAIT_S_MAX
    while time.monotonic() < deadline:
        try:
            described = await asyncio.wait_for(_describe(config, names), DESCRIBE_WAIT_S_MAX)
        except (TimeoutError, KafkaError):
            described = []  # the admin client asked the cut-off broker: ask again
        leaders = [p["leader"] for topic in described for p in topic["partitions"]]
        if leaders and node not in leaders and -1 not in leaders:
            return
        await asyncio.sleep(0.5)
    waited = f"{LEADER_MOVE_WAIT_S_MAX:.0f} s"
    raise AssertionError(f"{names} still had a partition led by broker {node} {waited} after the cut")


async def _send(config: Settings, topic: str, events: list) -> None:
    """acks=all and idempotent, keyed as a tenant's client sends them."""
    producer = kafka_clients.producer(config, "admin", acks="all", enable_idempotence=True, linger_ms=5)
    await producer.start()
    try:
        sends = [await producer.send(topic, dump_event(e), key=e.partition_key.encode()) for e in events]
        await asyncio.gather(*sends)
    finally:
        await producer.stop()


async def test_the_tenant_gateway_copies_each_request_once_while_a_broker_is_cut_off(
    partitionable: Settings, settings: Settings
) -> None:
    """The tenant gateway (a group consumer and a transactional producer) runs while broker 3, which
    leads partitions of the tenant's topic and of the requests topic, is cut off: it does not die,
    copies the requests sent before and during the cut within COPIED_AFTER_CUT_S_MAX, and after the
    link is back the requests topic holds each of them exactly once, stamped with the tenant."""
    config = await asyncio.to_thread(_fresh, partitionable, settings)
    tenant = f"ten_{RUN_ID}{os.getpid():08x}"
    spec, _ = tenant_topics(tenant)
    await ensure_topics(config, [spec])
    names = [config.topic(spec), config.topic(PAYMENT_REQUESTS)]
    led = [p["partition"] for p in (await _describe(config, names[:1]))[0]["partitions"] if p["leader"] == CUT_OFF]
    assert led, "broker 3 leads a partition of the tenant's topic (replicas are spread over the brokers)"
    rng = random.Random(71)
    _, citizens, merchants, agents, employer = make_accounts(rng, citizens=40, merchants=4)
    requests = make_requests(
        rng, count=GATEWAY_REQUESTS, citizens=citizens, merchants=merchants, agents=agents, employer=employer
    )
    summary, stop = GatewaySummary(), asyncio.Event()
    gateway = asyncio.create_task(run_gateway(config, stop=stop, summary=summary))
    copied_after: list[float] = []
    try:
        await _send(config, names[0], requests[: GATEWAY_REQUESTS // 2])
        await _wait_until(lambda: summary.copied >= GATEWAY_REQUESTS // 2 or gateway.done())
        assert summary.copied == GATEWAY_REQUESTS // 2, f"before the cut: {summary.copied} copied, {gateway!r}"
        assert "is cut off" in await asyncio.to_thread(_partition_command, config, "cut")
        cut_at = time.monotonic()
        await _no_partition_led_by(config, names, CUT_OFF)
        await _send(config, names[0], requests[GATEWAY_REQUESTS // 2 :])
        await _wait_until(lambda: summary.copied >= GATEWAY_REQUESTS or gateway.done())
        copied_after.append(time.monotonic() - cut_at)
        print(f"the gateway copied all {copied_after[0]:.1f} s after the cut ({summary.transactions} commits)")
        assert netns.is_cut(), "everything was copied with broker 3 still cut off"
    finally:
        if netns.is_cut():
            assert "is reconnected" in await asyncio.to_thread(_partition_command, config, "heal")
        stop.set()
        stopped = await asyncio.wait_for(asyncio.gather(gateway, return_exceptions=True), CONSUMER_STOP_S_MAX)
    await asyncio.to_thread(KafkaService(config).wait_healthy)
    assert not isinstance(stopped[0], BaseException), f"the gateway failed while a leader was cut off: {stopped[0]!r}"
    assert copied_after[0] <= COPIED_AFTER_CUT_S_MAX, f"copied {copied_after[0]:.1f} s after the cut"
    records = await read_all(config, PAYMENT_REQUESTS, expected=GATEWAY_REQUESTS, isolation_level="read_committed")
    ids = [json.loads(r.value)["event_id"] for r in records]
    assert sorted(ids) == sorted(str(e.event_id) for e in requests), "each request copied exactly once"
    assert all(dict(r.headers).get(TENANT_HEADER) == tenant.encode() for r in records)


async def _wait_until(condition) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + READ_WAIT_S_MAX
    while not condition() and time.monotonic() < deadline:
        await asyncio.sleep(0.1)
