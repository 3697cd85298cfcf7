"""Buffers archived records per topic and simulated date, and writes them as Parquet part files.

Each part file is written whole to a temporary name, synced and renamed (infra.archive), and is
sorted by (partition, offset) so a replay of one partition reads it in order.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import pyarrow as pa
import pyarrow.parquet as pq

from consumers.archive.columns import RAW_COLUMNS, build_table, record_date
from infra.archive import PartFile, part_path, write_atomically

COMPRESSION: Final = "zstd"
BUFFERED: Final = tuple(name for name, _ in RAW_COLUMNS[1:])  # the topic column is added at flush
ROW_GROUP_ROWS_MAX: Final = 64_000


@dataclass
class _Buffer:
    """The rows of one (topic, date) not yet written, as column lists, and their offset ranges."""

    columns: dict[str, list[Any]]
    offsets: dict[int, list[int]] = field(default_factory=dict)  # partition -> [first, last]
    rows: int = 0


class PartWriter:
    """Collects records and writes one part file per (topic, date) on every flush.

    The only writer of part files: `flush` numbers them from `next_part` and returns what it wrote,
    for the caller to add to the manifest."""

    def __init__(self, folder: Path, next_part: int) -> None:
        self.folder = folder
        self.next_part = next_part
        self.buffered = 0
        self._buffers: dict[tuple[str, str], _Buffer] = {}

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
        """Buffers one record of catalog topic `topic` (typed columns are parsed at flush, in bulk)."""
        date = record_date(value, timestamp_ms)
        buffer = self._buffers.get((topic, date))
        if buffer is None:
            buffer = self._buffers[(topic, date)] = _Buffer({name: [] for name in BUFFERED})
        columns = buffer.columns
        columns["partition"].append(partition)
        columns["offset"].append(offset)
        columns["timestamp"].append(timestamp_ms)
        columns["key"].append(key)
        columns["headers"].append([{"name": name, "value": raw} for name, raw in headers] if headers else [])
        columns["value"].append(value)
        span = buffer.offsets.get(partition)
        if span is None:
            buffer.offsets[partition] = [offset, offset]
        else:
            span[1] = offset
        buffer.rows += 1
        self.buffered += 1

    def flush(self) -> list[PartFile]:
        """Writes every buffer as a new part file; returns the files written. On an OSError (a full
        disk) nothing half-written is left under a part file's name."""
        written: list[PartFile] = []
        for (topic, date), buffer in sorted(self._buffers.items()):
            table = build_table(topic, buffer.columns).sort_by([("partition", "ascending"), ("offset", "ascending")])
            sink = pa.BufferOutputStream()
            pq.write_table(table, sink, compression=COMPRESSION, row_group_size=ROW_GROUP_ROWS_MAX)
            data = sink.getvalue().to_pybytes()
            relative = part_path(topic, date, self.next_part)
            path = self.folder / relative
            path.parent.mkdir(parents=True, exist_ok=True)
            write_atomically(path, data)
            self.next_part += 1
            offsets = {str(p): (span[0], span[1]) for p, span in sorted(buffer.offsets.items())}
            written.append(
                PartFile(
                    path=relative,
                    topic=topic,
                    date=date,
                    rows=buffer.rows,
                    bytes=len(data),
                    sha256=hashlib.sha256(data).hexdigest(),
                    offsets=offsets,
                )
            )
        self._buffers.clear()
        self.buffered = 0
        return written
