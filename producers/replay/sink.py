"""Produces replayed records to the partition they came from, in order, accounts first.

Like the simulation's Kafka sink (producers/sinks.py): acks=all and an idempotent producer, one
batch per partition, and every accounts batch acknowledged before any other batch is sent, so a
ledger settling live never reads a request before the account.opened it names.
"""

from __future__ import annotations

import asyncio
from collections import deque
from typing import Any, Final

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError

from infra.errors import SandboxError
from infra.kafka_admin import kafka_unreachable
from infra.settings import Settings

CONNECT_TIMEOUT_S: Final = 10.0
BATCH_BYTES_MAX: Final = 512 * 1024
IN_FLIGHT_BATCHES_MAX: Final = 64


class ReplaySink:
    """Owns the producer, the open batch of every partition and the batches in flight."""

    def __init__(self, settings: Settings, accounts_topic: str) -> None:
        self.settings = settings
        self.accounts_topic = accounts_topic
        self.sent = 0
        self._producer: AIOKafkaProducer | None = None
        self._partitions: dict[str, int] = {}
        self._batches: dict[tuple[str, int], Any] = {}  # aiokafka's BatchBuilder
        self._in_flight: deque[asyncio.Future] = deque()

    async def start(self, topics: list[str]) -> None:
        """Connects and learns the partition counts of the target topics."""
        producer = AIOKafkaProducer(
            bootstrap_servers=self.settings.bootstrap_servers,
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

    async def send(self, topic: str, partition: int, key: bytes | None, value: bytes | None, headers: list) -> None:
        """Appends one record to its partition's batch; sends the batch when full."""
        producer = self._producer
        assert producer is not None, "start() first"
        if partition >= self._partitions[topic]:
            raise SandboxError(
                f"{topic} has {self._partitions[topic]} partitions; the source has partition {partition}",
                "replay into a new prefix (the replay creates its topics with the catalog's partition counts)",
            )
        tp = (topic, partition)
        batch = self._batches.get(tp)
        if batch is None:
            batch = self._batches[tp] = producer.create_batch()
        if batch.append(key=key, value=value, timestamp=None, headers=headers) is None:
            await self._send_batch(tp)
            batch = self._batches[tp] = producer.create_batch()
            batch.append(key=key, value=value, timestamp=None, headers=headers)
        self.sent += 1

    async def _send_batch(self, tp: tuple[str, int]) -> None:
        producer = self._producer
        assert producer is not None
        if tp[0] == self.accounts_topic:
            await (await producer.send_batch(self._batches.pop(tp), tp[0], partition=tp[1]))
            return
        for pending in sorted(k for k in self._batches if k[0] == self.accounts_topic):
            await self._send_batch(pending)
        self._in_flight.append(await producer.send_batch(self._batches.pop(tp), tp[0], partition=tp[1]))
        while len(self._in_flight) > IN_FLIGHT_BATCHES_MAX:
            await self._in_flight.popleft()

    async def flush(self) -> None:
        """Sends every open batch (accounts first) and waits until all are acknowledged."""
        for tp in sorted(self._batches, key=lambda k: (k[0] != self.accounts_topic, k)):
            if tp in self._batches:
                await self._send_batch(tp)
        while self._in_flight:
            await self._in_flight.popleft()

    async def close(self) -> None:
        """Flushes and disconnects; safe to call twice."""
        if self._producer is None:
            return
        try:
            await self.flush()
        finally:
            producer, self._producer = self._producer, None
            await producer.stop()
