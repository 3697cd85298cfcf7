"""How many requests a ledger group has yet to settle, seen from outside its processes.

`settle --processes N --until-idle` asks this, not the processes: a process that is between a
revoke and the next assignment holds no partition, so on its own it cannot tell "drained" from
"waiting for the group", and N processes rebalance as each one joins and leaves. The database
is where the group's progress is (consumer.py), so the backlog is each partition's readable end
(read_committed: the last stable offset) minus the next offset the database holds for the group;
a partition no process has held yet counts from its first offset.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Final

import asyncpg
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.errors import KafkaError

from infra import kafka_clients
from infra.db import CONNECT_TIMEOUT_S
from infra.settings import Settings
from schemas.topics import PAYMENT_REQUESTS

GROUP_OFFSETS: Final = """
SELECT partition, next_offset FROM ledger_offsets WHERE consumer_group = $1 AND topic = $2
"""
ANSWER_TIMEOUT_S: Final = 10.0


def unsettled(ends: dict[int, int], starts: dict[int, int], stored: dict[int, int]) -> int:
    """Requests between the group's stored offsets (a partition never held: its first offset) and
    the readable ends."""
    return sum(max(0, end - stored.get(partition, starts[partition])) for partition, end in ends.items())


async def stored_offsets(connection: asyncpg.Connection, group: str, topic: str) -> dict[int, int]:
    """The next offset the database holds for the group, per partition it has settled from."""
    rows = await connection.fetch(GROUP_OFFSETS, group, topic, timeout=ANSWER_TIMEOUT_S)
    return {row["partition"]: row["next_offset"] for row in rows}


class GroupBacklog:
    """Kafka clients (a producer only for the topic's partitions: a consumer outside a group has no
    public way to ask) and one database connection, reopened after a failure; `count()` is None
    while either does not answer (or the processes have not migrated the database yet)."""

    def __init__(self, settings: Settings, group: str) -> None:
        self.settings = settings
        self.group = group
        self.topic = settings.topic(PAYMENT_REQUESTS)
        self._consumer: AIOKafkaConsumer | None = None
        self._producer: AIOKafkaProducer | None = None
        self._connection: asyncpg.Connection | None = None

    async def count(self) -> int | None:
        """Requests on the topic the group has not settled yet; None when it cannot be told now."""
        try:
            ends, starts = await self._offsets()
            stored = await self._stored()
        except (OSError, TimeoutError, KafkaError, asyncpg.PostgresError, asyncpg.InterfaceError):
            await self.close()  # reopened on the next call
            return None
        return unsettled(ends, starts, stored)

    async def _offsets(self) -> tuple[dict[int, int], dict[int, int]]:
        if self._producer is None:
            self._producer = kafka_clients.producer(self.settings, "ledger")
            await self._producer.start()
        if self._consumer is None:
            self._consumer = kafka_clients.consumer(
                self.settings, "ledger", group_id=None, isolation_level="read_committed", enable_auto_commit=False
            )
            await self._consumer.start()
        partitions = await asyncio.wait_for(self._producer.partitions_for(self.topic), ANSWER_TIMEOUT_S)
        tps = [TopicPartition(self.topic, p) for p in sorted(partitions)]
        ends = await asyncio.wait_for(self._consumer.end_offsets(tps), ANSWER_TIMEOUT_S)
        starts = await asyncio.wait_for(self._consumer.beginning_offsets(tps), ANSWER_TIMEOUT_S)
        return {tp.partition: o for tp, o in ends.items()}, {tp.partition: o for tp, o in starts.items()}

    async def _stored(self) -> dict[int, int]:
        if self._connection is None or self._connection.is_closed():
            self._connection = await asyncpg.connect(self.settings.dsn, timeout=CONNECT_TIMEOUT_S)
        return await stored_offsets(self._connection, self.group, self.topic)

    async def close(self) -> None:
        """Closes the client and the connection (safe to call twice)."""
        clients = (self._consumer, self._producer)
        self._consumer = self._producer = None
        connection, self._connection = self._connection, None
        for client in clients:
            if client is not None:
                with contextlib.suppress(KafkaError, OSError):
                    await client.stop()
        if connection is not None:
            with contextlib.suppress(OSError, asyncpg.PostgresError, asyncpg.InterfaceError):
                await connection.close(timeout=ANSWER_TIMEOUT_S)
