"""Where a replay reads from: an archive folder, or the topics of another prefix still on Kafka.

Both give one stream per (topic, partition), in offset order. A source holds what it replays in
memory (an archive as compact Arrow columns, topics as records), topic by topic as it loads.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any, Final, NamedTuple

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import KafkaError

from infra import kafka_clients
from infra.archive import Manifest, load_manifest
from infra.errors import SandboxError
from infra.kafka_admin import kafka_unreachable, topic_partitions
from infra.settings import Settings
from producers.replay.filters import ACCOUNT_OPENED, ReplayFilter
from schemas.topics import CATALOG

READ_COLUMNS: Final = ("partition", "offset", "timestamp", "key", "headers", "value")
ROWS_PER_CHUNK: Final = 8_192  # rows turned into Python objects at a time
HASH_CHUNK_BYTES: Final = 1024 * 1024
FETCH_TIMEOUT_MS: Final = 500
STALL_FETCHES_MAX: Final = 60
CONNECT_TIMEOUT_S: Final = 10.0
Headers = list[tuple[str, bytes]]


class ReplayRecord(NamedTuple):
    """One record to replay, as it was on its source topic (`topic` is the catalog name)."""

    topic: str
    partition: int
    offset: int
    timestamp: int
    key: bytes | None
    headers: Headers
    value: bytes | None


class Stream(NamedTuple):
    """The records of one (topic, partition) in offset order, and how many there are."""

    size: int
    records: Iterator[ReplayRecord]


def archive_filter(filt: ReplayFilter) -> pc.Expression | None:
    """The replay filter as a Parquet scan filter on the archive's typed columns."""
    if filt.everything:
        return None
    when = pa.timestamp("us", tz="UTC")
    expression = pc.field("event_type").is_valid() & pc.field("occurred_at").is_valid()
    if filt.only is not None:
        expression &= pc.field("event_type").isin(sorted(filt.only))
    if filt.end is not None:
        expression &= pc.field("occurred_at") < pa.scalar(filt.end, when)
    if filt.start is not None:
        expression &= (pc.field("occurred_at") >= pa.scalar(filt.start, when)) | (
            pc.field("event_type") == ACCOUNT_OPENED
        )
    return expression


def _sha256(path: Path) -> str:
    sha = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(HASH_CHUNK_BYTES):
            sha.update(chunk)
    return sha.hexdigest()


