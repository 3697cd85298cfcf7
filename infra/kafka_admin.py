"""Kafka administration: is the cluster there, and do the catalog's topics exist."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import Final

from aiokafka import TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaConnectionError, KafkaError, TopicAlreadyExistsError

from infra import kafka_clients
from infra.errors import SandboxError
from infra.kafka_tls import connection_problem
from infra.settings import Settings
from schemas.topics import CATALOG, TopicSpec

ADMIN_TIMEOUT_MS: Final = 10_000
DIAGNOSIS_S_MAX: Final = 25.0  # the probe behind a secured cluster's connection error
# The loggers a failed bootstrap writes to (a logger's filter does not apply to its children).
PROBE_LOGGERS: Final = ("aiokafka", "aiokafka.client", "aiokafka.conn", "aiokafka.admin.client")


class _BootstrapNoise(logging.Filter):
    """Drops aiokafka's records while a probe asks whether a cluster answers at all.

    aiokafka logs every failed bootstrap attempt at ERROR; the probe reports its own two-line
    error instead. Scoped to the probe: no library logger is ever silenced for the whole process.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        return False


def _admin(settings: Settings) -> AIOKafkaAdminClient:
    return kafka_clients.admin(settings, "admin", request_timeout_ms=ADMIN_TIMEOUT_MS, client_id="kpsandbox-admin")


async def _started_admin(settings: Settings) -> AIOKafkaAdminClient:
    """A connected admin client (the caller closes it); SandboxError naming the setting if Kafka is away."""
    admin = _admin(settings)
    try:
        await asyncio.wait_for(admin.start(), timeout=ADMIN_TIMEOUT_MS / 1000)
    except (TimeoutError, KafkaConnectionError, OSError) as error:
        await admin.close()
        raise kafka_unreachable(settings) from error
    return admin


async def _live_broker_ids(settings: Settings) -> frozenset[int]:
    admin = _admin(settings)
    noise = _BootstrapNoise()
    for name in PROBE_LOGGERS:
        logging.getLogger(name).addFilter(noise)
    try:
        await asyncio.wait_for(admin.start(), timeout=ADMIN_TIMEOUT_MS / 1000)
        cluster = await admin.describe_cluster()
        return frozenset(int(broker["node_id"]) for broker in cluster.get("brokers") or [])
    except (TimeoutError, KafkaError, OSError):
        return frozenset()
    finally:
        await admin.close()
        for name in PROBE_LOGGERS:
            logging.getLogger(name).removeFilter(noise)


def live_broker_ids(settings: Settings) -> frozenset[int]:
    """The node ids of the brokers the cluster reports alive (registered and not fenced), asked as
    every client of these settings asks (the `admin` principal on a secured local broker); empty
    when the cluster does not answer."""
    return asyncio.run(_live_broker_ids(settings))


def cluster_answers(settings: Settings) -> bool:
    """True when the cluster answers a DescribeCluster request with at least one broker."""
    return bool(live_broker_ids(settings))


