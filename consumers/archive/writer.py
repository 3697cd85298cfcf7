"""Buffers archived records per topic, and writes them as Parquet part files per simulated date.

Each consume batch is turned into an Arrow table (raw columns, JSON parsed into typed columns in
bulk, each row's simulated date) on a worker thread as soon as it arrives, so that work overlaps
reading the next batch (Arrow releases the GIL); a per-record Python step would cost more than
reading the record from Kafka. The same worker sorts the batch by (date, partition, offset) and
notes its runs per (date, partition): from then on rows are only sliced, never copied again.

Dates are sealed early: a producer writes a partition in time order, so once every partition still
being read has reached date D, the rows before D are complete (a prefix of every sorted batch).
Each sealed date's runs, ordered by (partition, batch), are one part file: it is encoded and
written under a hidden temporary name on a worker thread while reading goes on. A row that arrives
late for a sealed date (a producer out of time order) is not lost: it goes into one more part file
for that date. `flush` seals the rest, renames every encoded file into place in order (numbering
them), and syncs them all at once.
"""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import operator
import os
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import Any, Final

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from consumers.archive.columns import DICTIONARY_COLUMNS, build_table, ranged_columns
from consumers.archive.reader import RawChunk
from infra.archive import PartFile, part_path

COMPRESSION: Final = "zstd"
ROW_GROUP_ROWS_MAX: Final = 64_000
COMPRESSION_LEVEL: Final = 1  # zstd's fastest level: part files are written once, read often, and
# at level 1 they are within a few per cent of the default size here (JSON values dominate).
BUILD_THREADS: Final = 2  # building batch tables: first in line, they keep up with reading
ENCODE_THREADS: Final = 2  # splitting and encoding part files
PENDING_GLOB: Final = "topic=*/date=*/.pending-*.tmp"  # part files encoded, not yet renamed into place
EPOCH: Final = date(1970, 1, 1)


@contextlib.contextmanager
def system_allocator() -> Iterator[None]:
    """While archiving, Arrow allocates from glibc's malloc instead of its default pool (mimalloc in
    the wheels), then the default is restored. Each batch builds and frees tens of MB; mimalloc gave
    them back to the OS and faulted them in again as zeroed huge pages (`clear_page_erms` under
    `mi_page_free_list_extend`: 7% of the archive's CPU), and the archive used 12–38% more CPU
    (bench/RESULTS.md, "Run 8"). Arrow's default pool is process-wide: one archive per process."""
    previous = pa.default_memory_pool()
    pa.set_memory_pool(pa.system_memory_pool())
    try:
        yield
    finally:
        pa.set_memory_pool(previous)


@dataclass(frozen=True, slots=True)
class _Run:
    """The rows of one (date, partition) in a built table: [begin, begin + rows), offsets first..last."""

    day: date
    partition: int
    begin: int
    rows: int
    first: int
    last: int


@dataclass(frozen=True, slots=True)
class _Built:
    """One batch as a table (in the order read) and its runs: the maximal row ranges of one date
    and one partition, in table order."""

    table: pa.Table
    runs: tuple[_Run, ...]

    def last_dates(self) -> dict[int, date]:
        """Each partition's date at its last row in this batch."""
        return {run.partition: run.day for run in self.runs}  # a later run overwrites

    def cut(self, before: date) -> tuple[_Built, _Built]:
        """(the runs dated before `before`, the rest), over the same table: no copy."""
        early = tuple(run for run in self.runs if run.day < before)
        late = tuple(run for run in self.runs if run.day >= before)
        return _Built(self.table, early), _Built(self.table, late)


@dataclass(frozen=True, slots=True)
class _Encoded:
    """One part file, encoded and written under a temporary name, ready to be renamed."""

    topic: str
    date: str  # YYYY-MM-DD
    rows: int
    temporary: Path
    bytes: int
    sha256: str
    offsets: dict[str, tuple[int, int]]  # partition → (first, last offset)


@dataclass
class _TopicBuffer:
    """One topic's rows between two flushes: batches being built, built but not sealed, and sealed
    (being encoded). Only PartWriter touches it."""

    building: list[Future[_Built]] = field(default_factory=list)
    built: list[_Built] = field(default_factory=list)
    latest: dict[int, date] = field(default_factory=dict)  # per partition, the date of its last row
    sealed: list[Future[list[Future[_Encoded]]]] = field(default_factory=list)  # split, encoding