class ArchiveSource:
    """An archive folder: checked against its manifest (every file present, checksums equal)."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.manifest: Manifest = load_manifest(folder)
        self.prefix = self.manifest.run.prefix
        for part in self.manifest.files:
            path = folder / part.path
            if not path.is_file() or _sha256(path) != part.sha256:
                raise SandboxError(
                    f"{path} is missing or does not match its checksum in the manifest",
                    "restore the archive from a copy, or re-archive the run into a new folder",
                )

    async def streams(self, filt: ReplayFilter) -> list[Stream]:
        """One stream per (topic, partition), each in offset order."""
        streams: list[Stream] = []
        expression = archive_filter(filt)
        for spec in CATALOG:
            paths = [str(self.folder / f.path) for f in self.manifest.files if f.topic == spec.name]
            if not paths:
                continue
            table = ds.dataset(paths, format="parquet").to_table(columns=list(READ_COLUMNS), filter=expression)
            table = table.sort_by([("partition", "ascending"), ("offset", "ascending")])
            for partition in pc.unique(table["partition"]).to_pylist():
                rows = table.filter(pc.equal(table["partition"], partition))
                streams.append(Stream(rows.num_rows, _table_records(spec.name, rows)))
        return streams


def _table_records(topic: str, table: pa.Table) -> Iterator[ReplayRecord]:
    for batch in table.to_batches(max_chunksize=ROWS_PER_CHUNK):
        columns = [batch.column(name).to_pylist() for name in READ_COLUMNS]
        for partition, offset, timestamp, key, headers, value in zip(*columns, strict=True):
            pairs = [(h["name"], h["value"]) for h in headers] if headers else []
            yield ReplayRecord(topic, partition, offset, timestamp, key, pairs, value)


def _type_and_time(value: bytes | None) -> tuple[str | None, datetime | None]:
    try:
        body: Any = json.loads(value) if value else None
        return body["event_type"], datetime.fromisoformat(body["occurred_at"])
    except (ValueError, TypeError, KeyError):
        return None, None


class PrefixSource:
    """The catalog topics of another prefix, read from their first offset to their end offsets."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.prefix = settings.topic_prefix

    async def streams(self, filt: ReplayFilter) -> list[Stream]:
        """Reads everything (read_committed, no group); SandboxError if retention deleted the start."""
        consumer = kafka_clients.consumer(
            self.settings,
            "researcher",
            group_id=None,
            enable_auto_commit=False,
            isolation_level="read_committed",
            client_id="kpsandbox-replay",
        )
        try:
            await asyncio.wait_for(consumer.start(), CONNECT_TIMEOUT_S)
        except (TimeoutError, KafkaError, OSError) as error:
            await consumer.stop()
            raise kafka_unreachable(self.settings) from error
        try:
            return await self._read(consumer, filt)
        finally:
            await consumer.stop()

    async def _read(self, consumer: AIOKafkaConsumer, filt: ReplayFilter) -> list[Stream]:
        found = await topic_partitions(self.settings, [self.settings.topic(spec) for spec in CATALOG])
        names = {self.settings.topic(spec): spec.name for spec in CATALOG if self.settings.topic(spec) in found}
        if not names:
            raise SandboxError(
                f"no catalog topic with prefix {self.prefix!r} on {self.settings.bootstrap_servers}",
                "pass the prefix of a run that is still on Kafka, or --from-archive DIR",
            )
        tps = [TopicPartition(n, p) for n in names for p in found[n]]
        consumer.assign(tps)  # one metadata request for every topic (else a 100 ms backoff per topic)
        consumer.pause(*tps)  # and no fetch held at the log's end (500 ms) ahead of the offset requests
        firsts = await consumer.beginning_offsets(tps)
        lost = [f"{tp.topic}[{tp.partition}] starts at offset {firsts[tp]}" for tp in tps if firsts[tp] > 0]
        if lost:
            raise SandboxError(
                f"retention already deleted the start of the run: {', '.join(lost[:3])}",
                "replay from an archive instead (`kpsandbox archive` while the topics are complete, then"
                " `kpsandbox replay --from-archive DIR`)",
            )
        ends = await consumer.end_offsets(tps)
        remaining = {tp: end for tp, end in ends.items() if end > 0}
        kept: dict[TopicPartition, list[ReplayRecord]] = {tp: [] for tp in remaining}
        if remaining:
            consumer.assign(list(remaining))
            for tp in remaining:  # positioned at once: no reset request queued behind a held fetch
                consumer.seek(tp, firsts[tp])
        stalled = 0
        while remaining:
            batches = await consumer.getmany(*remaining, timeout_ms=FETCH_TIMEOUT_MS)
            stalled = 0 if batches else stalled + 1
            for tp, records in batches.items():
                end, out = remaining.get(tp), kept.get(tp)
                if end is None or out is None:
                    continue
                for r in records:
                    if r.offset >= end:
                        break
                    if filt.everything or filt.keeps(*_type_and_time(r.value)):
                        headers = list(r.headers)
                        out.append(
                            ReplayRecord(names[tp.topic], tp.partition, r.offset, r.timestamp, r.key, headers, r.value)
                        )
            for tp in list(remaining):
                if await consumer.position(tp) >= remaining[tp]:
                    consumer.pause(tp)
                    del remaining[tp]
            if stalled >= STALL_FETCHES_MAX:
                raise SandboxError("no progress reading the source topics", "check that Kafka is healthy and re-run")
        return [Stream(len(records), iter(records)) for records in kept.values() if records]
