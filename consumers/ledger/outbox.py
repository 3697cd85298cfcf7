"""The outbox relay: outcomes committed with the postings are published, then their row deleted.

At least once: a crash after the send and before the delete publishes the batch again on
restart. Outcome ids are derived from request ids, so downstream consumers drop the copy.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Final

import asyncpg
from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError
from aiokafka.partitioner import DefaultPartitioner
from aiokafka.producer.message_accumulator import BatchBuilder

from consumers.ledger import sql

log = logging.getLogger(__name__)

# The database is away (restart, failover) or two transactions collided: try again later.
DB_TRANSIENT: Final = (
    OSError,
    TimeoutError,
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,
    asyncpg.OperatorInterventionError,
    asyncpg.DeadlockDetectedError,
    asyncpg.SerializationError,
    asyncpg.InternalClientError,  # a connection lost mid-transaction cannot even roll back
)

PUBLISH_QUEUE_BATCHES_MAX: Final = 4  # committed batches waiting to be published (backpressure)
BACKLOG_ROWS_MAX: Final = 50  # outbox rows relayed per backlog transaction
BACKLOG_ROUNDS_MAX: Final = 1_000  # bounds one backlog drain (50,000 batches)


_PARTITIONER: Final = DefaultPartitioner()
PARTITION_CACHE_KEYS_MAX: Final = 200_000  # murmur2 in pure Python is costly; payers repeat
_partition_cache: dict[tuple[bytes, int], int] = {}


def partition_for(key: bytes, partitions: list[int]) -> int:
    """The partition a keyed send() would choose (murmur2), memoised with a bounded cache."""
    cache_key = (key, len(partitions))
    partition = _partition_cache.get(cache_key)
    if partition is None:
        if len(_partition_cache) >= PARTITION_CACHE_KEYS_MAX:
            _partition_cache.clear()
        partition = _partition_cache[cache_key] = _PARTITIONER(key, partitions, partitions)
    return partition


async def send_all(producer: AIOKafkaProducer, *, topic: str, keys: list[str], payloads: list[bytes]) -> None:
    """Sends messages in per-partition batches and waits until Kafka acknowledged all (acks=all).

    Partitions are chosen exactly as a keyed `send()` would (murmur2 of the key), so one payer's
    outcomes stay on one partition; whole batches avoid aiokafka's per-message send overhead.
    """
    partitions = sorted(await producer.partitions_for(topic))
    batches: dict[int, BatchBuilder] = {}
    futures = []
    for key, value in zip(keys, payloads, strict=True):
        key_bytes = key.encode()
        partition = partition_for(key_bytes, partitions)
        batch = batches.get(partition)
        if batch is None:
            batch = batches[partition] = producer.create_batch()
        if batch.append(key=key_bytes, value=value, timestamp=None) is None:  # full: ship it, start anew
            futures.append(await producer.send_batch(batch, topic, partition=partition))
            batch = batches[partition] = producer.create_batch()
            batch.append(key=key_bytes, value=value, timestamp=None)
    for partition, batch in batches.items():
        futures.append(await producer.send_batch(batch, topic, partition=partition))
    await asyncio.gather(*futures)


class OutcomeRelay:
    """Publishes outcome batches to the outcomes topic and clears their outbox rows."""

    def __init__(self, *, producer: AIOKafkaProducer, pool: asyncpg.Pool, topic: str) -> None:
        self.producer = producer
        self.pool = pool
        self.topic = topic
        self._queue: asyncio.Queue[tuple[int, list[str], list[bytes], Callable[[], Awaitable[None]]]] = asyncio.Queue(
            maxsize=PUBLISH_QUEUE_BATCHES_MAX
        )

    async def submit(
        self, *, outbox_id: int, keys: list[str], payloads: list[bytes], then: Callable[[], Awaitable[None]]
    ) -> None:
        """Queues a committed batch for publishing (waits while the queue is full); `then` runs after."""
        await self._queue.put((outbox_id, keys, payloads, then))

    async def work(self) -> None:
        """Publishes queued batches in commit order, so settling the next batch overlaps the acks."""
        while True:
            outbox_id, keys, payloads, then = await self._queue.get()
            try:
                await self.publish(outbox_id=outbox_id, keys=keys, payloads=payloads)
                await then()
            except (*DB_TRANSIENT, KafkaError) as error:
                # The outbox row stays; the backlog relay publishes it once things recover.
                log.warning("outcome relay failed for outbox row %s (kept for retry): %s", outbox_id, error)
            finally:
                self._queue.task_done()

    async def drain(self) -> None:
        """Waits until every queued batch has been published (or left in the outbox)."""
        await self._queue.join()

    async def publish(self, *, outbox_id: int, keys: list[str], payloads: list[bytes]) -> None:
        """Publishes one just-committed batch, then deletes its row."""
        await send_all(self.producer, topic=self.topic, keys=keys, payloads=payloads)
        async with self.pool.acquire() as connection:
            await connection.execute(sql.DELETE_OUTBOX, outbox_id)

    async def relay_backlog(self, *, older_than_s: float) -> int:
        """Publishes rows a process left behind (it died after its commit); returns rows relayed."""
        relayed = 0
        for _ in range(BACKLOG_ROUNDS_MAX):
            async with self.pool.acquire() as connection, connection.transaction():
                rows = await connection.fetch(sql.LOCK_OUTBOX_BACKLOG, older_than_s, BACKLOG_ROWS_MAX)
                for row in rows:
                    keys, payloads = row["keys"].split("\n"), row["payloads"].split(b"\n")
                    await send_all(self.producer, topic=self.topic, keys=keys, payloads=payloads)
                    await connection.execute(sql.DELETE_OUTBOX, row["id"])
            relayed += len(rows)
            if len(rows) < BACKLOG_ROWS_MAX:
                break
        return relayed
