"""The ledger process's connections, opened together and closed together: the database pool, the
Kafka producer and consumer, and the workers built on them (outcome relay, batch writer, accounts
reader). The settler owns one `Clients` for as long as it runs; nothing else closes them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

import asyncpg
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.errors import KafkaError

from consumers.ledger.accounts import AccountsReader
from consumers.ledger.observe import LedgerMetrics
from consumers.ledger.outbox import OutcomeRelay
from consumers.ledger.retries import BatchWriter
from infra import kafka_clients
from infra.db import database_unreachable, keep_session, migrate
from infra.kafka_admin import kafka_unreachable
from infra.kafka_lookups import REQUEST_TIMEOUT_MS
from infra.settings import Settings
from schemas.topics import ACCOUNTS, DEAD_LETTER, PAYMENT_OUTCOMES, PAYMENT_REQUESTS

POOL_SIZE_MAX: Final = 3  # the batch writer, the relay, and the accounts reader or a gauge query
FETCH_BYTES_PER_PARTITION_MAX: Final = 4 * 1024 * 1024
SESSION_TIMEOUT_MS: Final = 6_000  # a killed member's partitions move on after this (broker minimum)
PRODUCE_LINGER_MS: Final = 5
# How long the broker holds a fetch at the log's end. Requests on that connection (the end offsets of
# every idle check) wait behind it: with the default 500 ms, `--until-idle` spent 1.45 s of a 2 s empty
# run in three idle checks. New records still end a held fetch at once, so settling is not slowed.
FETCH_WAIT_MS_MAX: Final = 50


@dataclass(frozen=True, slots=True)
class Clients:
    """Everything one ledger process talks to."""

    pool: asyncpg.Pool
    producer: AIOKafkaProducer
    consumer: AIOKafkaConsumer
    relay: OutcomeRelay
    writer: BatchWriter
    accounts: AccountsReader

    async def close(self) -> None:
        """Stops the workers, then the clients they use, then the pool."""
        await self.relay.stop()
        await self.consumer.stop()
        await self.accounts.stop()
        await self.producer.stop()
        await self.pool.close()


async def connect(settings: Settings, *, group: str, metrics: LedgerMetrics) -> Clients:
    """Migrates the database (idempotent), opens the pool, builds every client and starts the
    producer. An unreachable database or broker is a SandboxError that says what to do, and
    nothing is left open behind it."""
    await migrate(settings.dsn)  # a fresh external database needs no separate step
    try:
        # Its users set no session state (no SET, LISTEN or session advisory lock; the digest's cursor lives
        # in a transaction): no reset query at each release, two round trips saved per batch.
        pool = await asyncpg.create_pool(settings.dsn, min_size=1, max_size=POOL_SIZE_MAX, reset=keep_session)
    except (OSError, TimeoutError, asyncpg.PostgresError) as error:
        raise database_unreachable(settings.dsn) from error
    producer = kafka_clients.producer(
        settings, "ledger", acks="all", enable_idempotence=True, linger_ms=PRODUCE_LINGER_MS
    )
    consumer = kafka_clients.consumer(
        settings,
        "ledger",
        group_id=group,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        isolation_level="read_committed",
        max_partition_fetch_bytes=FETCH_BYTES_PER_PARTITION_MAX,
        fetch_max_wait_ms=FETCH_WAIT_MS_MAX,
        session_timeout_ms=SESSION_TIMEOUT_MS,
        heartbeat_interval_ms=SESSION_TIMEOUT_MS // 4,
        request_timeout_ms=REQUEST_TIMEOUT_MS,
    )
    from consumers.ledger.publisher import OutcomePublisher  # confluent-kafka: not on every CLI start-up

    relay = OutcomeRelay(
        producer=producer,
        pool=pool,
        topic=settings.topic(PAYMENT_OUTCOMES),
        dead_letter_topic=settings.topic(DEAD_LETTER),
        on_retry=lambda: metrics.retried("relay"),
        outcomes=OutcomePublisher(settings),
    )
    writer = BatchWriter(pool=pool, group=group, topic=settings.topic(PAYMENT_REQUESTS), on_retry=metrics.retried)
    accounts = AccountsReader(
        settings=settings, topic=settings.topic(ACCOUNTS), group=group, pool=pool, producer=producer, relay=relay
    )
    try:
        await producer.start()
    except (KafkaError, OSError) as error:
        await pool.close()
        for client in (producer, consumer, accounts):  # none left "unclosed" at exit
            await client.stop()
        raise kafka_unreachable(settings) from error
    return Clients(pool, producer, consumer, relay, writer, accounts)
