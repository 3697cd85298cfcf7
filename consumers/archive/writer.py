"""Buffers archived records per topic, and writes them as Parquet part files per simulated date.

Each consume batch is turned into an Arrow table (raw columns, JSON parsed into typed columns in
bulk, each row's simulated date) on a worker thread as soon as it arrives, so that work overlaps
reading the next batch (Arrow releases the GIL); a per-record Python step would cost more than
reading the record from Kafka.

Dates are sealed early: a producer writes a partition in time order, so once every partition still
being read has reached date D, the rows before D are complete. They are sorted by (date, partition,
offset), split per date and encoded as part files on a worker thread while reading goes on. A row
that arrives late for a sealed date (a producer out of time order) is not lost: it goes into one
more part file for that date. `flush` seals the rest, writes every encoded file under a temporary
name, renames it (infra.archive), and syncs them all at once.
"""

from __future__ import annotations

import hashlib
import os
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any, Final

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from consumers.archive.columns import DICTIONARY_COLUMNS, build_table
from consumers.archive.reader import RawChunk
from infra.archive import PartFile, part_path, write_atomically

COMPRESSION: Final = "zstd"
ROW_GROUP_ROWS_MAX: Final = 64_000
COMPRESSION_LEVEL: Final = 1  # zstd's fastest level: part files are written once, read often, and
# at level 1 they are within a few per cent of the default size here (JSON values dominate).
BUILD_THREADS: Final = 2  # building batch tables: first in line, they keep up with reading
ENCODE_THREADS: Final = 2  # sorting, splitting and encoding part files


@dataclass(frozen=True, slots=True)
class _Built:
    """One batch as a table, with each row's date and each partition's last date."""

    table: pa.Table
    dates: pa.Array
    last_dates: dict[int, date]


@dataclass(frozen=True, slots=True)
class _Encoded:
    """One part file, ready to write."""

    topic: str
    date: str  # YYYY-MM-DD
    rows: int
    data: pa.Buffer
    sha256: str
    offsets: dict[str, tuple[int, int]]  # partition → (first, last offset)


@dataclass
class _TopicBuffer:
    """One topic's rows between two flushes: batches being built, built but not sealed, and sealed
    (being encoded). Only PartWriter touches it."""

    building: list[Future[_Built]] = field(default_factory=list)
    built: list[_Built] = field(default_factory=list)
    latest: dict[int, date] = field(default_factory=dict)  # per partition, the date of its last row
    sealed: list[Future[list[Future[_Encoded]]]] = field(default_factory=list)  # sorted, split, encoding


class PartWriter:
    """Collects records and writes part files per (topic, simulated date) on every flush.

    The only writer of part files: `flush` numbers them from `next_part` and returns what it wrote,
    for the caller to add to the manifest. Owns its worker threads (`close`)."""

    def __init__(self, folder: Path, next_part: int) -> None:
        self.folder = folder
        self.next_part = next_part
        self.buffered = 0
        self._topics: dict[str, _TopicBuffer] = {}
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
        """Writes everything buffered as part files; returns the files written. On an OSError (a
        full disk) nothing half-written is left under a part file's name."""
        for topic, buffer in self._topics.items():
            self._seal_all(topic, buffer)
        splits = [future.result() for _, buffer in sorted(self._topics.items()) for future in buffer.sealed]
        encoded = [future.result() for files in splits for future in files]
        self._topics.clear()
        self.buffered = 0
        written = [self._write(piece) for piece in encoded]
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
            buffer.latest.update(built.last_dates)
        if not reading or not buffer.built or any(p not in buffer.latest for p in reading):
            return
        watermark = min(buffer.latest[p] for p in reading)
        if min(pc.min(b.dates).as_py() for b in buffer.built) < watermark:
            self._seal(topic, buffer, watermark)

    def _seal_all(self, topic: str, buffer: _TopicBuffer) -> None:
        """Hands every row of the topic, built or still building, to a worker to encode."""
        built, building = buffer.built, buffer.building
        buffer.built, buffer.building = [], []
        if built or building:
            buffer.sealed.append(self._encoders.submit(self._split, topic, built, building))

    def _seal(self, topic: str, buffer: _TopicBuffer, before: date) -> None:
        """Hands the built rows dated before `before` to a worker to encode."""
        taken, kept = [], []
        for built in buffer.built:
            early = pc.less(built.dates, before)
            taken.append(_Built(built.table.filter(early), built.dates.filter(early), {}))
            late = pc.invert(early)
            kept.append(_Built(built.table.filter(late), built.dates.filter(late), {}))
        buffer.built = [b for b in kept if len(b.dates)]
        buffer.sealed.append(self._encoders.submit(self._split, topic, taken, []))

    def _split(self, topic: str, built: list[_Built], building: list[Future[_Built]]) -> list[Future[_Encoded]]:
        """On a worker: sorts and splits sealed rows per date, and queues each part file's encoding on
        its own. It waits for builds (another pool) but never for the encodings it queues."""
        pieces = [piece for piece in [*built, *(future.result() for future in building)] if len(piece.dates)]
        return [self._encoders.submit(_encode, topic, day, table) for day, table in _by_date(pieces)] if pieces else []

    def _write(self, encoded: _Encoded) -> PartFile:
        relative = part_path(encoded.topic, encoded.date, self.next_part)
        path = self.folder / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        write_atomically(path, memoryview(encoded.data), sync=False)  # type: ignore[arg-type]  # flush() syncs
        self.next_part += 1
        return PartFile(
            path=relative,
            topic=encoded.topic,
            date=encoded.date,
            rows=encoded.rows,
            bytes=encoded.data.size,
            sha256=encoded.sha256,
            offsets=encoded.offsets,
        )