class PartWriter:
    """Collects records and writes part files per (topic, simulated date) on every flush.

    The only writer of part files: `flush` numbers them from `next_part` and returns what it wrote,
    for the caller to add to the manifest. Owns its worker threads (`close`)."""

    def __init__(self, folder: Path, next_part: int) -> None:
        self.folder = folder
        self.next_part = next_part
        self.buffered = 0
        self._topics: dict[str, _TopicBuffer] = {}
        self._pending = itertools.count()  # numbers the temporary files (next() is atomic)
        self._folders: set[Path] = set()  # date folders known to exist
        self._builders = ThreadPoolExecutor(BUILD_THREADS, thread_name_prefix="kpsandbox-archive-build")
        self._encoders = ThreadPoolExecutor(ENCODE_THREADS, thread_name_prefix="kpsandbox-archive-encode")

    def add(
        self,
        topic: str,
        partition: int,
        offset: int,
        timestamp_ms: int,
        key: bytes | None,
        headers: Any,
        value: bytes | None,
    ) -> None:
        """Buffers one record of catalog topic `topic`."""
        self.add_chunk(topic, RawChunk([partition], [offset], [timestamp_ms], [key], [headers], [value]))

    def add_chunk(self, topic: str, chunk: RawChunk, reading: frozenset[int] | None = None) -> None:
        """Buffers records of one catalog topic (built on a worker thread). `reading` names the
        topic's partitions still being read: once each has reached a date, earlier dates are sealed;
        once none is left, the whole topic is. None: not known (sealed at flush)."""
        buffer = self._topics.setdefault(topic, _TopicBuffer())
        if chunk:
            buffer.building.append(self._builders.submit(_build, topic, chunk))
            self.buffered += len(chunk)
        if reading is not None and not reading:
            self._seal_all(topic, buffer)
        elif reading:
            self._seal_early(topic, buffer, reading)

    def flush(self) -> list[PartFile]:
        """Renames every encoded part file into place (numbered in order) and syncs them; returns
        the files written. On an OSError (a full disk) nothing is left under a part file's name and
        no temporary file is left behind."""
        for topic, buffer in self._topics.items():
            self._seal_all(topic, buffer)
        sealed = [future for _, buffer in sorted(self._topics.items()) for future in buffer.sealed]
        self._topics.clear()
        self.buffered = 0
        written: list[PartFile] = []
        try:
            for files in sealed:
                written.extend(self._rename(future.result()) for future in files.result())
        except OSError:
            self._discard(sealed, written)
            raise
        if written:
            os.sync()  # every part file on disk before the caller writes the manifest naming them
        return written

    def close(self) -> None:
        self._builders.shutdown(wait=True, cancel_futures=True)
        self._encoders.shutdown(wait=True, cancel_futures=True)

    def _seal_early(self, topic: str, buffer: _TopicBuffer, reading: frozenset[int]) -> None:
        """Takes the batches built so far (in order) and seals the dates every partition still
        being read has passed."""
        while buffer.building and buffer.building[0].done():
            built = buffer.building.pop(0).result()
            buffer.built.append(built)
            buffer.latest.update(built.last_dates())
        if not reading or not buffer.built or any(p not in buffer.latest for p in reading):
            return
        watermark = min(buffer.latest[p] for p in reading)
        if min(run.day for built in buffer.built for run in built.runs) < watermark:
            self._seal(topic, buffer, watermark)

    def _seal_all(self, topic: str, buffer: _TopicBuffer) -> None:
        """Hands every row of the topic, built or still building, to a worker to encode."""
        built, building = buffer.built, buffer.building
        buffer.built, buffer.building = [], []
        if built or building:
            buffer.sealed.append(self._encoders.submit(self._split, topic, built, building))

    def _seal(self, topic: str, buffer: _TopicBuffer, before: date) -> None:
        """Hands the built rows dated before `before` to a worker."""
        cuts = [built.cut(before) for built in buffer.built]
        buffer.built = [late for _, late in cuts if late.runs]
        buffer.sealed.append(self._encoders.submit(self._split, topic, [early for early, _ in cuts], []))

    def _split(self, topic: str, built: list[_Built], building: list[Future[_Built]]) -> list[Future[_Encoded]]:
        """On a worker: gathers each date's rows and queues each part file's encoding on its own. It
        waits for builds (another pool) but never for the encodings it queues."""
        pieces = [*built, *(future.result() for future in building)]
        return [self._encoders.submit(self._encode, topic, day, slices) for day, slices in _by_date(pieces)]

    def _encode(self, topic: str, day: date, slices: list[tuple[_Run, pa.Table]]) -> _Encoded:
        """Encodes one part file (on a worker) and writes it under a hidden temporary name in its
        date folder; `flush` renames it."""
        folder = self.folder / part_path(topic, day.isoformat(), 0).rpartition("/")[0]
        if folder not in self._folders:  # a set's add and `in` are atomic; a race only repeats mkdir
            folder.mkdir(parents=True, exist_ok=True)
            self._folders.add(folder)
        return _encode(topic, day.isoformat(), slices, folder / f".pending-{next(self._pending)}.tmp")

    def _rename(self, encoded: _Encoded) -> PartFile:
        relative = part_path(encoded.topic, encoded.date, self.next_part)
        os.replace(encoded.temporary, self.folder / relative)
        self.next_part += 1
        return PartFile(
            path=relative,
            topic=encoded.topic,
            date=encoded.date,
            rows=encoded.rows,
            bytes=encoded.bytes,
            sha256=encoded.sha256,
            offsets=encoded.offsets,
        )

    def _discard(self, sealed: list[Future[list[Future[_Encoded]]]], written: list[PartFile]) -> None:
        """After a failed flush: waits for every encoding, then removes its temporary files and the
        part files this flush renamed (the manifest never names them)."""
        for files in sealed:
            with contextlib.suppress(OSError):
                for future in files.result():
                    with contextlib.suppress(OSError):
                        future.result()
        for path in self.folder.glob(PENDING_GLOB):
            path.unlink(missing_ok=True)
        for part in written:
            (self.folder / part.path).unlink(missing_ok=True)