def min_insync_replicas(replication: int) -> int:
    """`min.insync.replicas` for a topic of this replication factor: a majority of the replicas, but
    never all of them, so `acks=all` writes go on with one broker down (RF 3 → 2, RF 2 → 1, RF 5 → 3)."""
    return max(1, min(replication - 1, replication // 2 + 1))


def durability_configs(replication: int) -> dict[str, str]:
    """The topic configs that follow from the replication factor: `min.insync.replicas` when the
    topic is replicated (an unreplicated topic keeps the cluster's default)."""
    return {"min.insync.replicas": str(min_insync_replicas(replication))} if replication > 1 else {}


def new_topic(settings: Settings, name: str, partitions: int, configs: dict[str, str] | None = None) -> NewTopic:
    """A topic to create with this deployment's replication factor and the min ISR that goes with it."""
    replication = settings.topic_replication_factor
    return NewTopic(
        name=name,
        num_partitions=partitions,
        replication_factor=replication,
        topic_configs=(configs or {}) | durability_configs(replication),
    )


async def ensure_topics(settings: Settings, specs: Iterable[TopicSpec] = CATALOG) -> list[str]:
    """Creates the catalog topics that are missing; returns the names it created. Idempotent."""
    wanted = [new_topic(settings, settings.topic(spec), spec.partitions, spec.configs()) for spec in specs]
    return await _create_missing(settings, wanted)


async def ensure_topic(settings: Settings, name: str, partitions: int) -> list[str]:
    """Creates one ad-hoc topic (smoke tests, benchmarks) if it is missing."""
    return await _create_missing(settings, [new_topic(settings, name, partitions)])


async def _check_replication_fits(settings: Settings, admin: AIOKafkaAdminClient, wanted: list[NewTopic]) -> None:
    """Refuses, before any topic is created, a replication factor the cluster has too few brokers
    for (Kafka would refuse each topic one by one, or an external cluster leave some created)."""
    replication = max((topic.replication_factor for topic in wanted), default=1)
    if replication <= 1:
        return
    brokers = len((await admin.describe_cluster()).get("brokers") or [])
    if replication > brokers:
        raise SandboxError(
            f"the replication factor {replication} is more than the {brokers} broker(s) Kafka at "
            f"{settings.bootstrap_servers} has running; no topic was created",
            "lower KPSANDBOX_KAFKA_REPLICATION_FACTOR, or start the missing brokers "
            "(locally: KPSANDBOX_KAFKA_BROKERS and `kpsandbox up`)",
        )


async def _create_missing(settings: Settings, wanted: list[NewTopic]) -> list[str]:
    admin = await _started_admin(settings)
    try:
        existing = set(await admin.list_topics())
        if any(topic.name not in existing for topic in wanted):
            await _check_replication_fits(settings, admin, wanted)
        created: list[str] = []
        for topic in wanted:
            if topic.name in existing:
                continue
            try:
                await admin.create_topics([topic])
                created.append(topic.name)
            except TopicAlreadyExistsError:
                pass  # Another process created it between our list and create: fine.
        await _wait_topics_visible(admin, [topic.name for topic in wanted])
        return created
    finally:
        await admin.close()


async def _wait_topics_visible(admin: AIOKafkaAdminClient, names: list[str]) -> None:
    """Waits (bounded) until metadata lists every topic, so producers don't race creation."""
    attempts_max = 50
    for _ in range(attempts_max):
        if set(names) <= set(await admin.list_topics()):
            return
        await asyncio.sleep(0.1)


async def delete_topics(settings: Settings, names: list[str]) -> None:
    """Deletes topics (used by tests to clean up their prefixed topics)."""
    admin = await _started_admin(settings)
    try:
        await admin.delete_topics(names)
    finally:
        await admin.close()


def topic_missing(settings: Settings, topic: str, create: str = "`kpsandbox up`") -> SandboxError:
    """The one error for a topic a client cannot see: missing, or (on a secured cluster) not granted
    to this process's Kafka user, which the broker reports the same way."""
    message = f"topic {topic} does not exist on {settings.bootstrap_servers}"
    hint = f"create the catalog topics with {create} (check KPSANDBOX_TOPIC_PREFIX)"
    if settings.kafka_protocol != "PLAINTEXT":
        message += ", or this process's Kafka user may not use it"
        hint += "; on a secured broker check the user's ACLs (docs/security.md, `kpsandbox up` grants the sandbox's)"
    return SandboxError(message, hint)


def kafka_unreachable(settings: Settings) -> SandboxError:
    """The one error every Kafka client in the sandbox raises when the cluster does not answer.

    On a secured cluster the cause is often not the cluster at all but a setting (a CA, a password,
    a mechanism): one probe connection, on a thread of its own (callers are inside an event loop)
    and bounded, finds which, so the error names the setting to fix rather than saying "unreachable".
    """
    if settings.kafka_protocol != "PLAINTEXT":
        with ThreadPoolExecutor(max_workers=1) as pool:
            try:
                problem = pool.submit(asyncio.run, connection_problem(settings, "admin")).result(DIAGNOSIS_S_MAX)
            except (TimeoutError, SandboxError) as error:
                problem = error if isinstance(error, SandboxError) else None
        if problem is not None:
            return problem
    if settings.kafka_embedded:
        hint = "start the local services with `kpsandbox up` (or set KPSANDBOX_KAFKA_BOOTSTRAP_SERVERS)"
    else:
        hint = "check KPSANDBOX_KAFKA_BOOTSTRAP_SERVERS and that the cluster is running"
    return SandboxError(f"Kafka at {settings.bootstrap_servers} is not reachable", hint)


async def end_offsets(settings: Settings, topics: list[str]) -> dict[tuple[str, int], int]:
    """The log-end offset of every partition of the given topics (those that do not exist have none)."""
    admin = await _started_admin(settings)
    try:
        described = await admin.describe_topics(topics)
    finally:
        await admin.close()
    partitions = [
        TopicPartition(topic["topic"], part["partition"]) for topic in described for part in topic["partitions"]
    ]
    if not partitions:  # no consumer: aiokafka's stop() right after start() raises CancelledError
        return {}
    consumer = kafka_clients.consumer(settings, "admin", enable_auto_commit=False)
    await consumer.start()
    try:
        # Assigned first, every topic is in one metadata request; otherwise aiokafka learns them one
        # at a time, sleeping its 100 ms retry backoff each time (0.61 s for the six catalog topics).
        consumer.assign(partitions)
        consumer.pause(*partitions)  # no fetch held at the log's end (500 ms) ahead of the request below
        ends = await consumer.end_offsets(partitions)
    finally:
        await consumer.stop()
    return {(tp.topic, tp.partition): offset for tp, offset in ends.items()}


async def group_lag(settings: Settings, group: str, topics: list[str]) -> dict[tuple[str, int], int]:
    """Messages not yet committed by `group`, per partition (end offset − committed offset)."""
    ends = await end_offsets(settings, topics)
    admin = await _started_admin(settings)
    try:
        committed = await admin.list_consumer_group_offsets(group)
    finally:
        await admin.close()
    done = {(tp.topic, tp.partition): max(0, meta.offset) for tp, meta in committed.items()}
    return {key: end - done.get(key, 0) for key, end in ends.items()}


async def topic_partitions(settings: Settings, names: Iterable[str]) -> dict[str, list[int]]:
    """The partitions of each topic that exists among `names` (missing topics are left out)."""
    admin = await _started_admin(settings)
    try:
        existing = set(await admin.list_topics())
        wanted = [name for name in names if name in existing]
        described = await admin.describe_topics(wanted) if wanted else []
    finally:
        await admin.close()
    return {t["topic"]: sorted(p["partition"] for p in t["partitions"]) for t in described if not t.get("error_code")}
