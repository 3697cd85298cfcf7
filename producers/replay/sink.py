"""Produces replayed records to the partition they came from, in order, accounts first.

Like the simulation's Kafka sink (producers/sinks.py), and with the same batching
(producers/batches.py): acks=all and an idempotent producer, one batch per partition, and every
accounts batch acknowledged before any other batch is sent, so a ledger settling live never
reads a request before the account.opened it names.
"""

from __future__ import annotations

import asyncio
from typing import Final

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError

from infra import kafka_clients
from infra.errors import SandboxError
from infra.kafka_admin import kafka_unreachable
from infra.settings import Settings
from producers.batches import AccountsFirstBatches

CONNECT_TIMEOUT_S: Final = 10.0
BATCH_BYTES_MAX: Final = 512 * 1024
IN_FLIGHT_BATCHES_MAX: Final = 64


class ReplaySink:
    """Owns the producer and its per-partition batches (producers/batches.py)."""

    def __init__(self, settings: Settings, accounts_topic: str) -> None:
        self.settings = settings
        self.accounts_topic = accounts_topic
        self.sent = 0
        self._producer: AIOKafkaProducer | None = None
        self._partitions: dict[str, int] = {}
        self._batches: AccountsFirstBatches | None = None

    async def start(self, topics: list[str]) -> None:
        """Connects and learns the partition counts of the target topics."""
        producer = kafka_clients.producer(
            self.settings,
            "researcher",
            client_id="kpsandbox-replay",
            acks="all",
            enable_idempotence=True,
            linger_ms=5,
            max_batch_size=BATCH_BYTES_MAX,
            request_timeout_ms=int(CONNECT_TIMEOUT_S * 1000),
        )
        try:
            await asyncio.wait_for(producer.start(), CONNECT_TIMEOUT_S)
            for name in topics:
                self._partitions[name] = len(await asyncio.wait_for(producer.partitions_for(name), CONNECT_TIMEOUT_S))
        except (TimeoutError, KafkaError, OSError) as error:
            await producer.stop()
            raise kafka_unreachable(self.settings) from error
        self._producer = producer
        self._batches = AccountsFirstBatches(
            producer, accounts_topic=self.accounts_topic, in_flight_max=IN_FLIGHT_BATCHES_MAX
        )

    async def send(self, topic: str, partition: int, key: bytes | None, value: bytes | None, headers: list) -> None:
        """Appends one record to its partition's batch; sends the batch when full."""
        assert self._batches is not None, "start() first"
        if partition >= self._partitions[topic]:
            raise SandboxError(
                f"{topic} has {self._partitions[topic]} partitions; the source has partition {partition}",
                "replay into a new prefix (the replay creates its topics with the catalog's partition counts)",
            )
        await self._batches.append(topic, partition, key, value, headers)
        self.sent += 1

    async def flush(self) -> None:
        """Sends every open batch (accounts first) and waits until all are acknowledged."""
        if self._batches is not None:
            await self._batches.flush()

    async def close(self) -> None:
        """Flushes and disconnects; safe to call twice."""
        if self._producer is None:
            return
        try:
            await self.flush()
        finally:
            producer, self._producer = self._producer, None
            await producer.stop()
