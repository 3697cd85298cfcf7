"""The per-day panel: one row per simulated day × district × gender, from the simulation's ground
truth (what it meant to happen, not what the ledger settled).

`RunStats` fills a `PanelRows` as each day closes; `panel_table` turns it into a pyarrow table and
`write_panel` writes it as Parquet (zstd), atomically (a temporary file, then a rename), so a file
that exists is always complete. The columns are documented in `PANEL_COLUMNS` and docs/studies.md.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Final

import pyarrow as pa
import pyarrow.parquet as pq

from infra.errors import SandboxError

ACTIVE_WINDOW_DAYS: Final = 30  # an "active digital payer" paid digitally on one of the last 30 days
COMPRESSION: Final = "zstd"

# (name, type, meaning): the panel's contract, in column order.
PANEL_COLUMNS: Final = (
    ("scenario", pa.string(), "scenario name (baseline, digital-kp, or the .toml file's `name`)"),
    ("variant", pa.string(), "lever override of a study, e.g. 'levers.women_onboarding=2'; '' if none"),
    ("seed", pa.int64(), "the run's random seed"),
    ("date", pa.date32(), "simulated calendar day (UTC)"),
    ("day", pa.int32(), "day index from the run's first day, 0-based"),
    ("district", pa.string(), "district (PBS census 2023 names; 'Rest of KP' for the remainder)"),
    ("gender", pa.string(), "'female' or 'male'"),
    ("adults", pa.int32(), "simulated adults in the cell (constant over a run)"),
    ("account_holders", pa.int32(), "adults holding a wallet or bank account at the end of the day"),
    ("active_digital_payers_30d", pa.int32(), "adults with a digital retail payment on this day or the 29 before"),
    ("digital_count", pa.int64(), "digital retail payments by the cell's adults this day (expected to succeed)"),
    ("digital_value_paisa", pa.int64(), "their value, paisa"),
    ("cash_count", pa.int64(), "cash retail payments this day (cash purchases, bills in cash, COD deliveries)"),
    ("cash_value_paisa", pa.int64(), "their value, paisa"),
    ("digital_share_count", pa.float64(), "digital / (digital + cash) by count, this day; null if no payments"),
    ("digital_share_value", pa.float64(), "digital / (digital + cash) by value, this day; null if no payments"),
    ("district_merchants", pa.int32(), "merchants in the district (the same on both gender rows)"),
    ("district_merchants_digital", pa.int32(), "of those, merchants accepting digital payment (holding an account)"),
)
_PAYMENT_COLUMNS: Final = ("digital_count", "digital_value_paisa", "cash_count", "cash_value_paisa")
PANEL_SCHEMA: Final = pa.schema([pa.field(name, kind) for name, kind, _ in PANEL_COLUMNS])


@dataclass
class PanelRows:
    """Rows of the panel so far, column by column (cheap to append, cheap to turn into Arrow)."""

    districts: tuple[str, ...]
    genders: tuple[str, ...]
    columns: dict[str, list] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.columns = {name: [] for name, _, _ in PANEL_COLUMNS[3:]}

    def __len__(self) -> int:
        return len(self.columns["day"])

    def add_day(
        self,
        when: date,
        day: int,
        cells: dict[str, list[int]],
        merchants: list[int],
        merchants_digital: list[int],
    ) -> None:
        """Appends one row per district × gender. `cells` maps the per-cell column names (adults,
        account_holders, active_digital_payers_30d, digital/cash counts and values) to one value
        per cell, cell k = district * len(genders) + gender."""
        cols = self.columns
        per_gender = len(self.genders)
        for k in range(len(self.districts) * per_gender):
            d, g = divmod(k, per_gender)
            cols["date"].append(when)
            cols["day"].append(day)
            cols["district"].append(self.districts[d])
            cols["gender"].append(self.genders[g])
            for name, values in cells.items():
                cols[name].append(values[k])
            dc, dv, cc, cv = (cells[name][k] for name in _PAYMENT_COLUMNS)
            cols["digital_share_count"].append(dc / (dc + cc) if dc + cc else None)
            cols["digital_share_value"].append(dv / (dv + cv) if dv + cv else None)
            cols["district_merchants"].append(merchants[d])
            cols["district_merchants_digital"].append(merchants_digital[d])


def panel_table(rows: PanelRows, scenario: str, seed: int, variant: str = "") -> pa.Table:
    """The panel as an Arrow table with `PANEL_SCHEMA`, labelled with the run's scenario and seed."""
    n = len(rows)
    arrays = [
        pa.array([scenario] * n, pa.string()),
        pa.array([variant] * n, pa.string()),
        pa.array([seed] * n, pa.int64()),
    ]
    arrays += [pa.array(rows.columns[name], kind) for name, kind, _ in PANEL_COLUMNS[3:]]
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
