"""Reads one topic's partitions from a start to an end offset, a consume batch at a time, as columns.

The archive uses librdkafka (confluent-kafka) here, not aiokafka: it reads every record of a run
and does nothing per record but hand it to Arrow, and aiokafka builds a Python record object per
record (about 5 µs, as much as everything else the archive does), while librdkafka fetches and
decodes in its own threads and hands over C objects. Reads are read_committed, with no consumer
group (nothing is committed; nobody's position moves).

A partition is done when a record at `end - 1` arrives, or when librdkafka reports the partition's
end (at the last stable offset, so transaction markers and aborted records count) at or past
`end`. Records at or past `end` (written after the archive started) are dropped.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, Final, cast

from confluent_kafka import Consumer, IsolationLevel, KafkaError, KafkaException, Message, TopicPartition
from confluent_kafka.admin import AdminClient, OffsetSpec

from infra.errors import SandboxError
from infra.kafka_admin import kafka_unreachable
from infra.settings import Settings

CONSUME_BATCH_MAX: Final = 10_000  # records handed over per consume call
POLL_TIMEOUT_S: Final = 0.05  # a consume call returns after this long even with fewer records
STALL_S_MAX: Final = 30.0  # seconds without a record or an end-of-partition before giving up
QUEUED_KBYTES_MAX: Final = 64 * 1024  # librdkafka's prefetch buffer, all partitions together
FETCH_BYTES_PER_PARTITION_MAX: Final = 512 * 1024  # small: a consume batch mixes partitions, so dates seal early
CONNECT_TIMEOUT_S: Final = 10.0
FETCH_WAIT_MS_MAX: Final = 10  # how long the broker holds a fetch with nothing new (the end of a partition)
GONE: Final = {KafkaError._ALL_BROKERS_DOWN}

log = logging.getLogger("kpsandbox.archive.kafka")


@dataclass(slots=True)
class RawChunk:
    """Records of one topic as column lists, in the order read (per partition: offset order)."""

    partitions: list[int] = field(default_factory=list)
    offsets: list[int] = field(default_factory=list)
    timestamps: list[int] = field(default_factory=list)  # ms since the epoch
    keys: list[bytes | None] = field(default_factory=list)
    headers: list[Any] = field(default_factory=list)  # per record: a list of (name, bytes) or None
    values: list[bytes | None] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.offsets)

    def last_offsets(self) -> dict[int, int]:
        """The last offset read per partition (records of a partition arrive in offset order)."""
        return dict(zip(self.partitions, self.offsets, strict=True))

    def keep(self, rows: list[int]) -> RawChunk:
        """The chunk with only the given rows."""
        return RawChunk(*([column[i] for i in rows] for column in self._columns()))

    def _columns(self) -> tuple[list[Any], ...]:
        return (self.partitions, self.offsets, self.timestamps, self.keys, self.headers, self.values)


def _chunk(messages: list[Message]) -> RawChunk:
    return RawChunk(
        cast(list[int], [m.partition() for m in messages]),  # never None on a record
        cast(list[int], [m.offset() for m in messages]),
        [m.timestamp()[1] for m in messages],
        [m.key() for m in messages],
        [m.headers() for m in messages],
        [m.value() for m in messages],
    )


@dataclass(frozen=True, slots=True)
class Batch:
    """What one consume call gave: records (possibly none) and the partitions it finished."""

    chunk: RawChunk
    finished: list[int]


class RangeReader:
    """Owns one librdkafka consumer; reads one topic at a time."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._consumer = Consumer(
            {
                "bootstrap.servers": settings.bootstrap_servers,
                "group.id": "kpsandbox-archive",  # required by librdkafka; never joined or committed
                "enable.auto.commit": False,
                "enable.auto.offset.store": False,
                "isolation.level": "read_committed",
                "enable.partition.eof": True,
                "max.partition.fetch.bytes": FETCH_BYTES_PER_PARTITION_MAX,
                "queued.max.messages.kbytes": QUEUED_KBYTES_MAX,
                "fetch.wait.max.ms": FETCH_WAIT_MS_MAX,
                "client.id": "kpsandbox-archive",
                "logger": log,  # type: ignore[dict-item]  # confluent-kafka takes a logging.Logger here
            }
        )
        self._next: dict[int, int] = {}  # per partition of the topic being read: the next offset expected
        self._admin = AdminClient({"bootstrap.servers": settings.bootstrap_servers, "logger": log})  # type: ignore[dict-item]
        try:
            self._metadata = self._consumer.list_topics(timeout=CONNECT_TIMEOUT_S)
        except KafkaException as error:
            self._consumer.close()
            raise kafka_unreachable(settings) from error

    def close(self) -> None:
        self._consumer.close()

    def offsets(self, topics: Iterable[str]) -> dict[str, dict[int, tuple[int, int]]]:
        """(first offset, last stable offset) of every partition of the given topics that exist."""
        wanted = [
            TopicPartition(name, partition)
            for name in topics
            if name in self._metadata.topics
            for partition in self._metadata.topics[name].partitions
        ]
        if not wanted:
            return {}
        try:
            firsts = self._admin.list_offsets(
                {tp: OffsetSpec.earliest() for tp in wanted}, request_timeout=CONNECT_TIMEOUT_S
            )
            ends = self._admin.list_offsets(
                {tp: OffsetSpec.latest() for tp in wanted},
                isolation_level=IsolationLevel.READ_COMMITTED,
                request_timeout=CONNECT_TIMEOUT_S,
            )
            found = [(tp, firsts[tp].result().offset, ends[tp].result().offset) for tp in wanted]
        except KafkaException as error:
            raise kafka_unreachable(self.settings) from error
        result: dict[str, dict[int, tuple[int, int]]] = {}
        for tp, first, end in found:
            result.setdefault(tp.topic, {})[tp.partition] = (first, end)
        return result

    def read(self, topic: str, ranges: dict[int, tuple[int, int]]) -> Iterator[Batch]:
        """Every record of `topic` in [start, end) per partition, a consume batch at a time."""
        limits = {partition: end for partition, (_, end) in ranges.items()}
        remaining = dict(limits)
        self._next = {partition: start for partition, (start, _) in ranges.items()}
        self._consumer.assign([TopicPartition(topic, p, start) for p, (start, _) in ranges.items()])
        try:
            waited_since = time.monotonic()
            while remaining:
                batch = self._consume(topic, limits, remaining)
                if batch.finished:
                    self._consumer.pause([TopicPartition(topic, p) for p in batch.finished])
                if batch.chunk or batch.finished:
                    waited_since = time.monotonic()
                    yield batch
                elif time.monotonic() - waited_since > STALL_S_MAX:
                    late = ", ".join(f"{topic}[{p}]" for p in sorted(remaining))
                    raise SandboxError(f"no progress reading {late}", "check that Kafka is healthy and re-run")
        finally:
            self._consumer.unassign()

    def _consume(self, topic: str, limits: dict[int, int], remaining: dict[int, int]) -> Batch:
        """One consume call; removes the partitions it finishes from `remaining`."""
        # Ask for no more than are left: consume returns as soon as it has that many.
        left = sum(limits[p] - self._next[p] for p in remaining) + len(remaining)  # + an end-of-partition each
        messages = self._consumer.consume(max(1, min(CONSUME_BATCH_MAX, left)), POLL_TIMEOUT_S)
        finished: list[int] = []
        errors = [m.error() for m in messages]
        if any(errors):
            for message, error in zip(messages, errors, strict=True):
                if error is not None:
                    self._on_error(topic, message, error, remaining, finished)
            messages = [m for m, e in zip(messages, errors, strict=True) if e is None]
        chunk = _chunk(messages)
        last = chunk.last_offsets()
        self._next.update((p, offset + 1) for p, offset in last.items())
        if any(offset >= limits[p] - 1 for p, offset in last.items()):
            rows = [i for i, (p, o) in enumerate(zip(chunk.partitions, chunk.offsets, strict=True)) if o < limits[p]]
            chunk = chunk.keep(rows) if len(rows) < len(chunk) else chunk
            for partition, offset in last.items():
                if partition in remaining and offset >= limits[partition] - 1:
                    finished.append(partition)
                    del remaining[partition]
        return Batch(chunk, finished)

    def _on_error(
        self, topic: str, message: Message, error: KafkaError, remaining: dict[int, int], done: list[int]
    ) -> None:
        if error.code() == KafkaError._PARTITION_EOF:
            partition = message.partition()
            if partition in remaining and (message.offset() or 0) >= remaining[partition]:
                done.append(partition)
                del remaining[partition]
            return
        if error.code() in GONE:
            raise kafka_unreachable(self.settings)
        if error.fatal() or not error.retriable():
            raise SandboxError(f"reading {topic} failed: {error.str()}", "check that Kafka is healthy and re-run")
        log.warning("reading %s: %s (retrying)", topic, error.str())
