"""What the API holds while it runs: one asyncpg pool, one Kafka producer, the deployment key, and one
connection listening for payments' changes (payment_changes.py).

Opened once at start (`Resources.open`), handed to requests through FastAPI dependencies
(producers/api/deps.py), closed once at shutdown. Opening fails as a two-line SandboxError when
PostgreSQL or Kafka does not answer in time, or the accounts topic is missing; the database's
migrations are applied on the way (idempotent, as the ledger does).

Outages while serving are answered per request: the services catch `DB_UNAVAILABLE` and
`KAFKA_UNAVAILABLE` and answer 503 `service_unavailable`; nothing is half-stored.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Final

import asyncpg
from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError

from infra import kafka_clients
from infra.db import CONNECT_TIMEOUT_S, database_unreachable, keep_session, migrate
from infra.kafka_admin import PROBE_LOGGERS, kafka_unreachable, topic_missing
from infra.secrets import deployment_key
from infra.settings import Settings
from producers.api.payment_changes import PaymentChanges
from producers.api.problems import ApiError
from schemas.envelope import Envelope
from schemas.topics import ACCOUNTS, topic_for

POOL_SIZE_MAX: Final = 10
POOL_ACQUIRE_TIMEOUT_S: Final = 5.0
KAFKA_START_TIMEOUT_S: Final = 10.0
KAFKA_REQUEST_TIMEOUT_MS: Final = 5_000
PUBLISH_TIMEOUT_S: Final = 10.0  # above the producer's own request timeout, so its error comes first
PRODUCER_CLIENT_ID: Final = "kpsandbox-api"

# Caught by name around every database or Kafka call made for a request: each means "not now".
DB_UNAVAILABLE: Final = (
    OSError,
    TimeoutError,
    asyncpg.PostgresConnectionError,
    asyncpg.CannotConnectNowError,
    asyncpg.InterfaceError,  # the pool is closing, or a connection was lost mid-query
)
KAFKA_UNAVAILABLE: Final = (KafkaError, TimeoutError, OSError)


def unavailable(what: str) -> ApiError:
    """The 503 a request gets when PostgreSQL or Kafka does not answer."""
    return ApiError(
        status=503,
        code="service_unavailable",
        detail=f"{what} did not answer in time; nothing was stored — retry in a few seconds",
        headers={"Retry-After": "5"},
    )


class _DropRecords(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return False


@contextlib.contextmanager
def _quiet_kafka_bootstrap() -> Iterator[None]:
    """Silences aiokafka's per-attempt ERROR records while the start checks whether Kafka answers:
    an unreachable broker is reported once, as the two-line SandboxError."""
    drop = _DropRecords()
    for name in PROBE_LOGGERS:
        logging.getLogger(name).addFilter(drop)
    try:
        yield
    finally:
        for name in PROBE_LOGGERS:
            logging.getLogger(name).removeFilter(drop)


@dataclass(frozen=True)
class Resources:
    """The API's connections and key. `open` makes them, `close` releases them."""

    settings: Settings
    pool: asyncpg.Pool
    producer: AIOKafkaProducer
    key: bytes
    changes: PaymentChanges  # wakes requests waiting on a payment (?wait=N)

    @classmethod
    async def open(cls, settings: Settings) -> Resources:
        """Migrates, connects to PostgreSQL and Kafka, and reads (or makes) the deployment key.
        SandboxError, with nothing left open, when a service does not answer."""
        key = deployment_key(settings)
        await migrate(settings.dsn)  # raises database_unreachable when PostgreSQL is away
        try:
            pool = await asyncio.wait_for(
                asyncpg.create_pool(
                    settings.dsn,
                    min_size=1,
                    max_size=POOL_SIZE_MAX,
                    timeout=CONNECT_TIMEOUT_S,
                    reset=keep_session,  # the API sets no session state (bench/api.py: a round trip per query),
                ),
                CONNECT_TIMEOUT_S * 2,
            )
        except (OSError, TimeoutError, asyncpg.PostgresError) as error:
            raise database_unreachable(settings.dsn) from error
        try:
            changes = await PaymentChanges.open(settings.dsn)
        except (OSError, TimeoutError, asyncpg.PostgresError) as error:
            await pool.close()
            raise database_unreachable(settings.dsn) from error
        try:
            producer = await _started_producer(settings)
        except BaseException:
            await changes.close()
            await pool.close()
            raise
        return cls(settings=settings, pool=pool, producer=producer, key=key, changes=changes)

    async def close(self) -> None:
        """Flushes and stops the producer, closes the listener and the pool."""
        try:
            await self.producer.stop()
        finally:
            try:
                await self.changes.close()
            finally:
                await asyncio.wait_for(self.pool.close(), POOL_ACQUIRE_TIMEOUT_S * 2)

    async def publish(self, event: Envelope) -> None:
        """Publishes one event to its catalog topic, keyed as the contract says, and waits for every
        in-sync replica to have it (acks=all). KAFKA_UNAVAILABLE errors pass to the caller."""
        topic = self.settings.topic(topic_for(event))
        await asyncio.wait_for(
            self.producer.send_and_wait(
                topic, value=event.model_dump_json().encode(), key=event.partition_key.encode()
            ),
            PUBLISH_TIMEOUT_S,
        )


async def _started_producer(settings: Settings) -> AIOKafkaProducer:
    """An idempotent acks=all producer that has seen the accounts topic; SandboxError otherwise."""
    producer = kafka_clients.producer(
        settings,
        "api",
        client_id=PRODUCER_CLIENT_ID,
        acks="all",
        enable_idempotence=True,
        linger_ms=0,  # one event per request: waiting for company only adds latency
        request_timeout_ms=KAFKA_REQUEST_TIMEOUT_MS,
    )
    try:
        with _quiet_kafka_bootstrap():
            await asyncio.wait_for(producer.start(), KAFKA_START_TIMEOUT_S)
    except KAFKA_UNAVAILABLE as error:
        await producer.stop()
        raise kafka_unreachable(settings) from error
    topic = settings.topic(ACCOUNTS)
    try:
        partitions = await asyncio.wait_for(producer.partitions_for(topic), KAFKA_START_TIMEOUT_S)
    except KAFKA_UNAVAILABLE:
        partitions = set()
    if not partitions:
        await producer.stop()
        raise topic_missing(settings, topic)
    return producer