def _build(topic: str, chunk: RawChunk) -> _Built:
    """A batch's table and its runs per (date, partition), on a worker thread. Rows stay in the
    order read: a partition's rows are in offset order, so its runs taken in order are too.

    The runs are found in Python from the chunk's own lists and one date column, not by a chain of
    Arrow calls: each Arrow call that releases the GIL waits up to the switch interval (5 ms) to
    get it back while the reading thread runs, and a build made ~35 of them (bench/RESULTS.md,
    "Run 11"); a pass over 10,000 rows holds the GIL for about a millisecond."""
    table = build_table(topic, chunk)
    days = _days(table)
    keys = list(zip(days, chunk.partitions, strict=True))
    begins = [0, *itertools.compress(range(1, len(keys)), map(operator.ne, keys[1:], keys[:-1]))]
    ends = [*begins[1:], len(keys)]
    offsets = chunk.offsets
    heads = [keys[begin] for begin in begins]
    runs = [
        _Run(EPOCH + timedelta(days=day), partition, begin, end - begin, offsets[begin], offsets[end - 1])
        for (day, partition), begin, end in zip(heads, begins, ends, strict=True)
    ]
    return _Built(table, tuple(runs))


def _by_date(pieces: list[_Built]) -> list[tuple[date, list[tuple[_Run, pa.Table]]]]:
    """Per date, the slices of its rows ordered by (partition, offset): a partition's rows are read
    in offset order, so its runs taken in (batch, place in the batch) order are too; ordering the
    runs by partition (a stable sort) orders the rows without copying them."""
    runs: dict[date, list[tuple[_Run, pa.Table]]] = {}
    for piece in pieces:
        for run in piece.runs:
            runs.setdefault(run.day, []).append((run, piece.table.slice(run.begin, run.rows)))
    return [(day, sorted(found, key=lambda f: f[0].partition)) for day, found in sorted(runs.items())]


def _encode(topic: str, day: str, slices: list[tuple[_Run, pa.Table]], temporary: Path) -> _Encoded:
    """Encodes one part file into `temporary` with its checksum and offset spans (Parquet, SHA-256
    and the write release the GIL)."""
    table = pa.concat_tables([piece for _, piece in slices])
    sink = pa.BufferOutputStream()
    pq.write_table(
        table,
        sink,
        compression=COMPRESSION,
        compression_level=COMPRESSION_LEVEL,
        row_group_size=ROW_GROUP_ROWS_MAX,
        use_dictionary=[name for name in table.column_names if name in DICTIONARY_COLUMNS],
        write_statistics=ranged_columns(table.schema),
    )
    data = sink.getvalue()
    with temporary.open("wb") as handle:
        handle.write(memoryview(data))  # type: ignore[arg-type]  # flush() renames and syncs
    sha256 = hashlib.sha256(memoryview(data)).hexdigest()
    return _Encoded(topic, day, table.num_rows, temporary, data.size, sha256, _spans([run for run, _ in slices]))


def _spans(runs: list[_Run]) -> dict[str, tuple[int, int]]:
    """Per partition, the first and last offset of a part file's runs (in (partition, offset) order)."""
    spans: dict[str, tuple[int, int]] = {}
    for run in runs:
        spans[str(run.partition)] = (spans.get(str(run.partition), (run.first, run.last))[0], run.last)
    return spans


def _days(table: pa.Table) -> list[int]:
    """Each row's simulated UTC date as days since the epoch: the event's occurred_at, or else the
    record timestamp (dead letters, poison). One Arrow call when every row has an occurred_at."""
    occurred = table["occurred_at"]
    if occurred.null_count:
        from_record = pc.cast(pc.cast(table["timestamp"], pa.timestamp("ms", tz="UTC")), pa.date32())
        dates = pc.coalesce(pc.cast(occurred, pa.date32()), from_record)
    else:
        dates = pc.cast(occurred, pa.date32())
    return list(itertools.chain.from_iterable(chunk.view(pa.int32()).to_pylist() for chunk in dates.chunks))
