"""Archives every catalog topic of a run from its start to its end offsets, incrementally.

Reads with read_committed and no consumer group (an archive never moves anyone's position), from
the manifest's per-partition end offsets (or the topic's beginning), up to the end offsets taken
when the run starts. Every BUFFER_ROWS_MAX records it checkpoints: part files first, then the
manifest, so an interrupted archive resumes from its last checkpoint and never looks complete.
"""

from __future__ import annotations

import asyncio
import errno
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Final

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import KafkaError

from consumers.archive.writer import PartWriter
from infra.archive import MANIFEST_NAME, PART_GLOB, Manifest, PartitionRange, RunInfo, load_manifest, save_manifest
from infra.errors import SandboxError
from infra.kafka_admin import kafka_unreachable, topic_partitions
from infra.settings import Settings
from schemas.topics import CATALOG

BUFFER_ROWS_MAX: Final = 200_000  # records held in memory before a checkpoint
FETCH_TIMEOUT_MS: Final = 500
FETCH_BYTES_PER_PARTITION_MAX: Final = 4 * 1024 * 1024
STALL_FETCHES_MAX: Final = 60  # empty fetches in a row (about 30 s) before giving up on a partition
CONNECT_TIMEOUT_S: Final = 10.0

Progress = Callable[[int, int], None]  # (records archived so far, records to archive)


@dataclass
class ArchiveSummary:
    """What one `archive` run did."""

    rows_new: int = 0
    files_new: int = 0
    rows_total: int = 0
    truncated: list[str] = field(default_factory=list)  # partitions whose first records were deleted


def _prepare_folder(folder: Path, prefix: str) -> Manifest:
    """The folder's manifest (or a new one); refuses a non-empty folder that is not an archive, or an
    archive of another prefix, and removes part files an interrupted run left outside the manifest."""
    if (folder / MANIFEST_NAME).exists():
        manifest = load_manifest(folder)
        if manifest.run.prefix != prefix:
            raise SandboxError(
                f"{folder} archives the run with prefix {manifest.run.prefix!r}, not {prefix!r}",
                "archive each run into its own folder (or set KPSANDBOX_TOPIC_PREFIX / --prefix to match)",
            )
    else:
        if folder.exists() and any(folder.iterdir()):
            raise SandboxError(
                f"{folder} is not empty and holds no {MANIFEST_NAME}",
                "choose a new or empty folder for --out (or an existing archive to update it)",
            )
        manifest = Manifest(run=RunInfo(run_id=prefix.rstrip(".") or None, prefix=prefix))
    try:
        folder.mkdir(parents=True, exist_ok=True)
        listed = {f.path for f in manifest.files}
        for path in [*folder.glob(PART_GLOB), *folder.glob("topic=*/date=*/.*.tmp")]:
            if str(path.relative_to(folder)) not in listed:
                path.unlink()
    except OSError as error:
        raise _write_error(folder, error) from error
    return manifest


def _write_error(folder: Path, error: OSError) -> SandboxError:
    if error.errno == errno.ENOSPC:
        return SandboxError(
            f"the disk is full while archiving into {folder}",
            "free some space (or choose another --out) and re-run: the archive resumes from its last manifest",
        )
    return SandboxError(f"cannot write the archive into {folder}: {error.strerror or error}", "choose a writable --out")


