"""Archives every catalog topic of a run from its start to its end offsets, incrementally.

Reads with read_committed and no consumer group (an archive never moves anyone's position), from
the manifest's per-partition end offsets (or the topic's beginning), up to the end offsets taken
when the run starts. Every BUFFER_ROWS_MAX records it checkpoints: part files first, then the
manifest, so an interrupted archive resumes from its last checkpoint and never looks complete.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import threading
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Final, NamedTuple

from consumers.archive.reader import RangeReader, Ranges
from consumers.archive.writer import PartWriter, system_allocator
from infra import collector
from infra.archive import MANIFEST_NAME, PART_GLOB, Manifest, PartitionRange, RunInfo, load_manifest, save_manifest
from infra.errors import SandboxError
from infra.settings import Settings
from schemas.topics import CATALOG

BUFFER_ROWS_MAX: Final = 200_000  # records held in memory before a checkpoint
# The cyclic collector's thresholds while archiving (CPython's: 700, 10, 10), as the settler's
# (consumers/ledger/collector.py): reading makes a tuple per record and lists per batch, all freed by
# reference counting; with the defaults each collection re-walked whatever else the process held.
GC_THRESHOLDS: Final = (10_000, 10, 100)

Progress = Callable[[int, int], None]  # (records archived so far, records to archive)


class Place(NamedTuple):
    """A partition of a (prefixed) topic."""

    topic: str
    partition: int


class Stopped(Exception):
    """The archive was asked to stop (Ctrl-C); the manifest keeps its last checkpoint."""


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
        self._last: dict[Place, int] = {}  # last offset archived this run (not yet checkpointed)
        self._rows: dict[Place, int] = {}
        self._totals = 0  # records between the start and end offsets of this run
        self._stopping = threading.Event()

    async def run(self, progress: Progress | None = None) -> ArchiveSummary:
        """Archives everything new; returns what it did. Works on a thread (librdkafka's calls
        block); on cancellation (Ctrl-C) the thread stops at its next batch, nothing half-written."""
        with system_allocator(), collector.collecting_rarely(GC_THRESHOLDS):
            try:
                archiving = asyncio.ensure_future(asyncio.to_thread(self._archive, progress))
                try:
                    await asyncio.shield(archiving)
                except asyncio.CancelledError:
                    self._stopping.set()
                    with contextlib.suppress(Stopped):
                        await archiving
                    raise
            finally:
                self.writer.close()
        self.summary.rows_total = self.manifest.rows
        return self.summary

    def _archive(self, progress: Progress | None) -> None:
        reader = RangeReader(self.settings, self._names)
        try:
            self._copy(reader, self._plan(reader), progress)
        finally:
            reader.close()
        self._checkpoint(complete=True)

    def _plan(self, reader: RangeReader) -> Ranges:
        """Per topic, every partition with something new: (first offset to read, end offset)."""
        found = reader.offsets()
        if not found:
            raise SandboxError(
                f"no catalog topic with prefix {self.settings.topic_prefix!r} on {self.settings.bootstrap_servers}",
                "pass the run's --prefix (the demo prints it; `kpsandbox topics list` shows the names)",
            )
        todo: Ranges = {}
        for topic, partitions in found.items():
            for partition, (first, end) in partitions.items():
                start = self._start(Place(topic, partition), first)
                if end > start:
                    todo.setdefault(topic, {})[partition] = (start, end)
        self._totals = sum(end - start for ranges in todo.values() for start, end in ranges.values())
        return todo

    def _start(self, tp: Place, first: int) -> int:
        """Where this run reads `tp` from: the manifest's end, or the topic's first offset (recorded)."""
        known = self.manifest.partitions.get(self._names[tp.topic], {}).get(str(tp.partition))
        if known and first > known.end:
            raise SandboxError(
                f"{tp.topic}[{tp.partition}] lost offsets {known.end}..{first - 1} to retention since the last archive",
                "the archive cannot be completed; archive runs more often than the topics' retention",
            )
        if known:
            return known.end
        if first > 0:
            self.summary.truncated.append(f"{tp.topic}[{tp.partition}] from offset {first}")
        self._set_range(tp, PartitionRange(start=first, end=first, rows=0))
        return first

    def _set_range(self, tp: Place, value: PartitionRange) -> None:
        self.manifest.partitions.setdefault(self._names[tp.topic], {})[str(tp.partition)] = value

    def _copy(self, reader: RangeReader, todo: Ranges, progress: Progress | None) -> None:
        """Reads every topic at once (as raw consume does), handing each topic's records to the writer."""
        reading = {topic: set(ranges) for topic, ranges in todo.items()}
        for batch in reader.read(todo):
            if self._stopping.is_set():
                raise Stopped
            topic, chunk = batch.topic, batch.chunk
            reading[topic].difference_update(batch.finished)
            self.writer.add_chunk(self._names[topic], chunk, frozenset(reading[topic]))
            if chunk:
                for partition, last in chunk.last_offsets().items():
                    self._last[Place(topic, partition)] = last
                for partition, count in Counter(chunk.partitions).items():
                    place = Place(topic, partition)
                    self._rows[place] = self._rows.get(place, 0) + count
                self.summary.rows_new += len(chunk)
            for partition in batch.finished:  # read to its end, markers included
                self._last[Place(topic, partition)] = todo[topic][partition][1] - 1
            if self.writer.buffered >= BUFFER_ROWS_MAX:
                self._checkpoint(complete=False)
            if progress:
                progress(self.summary.rows_new, self._totals)

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
