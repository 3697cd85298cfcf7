"""Merging partitions into one deterministic decision order, with bounded buffers.

Kafka orders each partition, never the topic. Decisions that touch one citizen from two
partitions (a wage arriving on one, a purchase leaving on another) depend on which comes first,
so the consumer releases buffered messages in (occurred_at, partition, offset) order, and only
while every partition that still has unread data has something buffered to compare with. Replayed
into an empty database, the same stream is therefore decided in the same order however Kafka
happened to batch the fetches. Partitions that are caught up never hold the others back.
"""

from __future__ import annotations

import heapq
from collections import deque
from collections.abc import Collection
from datetime import datetime
from typing import Generic, NamedTuple, TypeVar

T = TypeVar("T")


class Item(NamedTuple, Generic[T]):
    """One buffered message: its sort time, where it came from, and what it carries."""

    at: datetime
    partition: int
    offset: int
    payload: T
    raw: bytes | None = None  # the original value, for the dead-letter record if it comes to that
    key: bytes | None = None  # the original key and headers, kept on a dead letter
    headers: tuple[tuple[str, bytes], ...] = ()


class PartitionMerge(Generic[T]):
    """Per-partition FIFO buffers released in event-time order."""

    def __init__(self, *, buffered_per_partition_max: int) -> None:
        self.buffered_per_partition_max = buffered_per_partition_max
        self._buffers: dict[int, deque[Item[T]]] = {}

    def add(self, item: Item[T]) -> None:
        """Buffers one message (messages of a partition must be added in offset order)."""
        self._buffers.setdefault(item.partition, deque()).append(item)

    def drop(self, partition: int) -> None:
        """Forgets a partition's buffer (revoked, or re-read from the database's offset)."""
        self._buffers.pop(partition, None)

    def buffered(self, partition: int) -> int:
        """How many messages of a partition wait."""
        return len(self._buffers.get(partition, ()))

    def waiting_for(self, unread: Collection[int]) -> list[int]:
        """The partitions of `unread` with nothing buffered: `take` releases nothing past any of them."""
        return sorted(partition for partition in unread if not self._buffers.get(partition))

    def full(self, partition: int) -> bool:
        """True when the partition should stop fetching until the merge drains it."""
        return self.buffered(partition) >= self.buffered_per_partition_max

    def __len__(self) -> int:
        return sum(len(b) for b in self._buffers.values())

    def take(self, limit: int, *, unread: Collection[int]) -> list[Item[T]]:
        """Up to `limit` messages in (at, partition, offset) order.

        Stops as soon as a partition in `unread` (one with data not yet fetched) has an empty
        buffer: its next message might sort first. The partitions' heads wait in a heap keyed
        by (at, partition), one entry per partition: a partition's own messages are in offset order.
        """
        taken: list[Item[T]] = []
        buffers = self._buffers
        if any(not buffers.get(partition) for partition in unread):
            return taken
        heads = [(buffer[0].at, partition) for partition, buffer in buffers.items() if buffer]
        heapq.heapify(heads)
        append = taken.append
        while heads and len(taken) < limit:
            partition = heads[0][1]
            buffer = buffers[partition]
            append(buffer.popleft())
            if buffer:
                heapq.heapreplace(heads, (buffer[0].at, partition))
            elif partition in unread:
                break  # its next message, not fetched yet, might sort first
            else:
                heapq.heappop(heads)
        return taken
