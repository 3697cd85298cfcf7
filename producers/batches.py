"""Per-partition batches with the one ordering rule every producer of the sandbox keeps.

Records are appended to one open aiokafka batch per (topic, partition) and a full batch is sent.
Account batches go first and are acknowledged before anything else is sent: the ledger must be
able to read an `account.opened` before any request naming it, and Kafka orders nothing across
topics. Accounts are few, so this costs little. Used by the simulation's Kafka sink and by replay.
"""

from __future__ import annotations

import asyncio
from collections import deque
from typing import Any

from aiokafka import AIOKafkaProducer


class AccountsFirstBatches:
    """Owns the open batch of every partition and the batches in flight (at most `in_flight_max`)."""

    def __init__(self, producer: AIOKafkaProducer, *, accounts_topic: str, in_flight_max: int) -> None:
        self.producer = producer
        self.accounts_topic = accounts_topic
        self.in_flight_max = in_flight_max
        self._batches: dict[tuple[str, int], Any] = {}  # aiokafka's BatchBuilder
        self._in_flight: deque[asyncio.Future] = deque()

    async def append(
        self, topic: str, partition: int, key: bytes | None, value: bytes | None, headers: list | None = None
    ) -> None:
        """Appends one record to its partition's batch; sends the batch when it is full."""
        tp = (topic, partition)
        batch = self._batches.get(tp)
        if batch is None:
            batch = self._batches[tp] = self.producer.create_batch()
        if batch.append(key=key, value=value, timestamp=None, headers=headers) is None:
            await self._send(tp)
            batch = self._batches[tp] = self.producer.create_batch()
            batch.append(key=key, value=value, timestamp=None, headers=headers)

    async def _send(self, tp: tuple[str, int]) -> None:
        producer = self.producer
        batch = self._batches.pop(tp)
        batch.close()  # complete: aiokafka would otherwise hold it for the producer's linger
        if tp[0] == self.accounts_topic:
            await (await producer.send_batch(batch, tp[0], partition=tp[1]))
            return
        for pending in sorted(k for k in self._batches if k[0] == self.accounts_topic):
            await self._send(pending)
        self._in_flight.append(await producer.send_batch(batch, tp[0], partition=tp[1]))
        while len(self._in_flight) > self.in_flight_max:
            await self._in_flight.popleft()

    async def flush(self) -> None:
        """Sends every open batch (accounts first, then in partition order) and waits for every ack."""
        for tp in sorted(self._batches, key=lambda k: (k[0] != self.accounts_topic, k)):
            if tp in self._batches:
                await self._send(tp)
        while self._in_flight:
            await self._in_flight.popleft()
