"""The requests topic into the merge: fetch, parse a slice at a time, and pause what is full.

The settler's loop asks the intake for records and for what the merge's release rule needs (each
partition's fetch position and readable end); it takes batches from `merge` itself. The intake owns
the merge buffers and each partition's latest event time; `Positions` stays the settler's, and the
intake only records fetch positions through its methods. The Kafka consumer is passed in on every
call: the settler opens it (clients.py) and tests swap it.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Final

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import IllegalStateError

from consumers.ledger.merge import PartitionMerge
from consumers.ledger.positions import Positions
from consumers.ledger.reading import Poison, read_requests
from consumers.ledger.records import Request
from consumers.ledger.turns import give_way

PARSED_PER_TURN: Final = 500  # records parsed between two turns of the event loop
BUFFERED_PER_PARTITION_MAX: Final = 8_000  # then the partition is paused until the merge drains it
POSITION_WAIT_S: Final = 0.02  # a partition's fetch position, once its seek has completed
_BEFORE_ANY: Final = datetime.min.replace(tzinfo=UTC)


class Intake:
    """Buffers the requests topic's records, parsed, in the merge."""

    def __init__(self, topic: str, positions: Positions) -> None:
        self.topic = topic
        self.positions = positions
        self.merge: PartitionMerge[Request | Poison] = PartitionMerge(
            buffered_per_partition_max=BUFFERED_PER_PARTITION_MAX
        )
        self._last_at: dict[int, datetime] = {}  # per partition, the latest occurred_at buffered

    def forget(self, partition: int) -> None:
        """Drops what is buffered for a partition (revoked, or re-read from the database's offset)."""
        self.merge.drop(partition)
        self._last_at.pop(partition, None)

    async def fetch(
        self, consumer: AIOKafkaConsumer, *, timeout_ms: int, records_max: int
    ) -> dict[TopicPartition, list]:
        """Fetches and parses into the merge what Kafka has (waiting up to `timeout_ms` for it).

        Parsed PARSED_PER_TURN records at a time with a turn of the event loop in between, so a
        batch in flight sends its next statement within one slice. A partition sought again (or
        revoked) during those turns stops being buffered: the seek, or its new owner, reads them.
        """
        fetched = await consumer.getmany(timeout_ms=timeout_ms, max_records=records_max)
        sought = {tp.partition: self.positions.sought_at(tp.partition) for tp in fetched}
        for tp, messages in fetched.items():
            for start in range(0, len(messages), PARSED_PER_TURN):
                if sought[tp.partition] is None or self.positions.sought_at(tp.partition) != sought[tp.partition]:
                    break
                self._buffer(tp.partition, messages[start : start + PARSED_PER_TURN])
                await give_way()
        return fetched

    def _buffer(self, partition: int, messages: list) -> None:
        items, self._last_at[partition] = read_requests(partition, messages, self._last_at.get(partition, _BEFORE_ANY))
        for item in items:
            self.merge.add(item)

    async def note_positions(self, consumer: AIOKafkaConsumer) -> None:
        """Records each assigned partition's fetch position (past markers and aborted records)."""
        for partition in self.positions.assigned():
            try:
                async with asyncio.timeout(POSITION_WAIT_S):  # no task: no turn of the loop when it is known
                    position = await consumer.position(TopicPartition(self.topic, partition))
            except (IllegalStateError, TimeoutError):
                continue  # revoked meanwhile, or no position until its seek completes
            self.positions.fetched_to(partition, position)

    def log_ends(self, consumer: AIOKafkaConsumer) -> dict[int, int | None]:
        """Each assigned partition's readable end as of the last fetch: last stable offset, else high water."""
        ends: dict[int, int | None] = {}
        for partition in self.positions.assigned():
            tp = TopicPartition(self.topic, partition)
            lso = consumer.last_stable_offset(tp)
            ends[partition] = lso if lso is not None else consumer.highwater(tp)
        return ends

    def throttle(self, consumer: AIOKafkaConsumer) -> list[int]:
        """Pauses fetching partitions whose buffers are full, so memory stays bounded, and resumes the
        rest; returns the partitions held here that Kafka no longer assigns (for the settler to forget)."""
        assigned = {tp.partition for tp in consumer.assignment()}
        lost = []
        for partition in self.positions.assigned():
            if partition not in assigned:
                lost.append(partition)
                continue
            tp = TopicPartition(self.topic, partition)
            if self.merge.full(partition):
                consumer.pause(tp)
            elif tp in consumer.paused():
                consumer.resume(tp)
        return lost
