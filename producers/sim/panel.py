"""The per-day panel: one row per simulated day × district × gender, from the simulation's ground
truth (what it meant to happen, not what the ledger settled).

`RunStats` fills a `PanelRows` as each day closes; `panel_table` turns it into a pyarrow table and
`write_panel` writes it as Parquet (zstd), atomically (a temporary file, then a rename), so a file
that exists is always complete. The columns are documented in `PANEL_COLUMNS` (panel_rows.py, the
simulation's side, without pyarrow) and docs/studies.md.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Final

import pyarrow as pa
import pyarrow.parquet as pq

from infra.errors import SandboxError
from producers.sim.panel_rows import PANEL_COLUMNS, PanelRows

COMPRESSION: Final = "zstd"

PANEL_SCHEMA: Final = pa.schema([pa.field(name, getattr(pa, kind)()) for name, kind, _ in PANEL_COLUMNS])


def panel_table(rows: PanelRows, scenario: str, seed: int, variant: str = "") -> pa.Table:
    """The panel as an Arrow table with `PANEL_SCHEMA`, labelled with the run's scenario and seed."""
    n = len(rows)
    arrays = [
        pa.array([scenario] * n, pa.string()),
        pa.array([variant] * n, pa.string()),
        pa.array([seed] * n, pa.int64()),
    ]
    arrays += [pa.array(rows.columns[name], PANEL_SCHEMA.field(name).type) for name, _, _ in PANEL_COLUMNS[3:]]
    return pa.Table.from_arrays(arrays, schema=PANEL_SCHEMA)


def write_panel(table: pa.Table, path: Path) -> Path:
    """Writes the table as Parquet (zstd) to `path` via a temporary file and a rename."""
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(table, temporary, compression=COMPRESSION)
        temporary.replace(path)
    except OSError as exc:
        temporary.unlink(missing_ok=True)
        raise SandboxError(
            f"cannot write the panel to {path}: {exc.strerror or exc}", "choose a writable path with free space"
        ) from exc
    return path