def _build(topic: str, chunk: RawChunk) -> _Built:
    """A batch's table, its rows' dates, and each partition's last date (on a worker thread)."""
    table = build_table(topic, chunk)
    dates = _dates(table)
    last_rows = dict(zip(chunk.partitions, range(len(chunk)), strict=True))  # a later row overwrites
    return _Built(table, dates, {p: dates[i].as_py() for p, i in last_rows.items()})


def _by_date(pieces: list[_Built]) -> list[tuple[str, pa.Table]]:
    """Rows joined, sorted by (date, partition, offset), split per date (Arrow releases the GIL)."""
    table = pa.concat_tables([piece.table for piece in pieces])
    dates = pa.chunked_array([piece.dates for piece in pieces]).combine_chunks()
    order = pc.sort_indices(
        pa.table({"d": dates, "p": table["partition"], "o": table["offset"]}),
        sort_keys=[("d", "ascending"), ("p", "ascending"), ("o", "ascending")],
    )
    table, dates = table.take(order), dates.take(order)
    counts = pc.value_counts(dates)  # in order of first appearance: the dates are sorted
    split, begin = [], 0
    for day, rows in zip(counts.field("values").to_pylist(), counts.field("counts").to_pylist(), strict=True):
        split.append((day.isoformat(), table.slice(begin, rows)))
        begin += rows
    return split


def _encode(topic: str, day: str, table: pa.Table) -> _Encoded:
    """One part file's bytes, checksum and offset spans (Parquet and SHA-256 release the GIL)."""
    sink = pa.BufferOutputStream()
    pq.write_table(
        table,
        sink,
        compression=COMPRESSION,
        compression_level=COMPRESSION_LEVEL,
        row_group_size=ROW_GROUP_ROWS_MAX,
        use_dictionary=[name for name in table.column_names if name in DICTIONARY_COLUMNS],
    )
    data = sink.getvalue()
    spans = table.group_by("partition").aggregate([("offset", "min"), ("offset", "max")])
    offsets = {
        str(p): (first, last)
        for p, first, last in sorted(
            zip(
                spans["partition"].to_pylist(),
                spans["offset_min"].to_pylist(),
                spans["offset_max"].to_pylist(),
                strict=True,
            )
        )
    }
    return _Encoded(topic, day, table.num_rows, data, hashlib.sha256(memoryview(data)).hexdigest(), offsets)


def _dates(table: pa.Table) -> pa.Array:
    """Each row's simulated UTC date (date32): the event's occurred_at, or else the record timestamp
    (dead letters, poison)."""
    from_event = pc.cast(table["occurred_at"], pa.date32())
    from_record = pc.cast(pc.cast(table["timestamp"], pa.timestamp("ms", tz="UTC")), pa.date32())
    return pc.coalesce(from_event, from_record).combine_chunks()