class Archiver:
    """One archive run: owns the consumer, the writer and the manifest it updates."""

    def __init__(self, settings: Settings, folder: Path) -> None:
        self.settings = settings
        self.folder = folder
        self.manifest = _prepare_folder(folder, settings.topic_prefix)
        self.writer = PartWriter(folder, self.manifest.next_part)
        self.summary = ArchiveSummary()
        self._names = {settings.topic(spec): spec.name for spec in CATALOG}
        self._last: dict[TopicPartition, int] = {}  # last offset archived this run (not yet checkpointed)
        self._rows: dict[TopicPartition, int] = {}
        self._totals = 0  # records between the start and end offsets of this run

    async def run(self, progress: Progress | None = None) -> ArchiveSummary:
        """Archives everything new; returns what it did."""
        consumer = AIOKafkaConsumer(
            bootstrap_servers=self.settings.bootstrap_servers,
            group_id=None,
            enable_auto_commit=False,
            isolation_level="read_committed",
            max_partition_fetch_bytes=FETCH_BYTES_PER_PARTITION_MAX,
            client_id="kpsandbox-archive",
        )
        try:
            await asyncio.wait_for(consumer.start(), CONNECT_TIMEOUT_S)
        except (TimeoutError, KafkaError, OSError) as error:
            await consumer.stop()
            raise kafka_unreachable(self.settings) from error
        try:
            todo = await self._plan(consumer)
            await self._copy(consumer, todo, progress)
        finally:
            await consumer.stop()
        self.summary.rows_total = self.manifest.rows
        return self.summary

    async def _plan(self, consumer: AIOKafkaConsumer) -> dict[TopicPartition, int]:
        """Assigns and seeks every partition with something new; returns its end offset."""
        found = await topic_partitions(self.settings, self._names)
        tps = [TopicPartition(name, p) for name, partitions in found.items() for p in partitions]
        if not tps:
            raise SandboxError(
                f"no catalog topic with prefix {self.settings.topic_prefix!r} on {self.settings.bootstrap_servers}",
                "pass the run's --prefix (the demo prints it; `kpsandbox topics list` shows the names)",
            )
        firsts = await consumer.beginning_offsets(tps)
        ends = await consumer.end_offsets(tps)
        todo: dict[TopicPartition, int] = {}
        starts: dict[TopicPartition, int] = {}
        for tp in tps:
            known = self.manifest.partitions.get(self._names[tp.topic], {}).get(str(tp.partition))
            start = known.end if known else firsts[tp]
            if known and firsts[tp] > known.end:
                raise SandboxError(
                    f"{tp.topic}[{tp.partition}] lost offsets {known.end}..{firsts[tp] - 1} to retention since"
                    " the last archive",
                    "the archive cannot be completed; archive runs more often than the topics' retention",
                )
            if not known:
                if firsts[tp] > 0:
                    self.summary.truncated.append(f"{tp.topic}[{tp.partition}] from offset {firsts[tp]}")
                self._set_range(tp, PartitionRange(start=start, end=start, rows=0))
            if ends[tp] > start:
                todo[tp] = ends[tp]
                starts[tp] = start
        if todo:
            consumer.assign(list(todo))
            for tp, start in starts.items():
                consumer.seek(tp, start)
        self._totals = sum(todo[tp] - starts[tp] for tp in todo)
        return todo

    def _set_range(self, tp: TopicPartition, value: PartitionRange) -> None:
        self.manifest.partitions.setdefault(self._names[tp.topic], {})[str(tp.partition)] = value

    async def _copy(
        self, consumer: AIOKafkaConsumer, todo: dict[TopicPartition, int], progress: Progress | None
    ) -> None:
        remaining = dict(todo)
        stalled = 0
        while remaining:
            batches = await consumer.getmany(*remaining, timeout_ms=FETCH_TIMEOUT_MS)
            stalled = 0 if batches else stalled + 1
            for tp, records in batches.items():
                end, name = remaining.get(tp), self._names[tp.topic]
                if end is None:
                    continue
                if records and records[-1].offset >= end:  # read past the end taken at the start
                    records = [r for r in records if r.offset < end]
                if not records:
                    continue
                self.writer.add_records(name, tp.partition, records)
                self._last[tp] = records[-1].offset
                self._rows[tp] = self._rows.get(tp, 0) + len(records)
                self.summary.rows_new += len(records)
            for tp in list(remaining):
                # The position also moves past transaction markers, which never arrive as records.
                if await consumer.position(tp) >= remaining[tp]:
                    consumer.pause(tp)
                    self._finish(tp, remaining.pop(tp))
            if stalled >= STALL_FETCHES_MAX:
                late = ", ".join(f"{tp.topic}[{tp.partition}]" for tp in remaining)
                raise SandboxError(f"no progress reading {late}", "check that Kafka is healthy and re-run")
            if self.writer.buffered >= BUFFER_ROWS_MAX:
                self._checkpoint(complete=False)
            if progress:
                progress(self.summary.rows_new, self._totals)
        self._checkpoint(complete=True)

    def _finish(self, tp: TopicPartition, end: int) -> None:
        """Records that a partition was read up to its end offset (applied at the next checkpoint)."""
        self._last[tp] = end - 1

    def _checkpoint(self, *, complete: bool) -> None:
        """Writes the buffered part files, then the manifest that lists them (always in this order)."""
        try:
            files = self.writer.flush()
        except OSError as error:
            raise _write_error(self.folder, error) from error
        for tp, last in self._last.items():
            old = self.manifest.partitions[self._names[tp.topic]][str(tp.partition)]
            self._set_range(tp, PartitionRange(start=old.start, end=last + 1, rows=old.rows + self._rows.get(tp, 0)))
        changed = bool(files or self._last) or complete != self.manifest.complete
        self._last.clear()
        self._rows.clear()
        if not changed:
            return
        self.manifest.files.extend(files)
        self.manifest.next_part = self.writer.next_part
        self.manifest.complete = complete
        self.manifest.updated_at = datetime.now(UTC).isoformat(timespec="seconds")
        self.summary.files_new += len(files)
        try:
            save_manifest(self.folder, self.manifest)
        except OSError as error:
            raise _write_error(self.folder, error) from error
