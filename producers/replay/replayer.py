"""Replays a run into a new prefix: same partitions, same per-partition order, optionally paced.

Streams of all (topic, partition) pairs are merged by original record timestamp (accounts first
on a tie); a merge never reorders records within one stream, so per-partition order holds even
where timestamps are not monotonic. With `speed` > 0 a record is sent when the wall clock reaches
its original timestamp divided by `speed` (gaps longer than PACE_SLEEP_S_MAX are cut short).
"""

from __future__ import annotations

import asyncio
import heapq
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Final

from aiokafka import TopicPartition
from aiokafka.errors import KafkaError

from infra import kafka_clients
from infra.errors import SandboxError
from infra.kafka_admin import ensure_topics, kafka_unreachable, topic_partitions
from infra.settings import Settings
from producers.replay.filters import ReplayFilter
from producers.replay.sink import ReplaySink
from producers.replay.sources import ArchiveSource, PrefixSource, ReplayRecord
from schemas.topics import ACCOUNTS, CATALOG

ORIGINAL_TIMESTAMP: Final = "kpsandbox-original-timestamp"
ORIGINAL_OFFSET: Final = "kpsandbox-original-offset"
ORIGINAL_TOPIC: Final = "kpsandbox-original-topic"
PACE_SLEEP_S_MAX: Final = 5.0  # the longest pause between two records, whatever the original gap
PACE_SLEEP_S_MIN: Final = 0.01
PROGRESS_EVERY: Final = 5_000
CONNECT_TIMEOUT_S: Final = 10.0
TOPIC_RANK: Final = {spec.name: rank for rank, spec in enumerate(CATALOG)}  # accounts first

Progress = Callable[[int, int], None]  # (records sent, records to send)


@dataclass
class ReplaySummary:
    """What a replay sent, per catalog topic."""

    sent: int = 0
    by_topic: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0


async def check_target_empty(target: Settings) -> None:
    """Refuses a target prefix whose catalog topics already hold records."""
    consumer = kafka_clients.consumer(target, "researcher", group_id=None, enable_auto_commit=False)
    try:
        await asyncio.wait_for(consumer.start(), CONNECT_TIMEOUT_S)
    except (TimeoutError, KafkaError, OSError) as error:
        await consumer.stop()
        raise kafka_unreachable(target) from error
    try:
        found = await topic_partitions(target, [target.topic(spec) for spec in CATALOG])
        tps = [TopicPartition(n, p) for n, partitions in found.items() for p in partitions]
        consumer.assign(tps)  # one metadata request for every topic (else a 100 ms backoff per topic)
        consumer.pause(*tps)  # and no fetch held at the log's end (500 ms) ahead of end_offsets
        ends = await consumer.end_offsets(tps) if tps else {}
    finally:
        await consumer.stop()
    full = sorted({tp.topic for tp, end in ends.items() if end > 0})
    if full:
        raise SandboxError(
            f"prefix {target.topic_prefix!r} already holds data ({', '.join(full[:2])})",
            "replay into a new, unused --into-prefix (a replay never mixes with existing records)",
        )


def _with_origin(record: ReplayRecord, source_prefix: str) -> list[tuple[str, bytes]]:
    """The record's headers plus where it came from. A replay of a replay keeps the first origin."""
    headers = list(record.headers)
    if not any(name == ORIGINAL_OFFSET for name, _ in headers):
        headers += [
            (ORIGINAL_TIMESTAMP, str(record.timestamp).encode()),
            (ORIGINAL_OFFSET, str(record.offset).encode()),
            (ORIGINAL_TOPIC, (source_prefix + record.topic).encode()),
        ]
    return headers


async def replay(
    source: ArchiveSource | PrefixSource,
    target: Settings,
    filt: ReplayFilter,
    speed: float = 0.0,
    progress: Progress | None = None,
) -> ReplaySummary:
    """Replays `source` into the catalog topics of `target` (created; they must hold no data)."""
    if speed < 0:
        raise SandboxError(f"--speed must be 0 or more, got {speed}", "use 0 for as fast as possible, 10 for 10x")
    if source.prefix == target.topic_prefix:
        raise SandboxError("the target prefix is the source prefix", "choose a new --into-prefix")
    await check_target_empty(target)
    await ensure_topics(target)
    streams = await source.streams(filt)
    total = sum(s.size for s in streams)
    names = {spec.name: target.topic(spec) for spec in CATALOG}
    sink = ReplaySink(target, names[ACCOUNTS.name])
    await sink.start(list(names.values()))
    summary = ReplaySummary()
    started = began = time.monotonic()
    try:
        merged = heapq.merge(*(s.records for s in streams), key=lambda r: (r.timestamp, TOPIC_RANK[r.topic]))
        origin: int | None = None
        for record in merged:
            if speed > 0:
                origin = record.timestamp if origin is None else origin
                began = await _pace(sink, began, (record.timestamp - origin) / 1000 / speed)
            await sink.send(
                names[record.topic], record.partition, record.key, record.value, _with_origin(record, source.prefix)
            )
            summary.by_topic[record.topic] = summary.by_topic.get(record.topic, 0) + 1
            if progress and sink.sent % PROGRESS_EVERY == 0:
                progress(sink.sent, total)
                await asyncio.sleep(0)  # let the producer's sender task run
    finally:
        await sink.close()
    summary.sent = sink.sent
    summary.seconds = time.monotonic() - started
    if progress:
        progress(sink.sent, total)
    return summary


async def _pace(sink: ReplaySink, began: float, due_s: float) -> float:
    """Waits until `due_s` after `began`; returns `began`, moved later when a gap was cut short."""
    wait = due_s - (time.monotonic() - began)
    if wait < PACE_SLEEP_S_MIN:
        return began  # too short to sleep for: the next longer wait makes up for it
    await sink.flush()  # what is due now goes out before we sleep
    wait = due_s - (time.monotonic() - began)
    if wait > PACE_SLEEP_S_MAX:
        began += wait - PACE_SLEEP_S_MAX
        wait = PACE_SLEEP_S_MAX
    if wait > 0:
        await asyncio.sleep(wait)
    return began
