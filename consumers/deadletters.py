"""Reading the dead-letter topic: every letter from the beginning to the end offsets, and filters.

The topic is read without a consumer group (nothing is committed, any number of people may look
at once) and with `isolation_level=read_committed`, so a letter from an aborted transaction is
never shown or redriven. Reading stops when every partition's *position* has reached its end
offset — never "when the last record was seen", because transaction markers take offsets too —
or at a named bound of records or seconds, whichever comes first; the result says which.

A record that does not parse as a `DeadLetter` is reported next to the letters, never fatal: the
point of this module is to look at broken things.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Final, get_args

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import KafkaError
from pydantic import ValidationError

from infra import kafka_clients
from infra.errors import SandboxError
from infra.kafka_admin import kafka_unreachable, topic_missing
from infra.settings import Settings
from schemas.deadletter import DeadLetter, DeadLetterReason
from schemas.topics import DEAD_LETTER

DEAD_LETTER_REASONS: Final[tuple[str, ...]] = get_args(DeadLetterReason)
READ_RECORDS_MAX: Final = 100_000  # keeps memory bounded; a longer queue is a problem of its own
READ_TIMEOUT_S: Final = 30.0
CONNECT_TIMEOUT_S: Final = 10.0
FETCH_WAIT_MS: Final = 500
FETCH_RECORDS_MAX: Final = 1_000
PROBLEM_CHARS_MAX: Final = 200


@dataclass(frozen=True, slots=True)
class StoredLetter:
    """One dead letter and where it sits on the dead-letter topic."""

    partition: int
    offset: int
    letter: DeadLetter

    @property
    def source(self) -> str:
        """Where the original message was: `topic/partition/offset`."""
        return f"{self.letter.source_topic}/{self.letter.source_partition}/{self.letter.source_offset}"


@dataclass(frozen=True, slots=True)
class UnparseableRecord:
    """A record on the dead-letter topic that is not a DeadLetter, and why."""

    partition: int
    offset: int
    problem: str


@dataclass(frozen=True)
class DeadLetterRead:
    """Everything read from the dead-letter topic, in (partition, offset) order."""

    topic: str
    letters: list[StoredLetter]
    unparseable: list[UnparseableRecord]
    complete: bool  # False: stopped at READ_RECORDS_MAX or the timeout before the end offsets


@dataclass(frozen=True)
class LetterFilter:
    """Which letters to pick; an empty criterion matches everything."""

    reasons: frozenset[str] = field(default_factory=frozenset)
    source_topics: frozenset[str] = field(default_factory=frozenset)
    offsets: frozenset[int] = field(default_factory=frozenset)  # offsets on the dead-letter topic

    def matches(self, stored: StoredLetter) -> bool:
        """True when the letter meets every criterion that is set."""
        return (
            (not self.reasons or stored.letter.reason in self.reasons)
            and (not self.source_topics or stored.letter.source_topic in self.source_topics)
            and (not self.offsets or stored.offset in self.offsets)
        )


def letter_filter(
    settings: Settings, *, reason: str | None = None, source_topic: str | None = None, offsets: Iterable[int] = ()
) -> LetterFilter:
    """A filter from command-line values. A source topic may be given with or without this
    deployment's topic prefix; an unknown reason is a SandboxError listing the known ones."""
    if reason is not None and reason not in DEAD_LETTER_REASONS:
        raise SandboxError(
            f"'{reason}' is not a dead-letter reason",
            f"use one of: {', '.join(DEAD_LETTER_REASONS)}",
        )
    topics = frozenset({source_topic, settings.topic_prefix + source_topic}) if source_topic else frozenset()
    return LetterFilter(
        reasons=frozenset({reason}) if reason else frozenset(),
        source_topics=topics,
        offsets=frozenset(offsets),
    )


def parse_record(partition: int, offset: int, value: bytes | None) -> StoredLetter | UnparseableRecord:
    """One dead-letter record, or the reason it cannot be read as one."""
    if value is None:
        return UnparseableRecord(partition, offset, "the record has no value (a tombstone)")
    try:
        return StoredLetter(partition, offset, DeadLetter.model_validate_json(value))
    except ValidationError as error:
        first = error.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or "the record"
        return UnparseableRecord(partition, offset, f"{where}: {first['msg']}"[:PROBLEM_CHARS_MAX])


