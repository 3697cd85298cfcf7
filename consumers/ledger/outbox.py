"""The outbox relay: outcomes committed with the postings are published, then their row deleted.

At least once: a crash after the send and before the delete publishes the batch again on
restart. Outcome ids are derived from request ids, so downstream consumers drop the copy.
"""

from __future__ import annotations

import asyncio
from typing import Final

import asyncpg
from aiokafka import AIOKafkaProducer

from consumers.ledger import sql

BACKLOG_ROWS_MAX: Final = 50  # outbox rows relayed per backlog transaction
BACKLOG_ROUNDS_MAX: Final = 1_000  # bounds one backlog drain (50,000 batches)


async def send_all(producer: AIOKafkaProducer, *, topic: str, keys: list[str], payloads: list[bytes]) -> None:
    """Sends messages and waits until Kafka acknowledged every one (acks=all)."""
    futures = [await producer.send(topic, value, key=key.encode()) for key, value in zip(keys, payloads, strict=True)]
    await asyncio.gather(*futures)


class OutcomeRelay:
    """Publishes outcome batches to the outcomes topic and clears their outbox rows."""

    def __init__(self, *, producer: AIOKafkaProducer, pool: asyncpg.Pool, topic: str) -> None:
        self.producer = producer
        self.pool = pool
        self.topic = topic

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
                    await send_all(self.producer, topic=self.topic, keys=row["keys"], payloads=row["payloads"])
                    await connection.execute(sql.DELETE_OUTBOX, row["id"])
            relayed += len(rows)
            if len(rows) < BACKLOG_ROWS_MAX:
                break
        return relayed
