"""Reads a run's partitions from a start to an end offset, a consume batch at a time, as columns.

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

import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, Final, cast

from confluent_kafka import Consumer, IsolationLevel, KafkaError, KafkaException, Message, TopicPartition
from confluent_kafka.admin import AdminClient, OffsetSpec

from infra import kafka_clients
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
# librdkafka's sparse connections hold every connection after the bootstrap one back for 50 ms
# ("still suppressed for 49ms" in its debug log): the first metadata call took 56–59 ms instead of
# 5–14 ms, 8% of a 30-day archive. The archive reads from every broker anyway (bench/RESULTS.md, "Run 9").
CONNECTIONS: Final = {"enable.sparse.connections": False}
GONE: Final = {KafkaError._ALL_BROKERS_DOWN}

log = kafka_clients.librdkafka_logger("kpsandbox.archive.kafka")


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
    """The records' columns (map over the C methods: no Python frame per record)."""
    return RawChunk(
        cast(list[int], list(map(Message.partition, messages))),  # never None on a record
        cast(list[int], list(map(Message.offset, messages))),
        [stamp for _, stamp in map(Message.timestamp, messages)],
        list(map(Message.key, messages)),
        list(map(Message.headers, messages)),
        list(map(Message.value, messages)),
    )


def _by_topic(messages: list[Message]) -> dict[str, list[Message]]:
    """The records of one consume call per topic, each in the order read."""
    topics = list(map(Message.topic, messages))
    first = topics[0] if topics else None
    if topics.count(first) == len(topics):  # the common case: one topic per fetch response
        return {first: messages} if first else {}
    found: dict[str, list[Message]] = {}
    for topic, message in zip(topics, messages, strict=True):
        found.setdefault(cast(str, topic), []).append(message)
    return found


@dataclass(frozen=True, slots=True)
class Batch:
    """What one consume call gave for one topic: records (possibly none) and the partitions it finished."""

    topic: str
    chunk: RawChunk
    finished: list[int]


Ranges = dict[str, dict[int, tuple[int, int]]]  # topic -> partition -> [start, end) offsets


def _consumer(settings: Settings) -> Consumer:
    """The reading consumer: read_committed, no group ever joined or committed."""
    config: dict[str, Any] = {
        **kafka_clients.librdkafka_config(settings, "researcher"),
        **CONNECTIONS,
        "group.id": "kpsandbox-archive",  # required by librdkafka; never joined or committed
        "enable.auto.commit": False,
        "enable.auto.offset.store": False,
        "isolation.level": "read_committed",
        "enable.partition.eof": True,
        "max.partition.fetch.bytes": FETCH_BYTES_PER_PARTITION_MAX,
        "queued.max.messages.kbytes": QUEUED_KBYTES_MAX,
        "fetch.wait.max.ms": FETCH_WAIT_MS_MAX,
        "client.id": "kpsandbox-archive",
        "logger": log,  # confluent-kafka takes a logging.Logger here
    }
    return Consumer(config)


def _admin(settings: Settings) -> AdminClient:
    """The admin client that lists the partitions' first and last offsets."""
    config: dict[str, Any] = {**kafka_clients.librdkafka_config(settings, "researcher"), **CONNECTIONS, "logger": log}
    return AdminClient(config)