def select(letters: Iterable[StoredLetter], criteria: LetterFilter) -> list[StoredLetter]:
    """The letters that match, in the order given."""
    return [stored for stored in letters if criteria.matches(stored)]


def count_by_reason(letters: Iterable[StoredLetter]) -> dict[str, int]:
    """How many letters per reason, most frequent first (ties by name)."""
    counts = Counter(stored.letter.reason for stored in letters)
    return dict(sorted(counts.items(), key=lambda item: (-item[1], item[0])))


async def read_dead_letters(
    settings: Settings, *, records_max: int = READ_RECORDS_MAX, timeout_s: float = READ_TIMEOUT_S
) -> DeadLetterRead:
    """Reads the dead-letter topic from the beginning up to its end offsets (bounded)."""
    topic = settings.topic(DEAD_LETTER)
    consumer = kafka_clients.consumer(
        settings,
        "admin",
        group_id=None,
        client_id="kpsandbox-deadletters",
        enable_auto_commit=False,
        isolation_level="read_committed",
        request_timeout_ms=int(CONNECT_TIMEOUT_S * 1000),
    )
    try:
        await asyncio.wait_for(consumer.start(), CONNECT_TIMEOUT_S)
    except (TimeoutError, KafkaError, OSError) as error:
        await consumer.stop()
        raise kafka_unreachable(settings) from error
    try:
        return await _read(consumer, settings, topic, records_max, timeout_s)
    finally:
        await consumer.stop()


async def _partitions(settings: Settings, topic: str) -> list[int]:
    """The topic's partitions, asked of the cluster (a consumer only knows topics it has read)."""
    admin = kafka_clients.admin(
        settings,
        "admin",
        client_id="kpsandbox-deadletters",
        request_timeout_ms=int(CONNECT_TIMEOUT_S * 1000),
    )
    try:
        await asyncio.wait_for(admin.start(), CONNECT_TIMEOUT_S)
        [described] = await admin.describe_topics([topic])
    except (TimeoutError, KafkaError, OSError) as error:
        raise kafka_unreachable(settings) from error
    finally:
        await admin.close()
    if described["error_code"] or not described["partitions"]:
        raise topic_missing(settings, topic, "`kpsandbox topics create`")
    return sorted(part["partition"] for part in described["partitions"])


async def _read(
    consumer: AIOKafkaConsumer, settings: Settings, topic: str, records_max: int, timeout_s: float
) -> DeadLetterRead:
    assigned = [TopicPartition(topic, p) for p in await _partitions(settings, topic)]
    consumer.assign(assigned)
    # Paused until the end offsets are known: a fetch the broker holds at the log's end (500 ms) would
    # hold the end-offsets request queued behind it on the same connection.
    consumer.pause(*assigned)
    starts = await consumer.beginning_offsets(assigned)
    # With read_committed these are the last stable offsets: an open transaction's letters wait.
    ends = await consumer.end_offsets(assigned)
    for tp in assigned:
        consumer.seek(tp, starts[tp])
    consumer.resume(*assigned)
    letters: list[StoredLetter] = []
    unparseable: list[UnparseableRecord] = []
    deadline = time.monotonic() + timeout_s
    remaining = [tp for tp in assigned if await consumer.position(tp) < ends[tp]]
    while remaining and len(letters) + len(unparseable) < records_max and time.monotonic() < deadline:
        budget = min(FETCH_RECORDS_MAX, records_max - len(letters) - len(unparseable))
        batches = await consumer.getmany(*remaining, timeout_ms=FETCH_WAIT_MS, max_records=budget)
        for tp, records in batches.items():
            for record in records:
                if record.offset >= ends[tp]:
                    continue  # written after we looked: the next reader shows it
                parsed = parse_record(tp.partition, record.offset, record.value)
                if isinstance(parsed, StoredLetter):
                    letters.append(parsed)
                else:
                    unparseable.append(parsed)
        remaining = [tp for tp in remaining if await consumer.position(tp) < ends[tp]]
    letters.sort(key=lambda s: (s.partition, s.offset))
    unparseable.sort(key=lambda u: (u.partition, u.offset))
    return DeadLetterRead(topic, letters, unparseable, complete=not remaining)
