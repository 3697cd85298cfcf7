"""Buffers archived records per topic, and writes them as Parquet part files per simulated date.

Records are buffered as plain column lists, a fetch at a time; everything per record — parsing
the JSON value, finding its simulated date, sorting — happens at flush, in bulk, in Arrow (a
per-record Python step cost more than reading the record from Kafka). Each part file is written
whole to a temporary name, synced and renamed (infra.archive), and is sorted by (partition,
offset) so a replay of one partition reads it in order.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from consumers.archive.columns import RAW_COLUMNS, build_table
from infra.archive import PartFile, part_path, write_atomically

COMPRESSION: Final = "zstd"
BUFFERED: Final = tuple(name for name, _ in RAW_COLUMNS[1:])  # the topic column is added at flush
ROW_GROUP_ROWS_MAX: Final = 64_000
COMPRESSION_LEVEL: Final = 1  # zstd's fastest level: part files are written once, read often, and
# at level 1 they are within a few per cent of the default size here (JSON values dominate).
NO_HEADERS: Final[list[Any]] = []


@dataclass
class _Buffer:
    """The rows of one topic not yet written, as column lists."""

    columns: dict[str, list[Any]]
    rows: int = 0


class PartWriter:
    """Collects records and writes one part file per (topic, simulated date) on every flush.

    The only writer of part files: `flush` numbers them from `next_part` and returns what it wrote,
    for the caller to add to the manifest."""

    def __init__(self, folder: Path, next_part: int) -> None:
        self.folder = folder
        self.next_part = next_part
        self.buffered = 0
        self._buffers: dict[str, _Buffer] = {}

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
        self.add_records(topic, partition, [_Record(offset, timestamp_ms, key, headers, value)])

    def add_records(self, topic: str, partition: int, records: Sequence[Any]) -> None:
        """Buffers a fetch of one partition (objects with offset, timestamp, key, headers, value)."""
        buffer = self._buffers.get(topic)
        if buffer is None:
            buffer = self._buffers[topic] = _Buffer({name: [] for name in BUFFERED})
        columns = buffer.columns
        columns["partition"].extend([partition] * len(records))
        columns["offset"].extend([r.offset for r in records])
        columns["timestamp"].extend([r.timestamp for r in records])
        columns["key"].extend([r.key for r in records])
        columns["headers"].extend(
            [[{"name": n, "value": v} for n, v in r.headers] if r.headers else NO_HEADERS for r in records]
        )
        columns["value"].extend([r.value for r in records])
        buffer.rows += len(records)
        self.buffered += len(records)

    def flush(self) -> list[PartFile]:
        """Writes every buffer as part files, one per simulated date; returns the files written. On an
        OSError (a full disk) nothing half-written is left under a part file's name."""
        written: list[PartFile] = []
        for topic, buffer in sorted(self._buffers.items()):
            table = build_table(topic, buffer.columns)
            dates = _dates(table)
            order = pc.sort_indices(
                pa.table({"d": dates, "p": table["partition"], "o": table["offset"]}),
                sort_keys=[("d", "ascending"), ("p", "ascending"), ("o", "ascending")],
            )
            table, dates = table.take(order), dates.take(order)
            for date, begin, length in _runs(dates.to_pylist()):
                written.append(self._write(topic, date, table.slice(begin, length)))
        if written:
            os.sync()  # every part file on disk before the caller writes the manifest naming them
        self._buffers.clear()
        self.buffered = 0
        return written

    def _write(self, topic: str, date: str, table: pa.Table) -> PartFile:
        sink = pa.BufferOutputStream()
        pq.write_table(
            table,
            sink,
            compression=COMPRESSION,
            compression_level=COMPRESSION_LEVEL,
            row_group_size=ROW_GROUP_ROWS_MAX,
        )
        data = sink.getvalue().to_pybytes()
        relative = part_path(topic, date, self.next_part)
        path = self.folder / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        write_atomically(path, data, sync=False)  # flush() syncs them all at once
        self.next_part += 1
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
        return PartFile(
            path=relative,
            topic=topic,
            date=date,
            rows=table.num_rows,
            bytes=len(data),
            sha256=hashlib.sha256(data).hexdigest(),
            offsets=offsets,
        )


@dataclass(frozen=True, slots=True)
class _Record:
    offset: int
    timestamp: int
    key: bytes | None
    headers: Any
    value: bytes | None


def _dates(table: pa.Table) -> pa.Array:
    """Each row's simulated UTC date (YYYY-MM-DD): the event's occurred_at, or else the record
    timestamp (dead letters, poison)."""
    # timestamp → date32 → text (ISO): several times faster than strftime.
    from_event = pc.cast(pc.cast(table["occurred_at"], pa.date32()), pa.string())
    stamped = pc.cast(table["timestamp"], pa.timestamp("ms", tz="UTC"))
    from_record = pc.cast(pc.cast(stamped, pa.date32()), pa.string())
    return pc.coalesce(from_event, from_record).combine_chunks()


def _runs(values: list[str]) -> list[tuple[str, int, int]]:
    """(value, start, length) of each run of equal values in a sorted list."""
    runs: list[tuple[str, int, int]] = []
    begin = 0
    for index in range(1, len(values) + 1):
        if index == len(values) or values[index] != values[begin]:
            runs.append((values[begin], begin, index - begin))
            begin = index
    return runs