class RangeReader:
    """Owns one librdkafka consumer; reads every topic of a run at once, as the broker serves them."""

    def __init__(self, settings: Settings, topics: Iterable[str]) -> None:
        """Connects, and learns the partitions of those of `topics` that exist: one small metadata
        request per topic, not the whole cluster's (242 KB and 40 ms on a broker holding many runs)."""
        self.settings = settings
        self._consumer = _consumer(settings)
        self._next: dict[tuple[str, int], int] = {}  # per partition being read: the next offset expected
        self._admin = _admin(settings)
        self._partitions: dict[str, list[int]] = {}  # topic -> its partitions, for the topics that exist
        try:
            for name in topics:
                found = self._consumer.list_topics(topic=name, timeout=CONNECT_TIMEOUT_S).topics.get(name)
                if found is not None and found.error is None and found.partitions:
                    self._partitions[name] = sorted(found.partitions)
        except KafkaException as error:
            self._consumer.close()
            raise kafka_unreachable(settings) from error

    def close(self) -> None:
        self._consumer.close()

    def offsets(self) -> Ranges:
        """(first offset, last stable offset) of every partition of the reader's topics that exist."""
        wanted = [TopicPartition(name, partition) for name, parts in self._partitions.items() for partition in parts]
        if not wanted:
            return {}
        try:
            # One request at a time: the second, sent while librdkafka was still answering the first,
            # crashed the process once (a segfault inside `list_offsets`, CI of 2026-12-01; cause unproven).
            earliest = self._admin.list_offsets(
                {tp: OffsetSpec.earliest() for tp in wanted}, request_timeout=CONNECT_TIMEOUT_S
            )
            firsts = {tp: future.result().offset for tp, future in earliest.items()}
            ends = self._admin.list_offsets(
                {tp: OffsetSpec.latest() for tp in wanted},
                isolation_level=IsolationLevel.READ_COMMITTED,
                request_timeout=CONNECT_TIMEOUT_S,
            )
            found = [(tp, firsts[tp], ends[tp].result().offset) for tp in wanted]
        except KafkaException as error:
            raise kafka_unreachable(self.settings) from error
        result: Ranges = {}
        for tp, first, end in found:
            result.setdefault(tp.topic, {})[tp.partition] = (first, end)
        return result

    def read(self, ranges: Ranges) -> Iterator[Batch]:
        """Every record in [start, end) of every partition of `ranges`, all topics at once (no
        wait between topics), a consume batch at a time, split per topic."""
        limits = {(topic, p): end for topic, parts in ranges.items() for p, (_, end) in parts.items()}
        remaining = dict(limits)
        self._next = {(topic, p): start for topic, parts in ranges.items() for p, (start, _) in parts.items()}
        self._consumer.assign([TopicPartition(t, p, start) for (t, p), start in self._next.items()])
        try:
            waited_since = time.monotonic()
            while remaining:
                batches = self._consume(limits, remaining)
                for batch in batches:
                    if batch.finished:
                        self._consumer.pause([TopicPartition(batch.topic, p) for p in batch.finished])
                if batches:
                    waited_since = time.monotonic()
                    yield from batches
                elif time.monotonic() - waited_since > STALL_S_MAX:
                    late = ", ".join(f"{t}[{p}]" for t, p in sorted(remaining))
                    raise SandboxError(f"no progress reading {late}", "check that Kafka is healthy and re-run")
        finally:
            self._consumer.unassign()

    def _consume(self, limits: dict[tuple[str, int], int], remaining: dict[tuple[str, int], int]) -> list[Batch]:
        """One consume call, per topic; removes the partitions it finishes from `remaining`."""
        # Ask for no more than are left: consume returns as soon as it has that many.
        left = sum(limits[tp] - self._next[tp] for tp in remaining) + len(remaining)  # + an end-of-partition each
        messages = self._consumer.consume(max(1, min(CONSUME_BATCH_MAX, left)), POLL_TIMEOUT_S)
        finished: dict[str, list[int]] = {}
        errors = list(map(Message.error, messages))
        if any(errors):
            for message, error in zip(messages, errors, strict=True):
                if error is not None:
                    self._on_error(message, error, remaining, finished)
            messages = [m for m, e in zip(messages, errors, strict=True) if e is None]
        batches = [
            self._batch(topic, found, limits, remaining, finished) for topic, found in _by_topic(messages).items()
        ]
        done = {b.topic for b in batches}
        return batches + [
            Batch(topic, RawChunk(), partitions) for topic, partitions in finished.items() if topic not in done
        ]

    def _batch(
        self,
        topic: str,
        messages: list[Message],
        limits: dict[tuple[str, int], int],
        remaining: dict[tuple[str, int], int],
        finished: dict[str, list[int]],
    ) -> Batch:
        """One topic's records of a consume call, without those at or past the end; the partitions
        this call finished (by an end-of-partition or by reaching the end offset)."""
        chunk = _chunk(messages)
        last = chunk.last_offsets()
        self._next.update(((topic, p), offset + 1) for p, offset in last.items())
        ended = finished.setdefault(topic, [])
        if any(offset >= limits[topic, p] - 1 for p, offset in last.items()):
            rows = [
                i for i, (p, o) in enumerate(zip(chunk.partitions, chunk.offsets, strict=True)) if o < limits[topic, p]
            ]
            chunk = chunk.keep(rows) if len(rows) < len(chunk) else chunk
            for partition, offset in last.items():
                if (topic, partition) in remaining and offset >= limits[topic, partition] - 1:
                    ended.append(partition)
                    del remaining[topic, partition]
        return Batch(topic, chunk, ended)

    def _on_error(
        self, message: Message, error: KafkaError, remaining: dict[tuple[str, int], int], done: dict[str, list[int]]
    ) -> None:
        topic = message.topic() or "the run's topics"
        if error.code() == KafkaError._PARTITION_EOF:
            place = (topic, cast(int, message.partition()))
            if place in remaining and (message.offset() or 0) >= remaining[place]:
                done.setdefault(topic, []).append(place[1])
                del remaining[place]
            return
        if error.code() in GONE:
            raise kafka_unreachable(self.settings)
        if error.fatal() or not error.retriable():
            raise SandboxError(f"reading {topic} failed: {error.str()}", "check that Kafka is healthy and re-run")
        log.warning("reading %s: %s (retrying)", topic, error.str())
